"""CMU salsa takes: loading, metric scaling, 30 fps, take-level split, kinetic beats and time warps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.pose_repr import CMU_SCALE, Motion, metric_cmu_skeleton, motion_positions, resample_motion
from engine.skeleton.bvh import read_bvh
from engine.train.kinetic_beats import KineticBeats, kinetic_beats

#: Default location of the shared data (overridable with --data).
DEFAULT_CMU_DIR = Path("/work/shared/data/cmu_salsa")
TRAIN_TAKES: tuple[str, ...] = ("01", "02", "03", "04", "05", "06", "07", "09", "10", "11")
VAL_TAKES: tuple[str, ...] = ("12", "13")
_NAME = re.compile(r"^(6[01])_(\d\d)_scaled\.bvh$")


@dataclass
class Take:
    """One take: both dancers (same length), at MODEL_FPS in metres, with its kinetic beat grid."""

    take: str
    dancers: list[Motion]  # subject 60 (lead), 61 (follow)
    beats: KineticBeats  # estimated from both dancers at the source rate; beats_s on this clip's timeline
    warp: float = 1.0  # tempo factor applied (1.1 = 10 % faster than captured)

    @property
    def n_frames(self) -> int:
        return self.dancers[0].n_frames

    @property
    def duration_s(self) -> float:
        return self.n_frames / MODEL_FPS

    @property
    def name(self) -> str:
        return f"take{self.take}_x{self.warp:.2f}"


def list_takes(data_dir: Path) -> dict[str, list[Path]]:
    """Take id -> its BVH files (one per dancer); a clear error if the folder holds none."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"CMU salsa folder {data_dir} does not exist")
    takes: dict[str, list[Path]] = {}
    for p in sorted(data_dir.iterdir()):
        m = _NAME.match(p.name)
        if m:
            takes.setdefault(m.group(2), []).append(p)
    if not takes:
        raise FileNotFoundError(f"no files named like 60_01_scaled.bvh in {data_dir}")
    return takes


def load_bvh_metric(path: Path) -> Motion:
    """A CMU BVH file as a Motion at its own rate, scaled to metres by CMU_SCALE."""
    bvh = read_bvh(path)
    skel = metric_cmu_skeleton()
    if bvh.skeleton.joint_names != skel.joint_names:
        raise ValueError(f"{path}: joints differ from the CMU skeleton (got {len(bvh.skeleton.joint_names)} joints)")
    return Motion(skeleton=skel, root_pos=bvh.root_positions * CMU_SCALE, rot=bvh.local_rot_mats, fps=bvh.fps)


def load_take(files: list[Path], take: str, beat_fps: float = 60.0) -> Take:
    """Load both dancers of a take, estimate beats (from motion at ``beat_fps``), decimate to MODEL_FPS."""
    src = [load_bvh_metric(p) for p in files]
    n = min(m.n_frames for m in src)
    fps = src[0].fps
    # Kinetic beats at 60 fps: enough timing resolution, 2x cheaper than the 120 fps source.
    step_b = fps / beat_fps
    times_b = np.arange(0, n - 1, step_b)
    pos = [motion_positions(resample_motion(m, times_b, beat_fps)) for m in src]
    beats = kinetic_beats(pos, beat_fps)
    step = fps / MODEL_FPS
    times = np.arange(0, n - 1, step)
    dancers = [resample_motion(m, times, float(MODEL_FPS)) for m in src]
    return Take(take=take, dancers=dancers, beats=beats)


def warp_take(take: Take, factor: float) -> Take:
    """The same take played ``factor`` times faster (motion resampled, beats rescaled)."""
    if factor <= 0:
        raise ValueError("warp factor must be positive")
    n_out = int(np.floor((take.n_frames - 1) / factor)) + 1
    src_times = np.arange(n_out) * factor
    dancers = [resample_motion(m, src_times, float(MODEL_FPS)) for m in take.dancers]
    b = take.beats
    beats = KineticBeats(bpm=b.bpm * factor, beats_s=b.beats_s / factor, envelope=b.envelope, fps=b.fps * factor)
    return Take(take=take.take, dancers=dancers, beats=beats, warp=take.warp * factor)


def load_split(data_dir: Path, split: str) -> list[Take]:
    """Takes of ``split`` ("train" or "val"): both dancers of a take always on the same side."""
    wanted = {"train": TRAIN_TAKES, "val": VAL_TAKES}.get(split)
    if wanted is None:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'val'")
    takes = list_takes(data_dir)
    out = []
    for t in wanted:
        if t in takes:
            out.append(load_take(takes[t], t))
    if not out:
        raise FileNotFoundError(f"none of the {split} takes {wanted} found in {data_dir} (have {sorted(takes)})")
    return out

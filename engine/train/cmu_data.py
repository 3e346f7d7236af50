"""Mocap takes of every source: loading at the true rate, metric scaling or retargeting, 30 fps, take-level
split, kinetic beats and time warps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.capture import floor_to_zero as floor_to_zero  # re-exported (the loaders live there)
from engine.models.capture import load_source_motion as load_source_motion
from engine.models.pose_repr import Motion, motion_positions, resample_motion
from engine.train.kinetic_beats import KineticBeats, kinetic_beats
from engine.train.sources import DEFAULT_DATA_ROOT, SOURCES, resolve_folders

#: Default location of the salsa data (kept for callers that name one folder).
DEFAULT_CMU_DIR = DEFAULT_DATA_ROOT / SOURCES["salsa"].folder
TRAIN_TAKES: tuple[str, ...] = SOURCES["salsa"].train_takes
VAL_TAKES: tuple[str, ...] = SOURCES["salsa"].val_takes


@dataclass
class Take:
    """One take: all its dancers (same length), at MODEL_FPS in metres, with its kinetic beat grid."""

    take: str
    dancers: list[Motion]  # salsa: subject 60 (lead), 61 (follow); solo styles: one dancer
    beats: KineticBeats  # estimated from all dancers at the source rate; beats_s on this clip's timeline
    warp: float = 1.0  # tempo factor applied (1.1 = 10 % faster than captured)
    style: str = "salsa"
    dancer_ids: tuple[str, ...] = ()

    @property
    def n_frames(self) -> int:
        return self.dancers[0].n_frames

    @property
    def duration_s(self) -> float:
        return self.n_frames / MODEL_FPS

    @property
    def name(self) -> str:
        prefix = "take" if self.style == "salsa" else self.style
        return f"{prefix}{self.take}_x{self.warp:.2f}"


def list_takes(data_dir: Path) -> dict[str, list[Path]]:
    """Salsa take id -> its BVH files (one per dancer); a clear error if the folder holds none."""
    return SOURCES["salsa"].list_takes(data_dir)


def load_bvh_metric(path: Path) -> Motion:
    """A CMU salsa BVH file as a metric Motion at its true rate (60 fps; see :mod:`engine.train.sources`)."""
    return load_source_motion(path, SOURCES["salsa"])


def load_take(files: list[Path], take: str, beat_fps: float = 60.0, style: str = "salsa") -> Take:
    """Load all dancers of a take, estimate beats (from motion at ``beat_fps``), decimate to MODEL_FPS."""
    source = SOURCES[style]
    src = [load_source_motion(p, source) for p in files]
    n = min(m.n_frames for m in src)
    fps = src[0].fps
    # Kinetic beats at 60 fps: enough timing resolution, cheaper than a 120 fps source.
    step_b = fps / beat_fps
    times_b = np.arange(0, n - 1, step_b)
    pos = [motion_positions(resample_motion(m, times_b, beat_fps)) for m in src]
    beats = kinetic_beats(pos, beat_fps)
    step = fps / MODEL_FPS
    times = np.arange(0, n - 1, step)
    dancers = [resample_motion(m, times, float(MODEL_FPS)) for m in src]
    rx = re.compile(source.pattern)
    ids = tuple((rx.match(p.name).group(1) if rx.match(p.name) else "") or "solo" for p in files)  # type: ignore[union-attr]
    return Take(take=take, dancers=dancers, beats=beats, style=style, dancer_ids=ids)


def warp_take(take: Take, factor: float) -> Take:
    """The same take played ``factor`` times faster (motion resampled, beats rescaled)."""
    if factor <= 0:
        raise ValueError("warp factor must be positive")
    n_out = int(np.floor((take.n_frames - 1) / factor)) + 1
    src_times = np.arange(n_out) * factor
    dancers = [resample_motion(m, src_times, float(MODEL_FPS)) for m in take.dancers]
    b = take.beats
    beats = KineticBeats(bpm=b.bpm * factor, beats_s=b.beats_s / factor, envelope=b.envelope, fps=b.fps * factor)
    return Take(take=take.take, dancers=dancers, beats=beats, warp=take.warp * factor, style=take.style,
                dancer_ids=take.dancer_ids)


def load_split(data_dir: Path | None, split: str, styles: tuple[str, ...] | None = None) -> list[Take]:
    """Takes of ``split`` ("train" or "val") of every style found under ``data_dir``.

    All dancers of a take are always on the same side. ``data_dir`` is the data root (default: the
    shared data) or one source's folder.
    """
    folders = resolve_folders(data_dir, styles or tuple(SOURCES))
    out = []
    for style, folder in folders.items():
        src = SOURCES[style]
        wanted = src.takes(split)
        takes = src.list_takes(folder)
        got = [load_take(takes[t], t, style=style) for t in wanted if t in takes]
        if not got:
            raise FileNotFoundError(
                f"none of the {style} {split} takes {wanted} found in {folder} (have {sorted(takes)})")
        out.extend(got)
    return out

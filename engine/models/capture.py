"""Real motion capture as a motion database: the takes a retrieval model plays from, at their true frame rate.

Run-time code cannot use the training loaders (:mod:`engine.train` is off limits to the runtime), so this
small module reads the shared CMU BVH files itself. The one thing to get right is the frame rate: the CMU
salsa takes are 60 fps although their headers say 120 (``cmu_salsa/README.md``); :func:`capture_fps` is the
single place that knows it, so it can later share the training loaders' per-source rate table.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.pose_repr import CMU_SCALE, Motion, metric_cmu_skeleton, resample_motion
from engine.skeleton.bvh import read_bvh

#: Salsa takes a retrieval database uses by default: the GPT's training takes (12 and 13 stay held out).
SALSA_TAKES: tuple[str, ...] = ("01", "02", "03", "04", "05", "06", "07", "09", "10", "11")
_SALSA_NAME = re.compile(r"^(6[01])_(\d\d)_scaled\.bvh$")


def default_data_dir() -> Path:
    """``$GROOVECAST_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("GROOVECAST_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def capture_fps(source: str, header_fps: float) -> float:
    """True frame rate of a capture source (the folder name, e.g. ``cmu_salsa``) whose header says ``header_fps``.

    The CMU salsa conversion writes 120 fps in every header; CMU's own index lists subjects 60 and 61 at
    60 fps, and only 60 fps gives plausible salsa speeds (see ``cmu_salsa/README.md``).
    """
    if source == "cmu_salsa":
        return 60.0
    return header_fps


@dataclass
class CaptureTake:
    """One dancer of one take at MODEL_FPS, in metres on the engine's CMU skeleton."""

    name: str  # e.g. "60_01"
    style: str  # genre name, e.g. "salsa"
    motion: Motion


def salsa_files(data_dir: Path, takes: tuple[str, ...] = SALSA_TAKES) -> list[Path]:
    """The salsa BVH files of ``takes`` under ``data_dir`` (the shared data folder or the salsa folder)."""
    folder = data_dir / "cmu_salsa" if (data_dir / "cmu_salsa").is_dir() else data_dir
    if not folder.is_dir():
        raise FileNotFoundError(f"motion capture folder {folder} does not exist (give --data DIR)")
    files = []
    for p in sorted(folder.iterdir()):
        m = _SALSA_NAME.match(p.name)
        if m and m.group(2) in takes:
            files.append(p)
    if not files:
        raise FileNotFoundError(f"no CMU salsa takes (60_01_scaled.bvh ...) of {list(takes)} in {folder}")
    return files


def load_take(path: Path, source: str = "cmu_salsa", style: str = "salsa") -> CaptureTake:
    """A BVH take at its true rate (:func:`capture_fps`), scaled to metres, resampled to MODEL_FPS."""
    bvh = read_bvh(path)
    skel = metric_cmu_skeleton()
    if bvh.skeleton.joint_names != skel.joint_names:
        raise ValueError(f"{path}: joints differ from the CMU skeleton ({len(bvh.skeleton.joint_names)} joints)")
    fps = capture_fps(source, bvh.fps)
    src = Motion(skeleton=skel, root_pos=bvh.root_positions * CMU_SCALE, rot=bvh.local_rot_mats, fps=fps)
    times = np.arange(0.0, src.n_frames - 1, fps / MODEL_FPS)
    name = path.name.split("_scaled")[0]
    return CaptureTake(name=name, style=style, motion=resample_motion(src, times, float(MODEL_FPS)))

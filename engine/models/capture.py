"""Reading real motion capture onto the engine's skeleton at its true frame rate (training and retrieval share it).

Every source of :mod:`engine.models.capture_sources` is read here: the CMU salsa and Indian files (the
engine's CMU skeleton, rescaled to metres) and the modern files (an iClone skeleton, retargeted by
:mod:`engine.skeleton.retarget`). The frame rate always comes from the source table, never from a file
header (the salsa headers say 120 fps; the takes were captured at 60). Run-time code (the retrieval model)
cannot use the training loaders (:mod:`engine.train` is off limits to it), so the loading lives here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.capture_sources import DEFAULT_DATA_ROOT, SOURCES, MotionSource, resolve_folders
from engine.models.pose_repr import CMU_SCALE, Motion, metric_cmu_skeleton, resample_motion
from engine.skeleton.bvh import read_bvh
from engine.skeleton.retarget import retarget
from engine.skeleton.skeleton import forward_kinematics_full


def default_data_dir() -> Path:
    """``$GROOVECAST_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("GROOVECAST_DATA")
    return Path(env) if env else DEFAULT_DATA_ROOT


def floor_to_zero(motion: Motion) -> Motion:
    """Shift the root so the floor (5th percentile of the lowest foot point per frame) is at y = 0."""
    pos, wrot = forward_kinematics_full(motion.skeleton, motion.root_pos, motion.rot)
    skel = motion.skeleton
    ys = []
    for name in ("rFoot", "lFoot"):
        j = skel.index(name)
        ys.append(pos[:, j, 1])
        if j in skel.end_sites:
            ys.append((pos[:, j] + wrot[:, j] @ skel.end_sites[j])[:, 1])
    floor = float(np.percentile(np.min(np.stack(ys, axis=1), axis=1), 5))
    root = motion.root_pos.copy()
    root[:, 1] -= floor
    return Motion(skeleton=skel, root_pos=root, rot=motion.rot, fps=motion.fps)


def load_source_motion(path: Path, src: MotionSource) -> Motion:
    """A file of ``src`` as a metric Motion on the engine skeleton at the source's TRUE rate, floor at 0."""
    bvh = read_bvh(path)
    skel = metric_cmu_skeleton()
    if src.units_per_cmu_unit is None:
        r = retarget(bvh.skeleton, bvh.root_positions[src.drop_leading:], bvh.local_rot_mats[src.drop_leading:], skel)
        return Motion(skeleton=skel, root_pos=r.root_pos, rot=r.rot, fps=src.fps)
    if bvh.skeleton.joint_names != skel.joint_names:
        raise ValueError(f"{path}: joints differ from the CMU skeleton (got {len(bvh.skeleton.joint_names)} joints)")
    d = src.drop_leading
    scale = CMU_SCALE / src.units_per_cmu_unit
    m = Motion(skeleton=skel, root_pos=bvh.root_positions[d:] * scale, rot=bvh.local_rot_mats[d:], fps=src.fps)
    return floor_to_zero(m)


@dataclass
class CaptureTake:
    """One dancer of one take at MODEL_FPS, in metres on the engine's CMU skeleton."""

    name: str  # the file's stem, e.g. "60_01_scaled", "indian_04", "05_02"
    style: str  # genre name, e.g. "salsa"
    motion: Motion


def capture_files(data_dir: Path, style: str, split: str = "train", takes: tuple[str, ...] | None = None) -> list[Path]:
    """The files (every dancer) of ``style``'s ``split`` takes (or of ``takes``) under ``data_dir``.

    ``data_dir`` is the data root (with ``cmu_salsa/`` ...) or one source's folder. Raises FileNotFoundError
    with the reason when the style's folder or takes are missing.
    """
    src = SOURCES[style]
    folder = resolve_folders(data_dir, (style,)).get(style)
    if folder is None:
        raise FileNotFoundError(f"no {style} capture ({src.folder}/) in {data_dir}")
    found = src.list_takes(folder)
    wanted = src.takes(split) if takes is None else takes
    files = [p for t in wanted if t in found for p in found[t]]
    if not files:
        raise FileNotFoundError(f"none of the {style} takes {list(wanted)} in {folder}")
    return files


def load_take(path: Path, style: str = "salsa") -> CaptureTake:
    """One file of ``style`` at its true rate (:data:`SOURCES`), in metres, resampled to MODEL_FPS."""
    src = load_source_motion(path, SOURCES[style])
    times = np.arange(0.0, src.n_frames - 1, src.fps / MODEL_FPS)
    return CaptureTake(name=path.stem, style=style, motion=resample_motion(src, times, float(MODEL_FPS)))

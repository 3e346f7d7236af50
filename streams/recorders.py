"""Recorders that write a pose stream to BVH (opens in Blender) or NPZ (arrays plus stamps)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from engine.frames import PoseFrame
from engine.skeleton import rotations as R
from engine.skeleton.bvh import write_bvh
from engine.skeleton.skeleton import Skeleton, get_skeleton

log = logging.getLogger(__name__)


class _Recorder:
    """Collects one performer's frames in memory (about 0.7 KB per 43-joint frame) and writes on close."""

    def __init__(self, path: str | Path, skeleton: Skeleton | None = None, performer: int | None = None) -> None:
        self.path = Path(path)
        self.skeleton = skeleton
        self.performer = performer
        self.frames: list[PoseFrame] = []
        self.skipped = 0
        self.closed = False

    def __call__(self, frame: PoseFrame) -> None:
        self.record(frame)

    def record(self, frame: PoseFrame) -> None:
        if self.closed:
            raise RuntimeError(f"recorder for {self.path} is closed")
        if self.performer is None:
            self.performer = frame.performer
        if frame.performer != self.performer:
            return
        if self.skeleton is None:
            self.skeleton = get_skeleton(frame.skeleton)
        if frame.rotations.shape != (self.skeleton.num_joints, 4):
            # a live stream must not die on one bad frame: skip it, count it, say why once
            self.skipped += 1
            if self.skipped == 1:
                log.warning("recorder %s: skipping frames with rotations %s (skeleton %r has %d joints)",
                            self.path, frame.rotations.shape, self.skeleton.name, self.skeleton.num_joints)
            return
        self.frames.append(frame)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        root = np.stack([np.asarray(f.root_position, dtype=np.float64) for f in self.frames])  # [N, 3]
        rot = np.stack([np.asarray(f.rotations, dtype=np.float64) for f in self.frames])  # [N, J, 4]
        return root, rot

    def close(self) -> Path | None:
        """Write the file; returns its path, or None when nothing was recorded."""
        if self.closed:
            return self.path
        self.closed = True
        if not self.frames:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        return self.path

    def _write(self) -> None:
        raise NotImplementedError


class BvhRecorder(_Recorder):
    """Writes a BVH with every joint's rotation channels in ``rotation_order`` (default ZXY, as CMU)."""

    def __init__(self, path: str | Path, skeleton: Skeleton | None = None, performer: int | None = None,
                 rotation_order: str = "ZXY") -> None:
        super().__init__(path, skeleton, performer)
        self.rotation_order = rotation_order

    def _write(self) -> None:
        assert self.skeleton is not None
        root, rot = self._arrays()
        fps = self.frames[0].fps
        write_bvh(self.path, self.skeleton, root, 1.0 / fps, local_rot_mats=R.quat_to_matrix(rot),
                  rotation_orders=self.rotation_order)


class NpzRecorder(_Recorder):
    """Writes arrays (root, rotations, positions) with per-frame stamps and the skeleton definition."""

    def _write(self) -> None:
        assert self.skeleton is not None
        root, rot = self._arrays()
        fr = self.frames
        arrays: dict[str, Any] = dict(
            root_position=root.astype(np.float32),
            rotations=rot.astype(np.float32),
            frame_index=np.array([f.frame_index for f in fr], dtype=np.int64),
            sample_index=np.array([f.sample_index for f in fr], dtype=np.int64),
            capture_ns=np.array([f.capture_ns for f in fr], dtype=np.int64),
            time_s=np.array([f.time_s for f in fr], dtype=np.float64),
            bpm=np.array([f.bpm for f in fr], dtype=np.float32),
            beat_phase=np.array([f.beat_phase for f in fr], dtype=np.float32),
            beat=np.array([f.beat for f in fr], dtype=bool),
            energy=np.array([f.energy for f in fr], dtype=np.float32),
            fps=np.float64(fr[0].fps),
            performer=np.int64(self.performer or 0),
            skeleton=np.str_(self.skeleton.name),
            joint_names=np.array(self.skeleton.joint_names),
            parents=np.array(self.skeleton.parents, dtype=np.int64),
            offsets=self.skeleton.offsets,
        )
        if all(f.positions is not None for f in fr):
            arrays["positions"] = np.stack([np.asarray(f.positions, dtype=np.float32) for f in fr])
        np.savez_compressed(self.path, **arrays)


def recorder_for(path: str | Path, skeleton: Skeleton | None = None) -> _Recorder:
    """A BVH or NPZ recorder chosen by the file suffix."""
    p = Path(path)
    if p.suffix.lower() == ".bvh":
        return BvhRecorder(p, skeleton)
    if p.suffix.lower() == ".npz":
        return NpzRecorder(p, skeleton)
    raise ValueError(f"cannot record to {p.name!r}: use a .bvh or .npz file name")

"""A motion clip (root positions + joint-local quaternions) with resampling by slerp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.skeleton import rotations as R
from engine.skeleton.skeleton import Skeleton, forward_kinematics


@dataclass
class Motion:
    """A clip in engine space.

    Attributes:
        skeleton: hierarchy (offsets in the same units as ``root_positions``).
        fps: frames per second.
        root_positions: ``[N, 3]``.
        rotations: ``[N, J, 4]`` joint-local unit quaternions (w, x, y, z).
    """

    skeleton: Skeleton
    fps: float
    root_positions: np.ndarray
    rotations: np.ndarray

    def __post_init__(self) -> None:
        n = self.root_positions.shape[0]
        if self.rotations.shape != (n, self.skeleton.num_joints, 4):
            raise ValueError(
                f"rotations must be [{n}, {self.skeleton.num_joints}, 4] for skeleton {self.skeleton.name!r}, "
                f"got {self.rotations.shape}"
            )
        if n == 0:
            raise ValueError("a motion needs at least one frame")

    @property
    def num_frames(self) -> int:
        return int(self.root_positions.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def positions(self) -> np.ndarray:
        """``[N, J, 3]`` world joint positions."""
        return forward_kinematics(self.skeleton, self.root_positions, R.quat_to_matrix(self.rotations))

    def sample(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pose at times ``t_s [M]`` (seconds, clamped to the clip): lerp root, slerp rotations.

        Returns:
            ``[M, 3]`` root positions and ``[M, J, 4]`` rotations.
        """
        t = np.clip(np.asarray(t_s, dtype=np.float64) * self.fps, 0.0, self.num_frames - 1)
        i0 = np.floor(t).astype(np.int64)
        i1 = np.minimum(i0 + 1, self.num_frames - 1)
        a = t - i0
        root = self.root_positions[i0] * (1 - a)[:, None] + self.root_positions[i1] * a[:, None]
        rot = R.slerp(self.rotations[i0], self.rotations[i1], a[:, None])  # t: [M, 1] against [M, J, 4]
        return root, rot

    def resample(self, fps: float) -> Motion:
        """The same clip at ``fps`` (slerp between source frames), covering the same duration."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        n = max(1, int(np.floor((self.num_frames - 1) / self.fps * fps + 1e-9)) + 1)
        root, rot = self.sample(np.arange(n) / fps)
        return Motion(self.skeleton, float(fps), root, rot)


def load_motion(path: str | Path) -> Motion:
    """Load a ``.bvh`` or an AIST++ ``.pkl`` as a :class:`Motion` (units as in the file)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".bvh":
        from engine.skeleton.bvh import read_bvh

        m = read_bvh(p)
        return Motion(m.skeleton, m.fps, m.root_positions, m.local_quats)
    if suffix == ".pkl":
        from engine.skeleton.aistpp import read_aistpp

        a = read_aistpp(p)
        return Motion(a.skeleton, a.fps, a.root_positions, a.local_quats)
    raise ValueError(f"unsupported motion file {p.name!r}: expected .bvh or AIST++ .pkl")

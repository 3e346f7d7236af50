"""Small synthetic data for the training tests: CMU-skeleton motion with known step beats, written as BVH."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.models.pose_repr import Motion, metric_cmu_skeleton
from engine.skeleton import rotations as R
from engine.skeleton.bvh import write_bvh
from engine.skeleton.skeleton import get_skeleton


def stepping_motion(seconds: float, fps: float, bpm: float, seed: int = 0, scale: float = 1.0) -> Motion:
    """A dancer swinging from side to side once per beat: every joint stops exactly on the beats.

    Angles follow -cos(pi * t / beat), so joint speed is |sin(pi * t / beat)|: zero at t = k * 60 / bpm.
    """
    rng = np.random.default_rng(seed)
    skel = metric_cmu_skeleton() if scale == 1.0 else get_skeleton("cmu").scaled(scale)
    n = int(seconds * fps)
    t = np.arange(n) / fps
    beat = 60.0 / bpm
    swing = -np.cos(np.pi * t / beat)  # [T] turning points (speed 0) on the beats
    euler = np.zeros((n, skel.num_joints, 3))
    amp = 1.0 + 0.2 * rng.standard_normal(skel.num_joints)
    for name, axis, deg in (
        ("rThigh", 1, -25), ("lThigh", 1, -25), ("rShin", 1, 35), ("lShin", 1, 35),
        ("rShldr", 0, 30), ("lShldr", 0, -30), ("rForeArm", 2, 40), ("lForeArm", 2, -40),
        ("abdomen", 0, 10), ("chest", 0, 8), ("head", 0, 10),
    ):
        j = skel.index(name)
        euler[:, j, axis] = deg * amp[j] * swing * (-1.0 if name[0] == "l" else 1.0)
    rot = R.euler_to_matrix(euler, "ZXY")
    root = np.zeros((n, 3))
    root[:, 1] = 0.95 * scale / (1.60 / 1.192858) if scale != 1.0 else 0.95
    root[:, 0] = 0.05 * swing  # the hips sway with the same turning points
    return Motion(skeleton=skel, root_pos=root, rot=rot, fps=fps)


def write_cmu_like(root: Path, takes: dict[str, float], seconds: float = 6.0) -> Path:
    """Write takes (id -> BPM) as 60_TT/61_TT BVH files in CMU units; returns the folder.

    Like the real salsa files: sampled at 60 fps with a header that says 120 (engine.train.sources reads 60).
    """
    root.mkdir(parents=True, exist_ok=True)
    base = get_skeleton("cmu")
    for i, (take, bpm) in enumerate(takes.items()):
        for d, subject in enumerate(("60", "61")):
            m = stepping_motion(seconds, 60.0, bpm, seed=10 * i + d, scale=1.0)
            unit_root = m.root_pos / (1.60 / 1.192858)
            write_bvh(root / f"{subject}_{take}_scaled.bvh", base, unit_root, 1.0 / 120.0,
                      local_rot_mats=m.rot, rotation_orders="ZXY")
    return root

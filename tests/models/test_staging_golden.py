"""The staging's output is pinned: three synthetic performers staged together (steering, stride IK, air moves, a
keyframe pin, a goal, a reset, the speed limit) must give the frames in ``staging_golden.npz`` within 1e-6 (m, and
quaternion components), so a change of the staging's arithmetic that changes its output fails here.

The fixture was written by the per-frame ``Stager._steer`` of session 9 (commit a62e28f) and the vectorised one
reproduces it to the bit on the machine that wrote it. A deliberate change of the staging's behaviour rewrites it:
``python3 -m tests.models.test_staging_golden --write`` (and says so in the commit)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from engine.models.pose_repr import metric_cmu_skeleton
from engine.models.staging import Stager, StagingConfig
from engine.skeleton import rotations as R

SKEL = metric_cmu_skeleton()
GOLDEN = Path(__file__).with_name("staging_golden.npz")
FPS = 30
FRAMES = 160
ROOT_Y = 0.8696  # toe end sites on the floor at rest
#: the joints the steering changes (the root's yaw, the legs' stride IK); the speed limit blends every joint
KEPT_JOINTS = [0] + [SKEL.index(side + n) for side in "rl" for n in ("Buttock", "Thigh", "Shin", "Foot")]


def stepper(velocity: tuple[float, float], start: tuple[float, float], yaw0: float = 0.0, spin_rps: float = 0.0,
            bend_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic dancer stepping (legs lifted in turn, knees bent by ``bend_deg``) while travelling and turning."""
    t = np.arange(FRAMES) / FPS
    quat = np.zeros((FRAMES, SKEL.num_joints, 4))
    quat[..., 0] = 1.0
    h = 0.5 * (yaw0 + 2 * np.pi * spin_rps * t)
    quat[:, 0, 0], quat[:, 0, 2] = np.cos(h), np.sin(h)
    lift = np.deg2rad(40.0) * np.sin(2 * np.pi * t / 0.8)
    bend = np.deg2rad(bend_deg)
    for side, a in (("l", np.maximum(lift, 0.0)), ("r", np.maximum(-lift, 0.0))):
        for name, k in (("Thigh", -1.0), ("Shin", 2.0), ("Foot", -1.0)):
            angle = k * (a + bend)
            quat[:, SKEL.index(side + name)] = R.axis_angle_to_quat(np.stack([angle, 0 * a, 0 * a], axis=-1))
    root = np.zeros((FRAMES, 3))
    root[:, 0] = start[0] + velocity[0] * t
    root[:, 2] = start[1] + velocity[1] * t
    root[:, 1] = ROOT_Y - 0.05 * np.sin(np.deg2rad(bend_deg))
    return root, quat


def scenario() -> tuple[np.ndarray, np.ndarray]:
    """Three performers staged together, 4 frames per step, as the live model stages them: root [3, T, 3] and the
    kept joints' quaternions [3, T, 9, 4]."""
    dancers = [stepper((0.25, 0.05), (1.3, 0.2), bend_deg=19.0),  # walks off stage: walk, pull and stride IK
               stepper((-0.2, 0.3), (0.3, -0.4), yaw0=np.pi, spin_rps=0.3),  # faces away, turning, to its own goal
               stepper((0.2, -0.1), (-0.8, 0.5), yaw0=0.6, bend_deg=15.0)]  # a jump, a snap and a reset
    root0, _ = dancers[0]
    root0[100:116, 1] += 0.3 * np.sin(np.pi * np.arange(16) / 15)  # a jump: no foot on the floor (air move)
    root2, quat2 = dancers[2]
    root2[60:, 0] += 0.5  # a snap: the speed limit blends it
    quat2[60:, 0] = R.quat_multiply(R.axis_angle_to_quat(np.array([0.0, 1.2, 0.0])), quat2[60:, 0])
    st = Stager(StagingConfig())
    for pid, style in enumerate(("salsa", "modern", "indian")):
        st.set_style(pid, style)
    st.set_goal(1, np.array([0.5, -0.3]), 0.4)
    roots = np.stack([d[0] for d in dancers])
    quats = np.stack([d[1] for d in dancers])
    out_r = np.empty_like(roots)
    out_q = np.empty((3, FRAMES, len(KEPT_JOINTS), 4))
    for s in range(0, FRAMES, 4):
        pin = np.zeros((3, 4))
        if 60 <= s < 84:  # a keyframe pins performer 0's legs (no new stride pull, the IK gives way)
            pin[0] = np.clip((s - 56 + np.arange(4)) / 16.0, 0.0, 1.0)
        if s == 120:
            st.reset(2)  # starts over where it stands: the speed limit's state too
        r, q = st.process([0, 1, 2], roots[:, s : s + 4], quats[:, s : s + 4], pin)
        out_r[:, s : s + 4] = r
        out_q[:, s : s + 4] = q[:, :, KEPT_JOINTS]
    return out_r, out_q


def test_the_staging_output_is_the_pinned_one() -> None:
    want = np.load(GOLDEN)
    root, quat = scenario()
    dr = np.abs(root - want["root"]).max()
    dq = np.abs(quat - want["quat"]).max()
    assert dr < 1e-6 and dq < 1e-6, (dr, dq)
    # the scenario exercises what it names: stage walk and pull (the first performer ends nearer the centre than
    # its raw path), the stride IK (its legs re-bent), the turn to its goal (the second), the speed limit (the third)
    assert np.linalg.norm(root[0, -1, [0, 2]]) < 1.2  # its raw path ends 2.6 m out
    raw_legs = stepper((0.25, 0.05), (1.3, 0.2), bend_deg=19.0)[1][:, KEPT_JOINTS[1:]]
    assert np.abs(np.abs((quat[0, :, 1:] * raw_legs).sum(-1)) - 1.0).max() > 1e-4


if __name__ == "__main__" and "--write" in sys.argv:
    r, q = scenario()
    np.savez_compressed(GOLDEN, root=r, quat=q)
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")

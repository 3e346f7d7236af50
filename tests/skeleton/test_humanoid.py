"""T-pose corrections: each C_j is a rotation taking the bone's T-pose direction to its rest direction."""

from __future__ import annotations

import numpy as np
import pytest

from engine.skeleton.humanoid import TPOSE_DIRECTIONS, WORLD_ALIGNED, rest_direction, tpose_corrections, tpose_positions
from engine.skeleton.skeleton import CMU_SKELETON, SMPL_SKELETON, Skeleton


def _angle(m: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(m) - 1) / 2, -1, 1))))


@pytest.mark.parametrize("skel", [CMU_SKELETON, SMPL_SKELETON], ids=["cmu", "smpl"])
def test_corrections_are_rotations_mapping_tpose_to_rest(skel: Skeleton) -> None:
    c = tpose_corrections(skel)
    np.testing.assert_allclose(c @ np.swapaxes(c, -1, -2), np.broadcast_to(np.eye(3), c.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(c), 1.0, atol=1e-9)
    checked = 0
    for j, name in enumerate(skel.joint_names):
        bone = skel.unity_bones.get(name)
        d = rest_direction(skel, j)
        if bone in TPOSE_DIRECTIONS and d is not None:
            np.testing.assert_allclose(c[j] @ np.array(TPOSE_DIRECTIONS[bone]), d, atol=1e-9)
            checked += 1
        elif bone in WORLD_ALIGNED:
            np.testing.assert_allclose(c[j], np.eye(3))
    assert checked >= 14


def test_cmu_rest_pose_offsets_from_a_tpose() -> None:
    """The figures from the issue: CMU's rest forearm 17.5 deg, neck 10 deg, shin 6.5 deg off a T-pose."""
    c = tpose_corrections(CMU_SKELETON)
    i = CMU_SKELETON.index
    assert _angle(c[i("lForeArm")]) == pytest.approx(17.5, abs=0.2)
    assert _angle(c[i("neck")]) == pytest.approx(10.0, abs=0.2)
    assert _angle(c[i("rShin")]) == pytest.approx(6.5, abs=0.2)


@pytest.mark.parametrize("skel", [CMU_SKELETON, SMPL_SKELETON], ids=["cmu", "smpl"])
def test_tpose_positions_keep_bone_lengths_and_spread_the_arms(skel: Skeleton) -> None:
    t = tpose_positions(skel)
    lengths = np.array([np.linalg.norm(t[j] - t[p]) for j, p in enumerate(skel.parents) if p >= 0])
    np.testing.assert_allclose(lengths, skel.bone_lengths()[1:], rtol=1e-9)
    names = {b: skel.joint_names.index(n) for n, b in skel.unity_bones.items()}
    for side, x in (("Left", 1.0), ("Right", -1.0)):
        arm = t[names[side + "Hand"]] - t[names[side + "UpperArm"]]
        np.testing.assert_allclose(arm / np.linalg.norm(arm), [x, 0, 0], atol=1e-9)
        leg = t[names[side + "Foot"]] - t[names[side + "UpperLeg"]]
        np.testing.assert_allclose(leg / np.linalg.norm(leg), [0, -1, 0], atol=1e-9)

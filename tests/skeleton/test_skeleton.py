"""Skeleton definitions, registry and forward kinematics."""

from __future__ import annotations

import numpy as np
import pytest

from engine.skeleton import rotations as R
from engine.skeleton.skeleton import (
    CMU_SKELETON,
    SMPL_SKELETON,
    Skeleton,
    forward_kinematics,
    get_skeleton,
)


def test_registry_and_errors() -> None:
    assert get_skeleton("cmu") is CMU_SKELETON
    assert get_skeleton("smpl").num_joints == 24
    with pytest.raises(KeyError, match="registered: cmu, smpl"):
        get_skeleton("nope")
    with pytest.raises(KeyError, match="joints: hip, abdomen"):
        CMU_SKELETON.index("pelvis")


def test_cmu_definition_facts() -> None:
    s = CMU_SKELETON
    assert s.num_joints == 43
    assert s.joint_names[0] == "hip"
    assert s.parents[s.index("rForeArm")] == s.index("rShldr")
    assert s.unity_bones["rShldr"] == "RightUpperArm"
    assert s.unity_bones["lPinky2"] == "LeftLittleIntermediate"
    assert "rButtock" not in s.unity_bones
    # the thigh's nearest mapped ancestor skips the unmapped buttock
    assert s.mapped_parent(s.index("rThigh")) == 0
    assert s.height() == pytest.approx(1.19, abs=0.01)  # README: about 1.19 units tall
    # left side is +X in engine space
    rest = s.rest_positions()
    assert rest[s.index("lHand"), 0] > 0.4 and rest[s.index("rHand"), 0] < -0.4


def test_smpl_definition_facts() -> None:
    s = SMPL_SKELETON
    assert s.parents[s.index("left_knee")] == s.index("left_hip")
    rest = s.rest_positions()
    assert rest[s.index("left_wrist"), 0] > 0.5
    assert rest[s.index("head"), 1] > 0.4 and rest[s.index("left_foot"), 1] < -0.9
    assert set(s.unity_bones.values()) >= {"Hips", "Head", "LeftHand", "RightFoot"}


def test_fk_known_case() -> None:
    # two-bone chain: rotating the root 90 degrees about Z swings a +X bone to +Y
    s = Skeleton("chain", ("a", "b", "c"), (-1, 0, 1), np.array([[0, 0, 0], [1.0, 0, 0], [1.0, 0, 0]]))
    rot = np.broadcast_to(np.eye(3), (1, 3, 3, 3)).copy()
    rot[0, 0] = R.euler_to_matrix(np.array([90.0, 0, 0]), "ZXY")
    rot[0, 1] = R.euler_to_matrix(np.array([-90.0, 0, 0]), "ZXY")
    pos = forward_kinematics(s, np.array([[5.0, 0, 0]]), rot)
    np.testing.assert_allclose(pos[0], [[5, 0, 0], [5, 1, 0], [6, 1, 0]], atol=1e-12)


def test_fk_preserves_bone_lengths() -> None:
    rng = np.random.default_rng(0)
    rot = R.quat_to_matrix(R.quat_normalize(rng.normal(size=(7, 43, 4))))
    pos = forward_kinematics(CMU_SKELETON, rng.normal(size=(7, 3)), rot)
    for j, p in enumerate(CMU_SKELETON.parents[1:], start=1):
        np.testing.assert_allclose(np.linalg.norm(pos[:, j] - pos[:, p], axis=-1),
                                   np.linalg.norm(CMU_SKELETON.offsets[j]), atol=1e-12)


def test_invalid_skeletons_rejected() -> None:
    with pytest.raises(ValueError, match="parents must come before"):
        Skeleton("bad", ("a", "b"), (-1, 1), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="offsets"):
        Skeleton("bad", ("a", "b"), (-1, 0), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown joints"):
        Skeleton("bad", ("a",), (-1,), np.zeros((1, 3)), unity_bones={"x": "Hips"})

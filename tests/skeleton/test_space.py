"""Unity space conversion (derived, then checked numerically), scale normalisation and root handling."""

from __future__ import annotations

import numpy as np
import pytest

from engine.skeleton import rotations as R
from engine.skeleton import space as S
from engine.skeleton.skeleton import CMU_SKELETON, Skeleton, forward_kinematics


def test_unity_quat_is_mirrored_matrix() -> None:
    q = R.quat_normalize(np.random.default_rng(0).normal(size=(200, 4)))
    m = R.quat_to_matrix(q)
    mirrored = S.UNITY_MIRROR @ m @ S.UNITY_MIRROR
    np.testing.assert_allclose(R.quat_to_matrix(S.to_unity_quats(q)), mirrored, atol=1e-12)
    np.testing.assert_allclose(S.from_unity_quats(S.to_unity_quats(q)), q)


def test_known_case_yaw_flips_direction() -> None:
    # +90 deg about engine +Y turns +Z (forward) to +X (the character's left). In Unity that left is -X:
    # the Unity quaternion must turn Unity forward (+Z) to -X, i.e. a -90 deg yaw (turn left).
    q = R.axis_angle_to_quat(np.array([0.0, np.pi / 2, 0.0]))
    qu = S.to_unity_quats(q)
    np.testing.assert_allclose(R.quat_rotate(qu, np.array([0.0, 0, 1])), [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(S.to_unity_positions(np.array([1.0, 2, 3])), [-1, 2, 3])


def test_fk_commutes_with_conversion() -> None:
    rng = np.random.default_rng(1)
    q = R.quat_normalize(rng.normal(size=(5, 43, 4)))
    root = rng.normal(size=(5, 3))
    pos = forward_kinematics(CMU_SKELETON, root, R.quat_to_matrix(q))
    unity_skel = Skeleton("u", CMU_SKELETON.joint_names, CMU_SKELETON.parents,
                          S.to_unity_positions(CMU_SKELETON.offsets))
    pos_u = forward_kinematics(unity_skel, S.to_unity_positions(root), R.quat_to_matrix(S.to_unity_quats(q)))
    np.testing.assert_allclose(pos_u, S.to_unity_positions(pos), atol=1e-12)


def test_normalise_scale() -> None:
    root = np.array([[0.1, 0.66, 0.2], [0.2, 0.7, 0.3]])
    skel, root_s, k = S.normalise_scale(CMU_SKELETON, root, height_m=1.7)
    assert skel.height() == pytest.approx(1.7)
    assert k == pytest.approx(1.7 / CMU_SKELETON.height())
    np.testing.assert_allclose(root_s, root * k)
    with pytest.raises(ValueError, match="zero height"):
        S.scale_factor_to_height(Skeleton("z", ("a",), (-1,), np.zeros((1, 3))))


def test_root_helpers() -> None:
    root = np.array([[1.0, 0.9, 2.0], [1.5, 0.8, 2.5], [2.0, 0.9, 2.0]])
    o = S.root_to_origin(root)
    np.testing.assert_allclose(o[0], [0, 0.9, 0])
    np.testing.assert_allclose(o[2], [1.0, 0.9, 0])
    v = S.root_velocity(root)
    np.testing.assert_allclose(v[0], 0)
    np.testing.assert_allclose(S.integrate_root_velocity(v, root[0]), root)
    assert S.floor_height(np.array([[[0, -0.1, 0], [0, 1, 0]]])) == pytest.approx(-0.1)

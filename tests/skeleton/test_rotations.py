"""Rotation conversions: known cases and round trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.skeleton import rotations as R

ORDERS = ["".join(p) for p in itertools.permutations("XYZ")]


def _rand_quats(n: int, seed: int = 0) -> np.ndarray:
    return R.quat_normalize(np.random.default_rng(seed).normal(size=(n, 4)))


def test_axis_rotation_known_case() -> None:
    # 90 degrees about Z takes +X to +Y (right-handed, column vectors)
    m = R.euler_to_matrix(np.array([90.0, 0.0, 0.0]), "ZXY")
    np.testing.assert_allclose(m @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    q = R.axis_angle_to_quat(np.array([0, 0, np.pi / 2]))
    np.testing.assert_allclose(q, [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)], atol=1e-12)
    np.testing.assert_allclose(R.quat_rotate(q, np.array([1.0, 0, 0])), [0, 1, 0], atol=1e-12)


def test_euler_is_intrinsic_in_written_order() -> None:
    a = np.array([30.0, -40.0, 75.0])
    expect = R.axis_rotation_matrix("Z", np.deg2rad(30)) @ R.axis_rotation_matrix("X", np.deg2rad(-40)) @ \
        R.axis_rotation_matrix("Y", np.deg2rad(75))
    np.testing.assert_allclose(R.euler_to_matrix(a, "ZXY"), expect, atol=1e-12)
    # radians path
    np.testing.assert_allclose(R.euler_to_matrix(np.deg2rad(a), "ZXY", degrees=False), expect, atol=1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_round_trip(order: str) -> None:
    rng = np.random.default_rng(1)
    e = rng.uniform(-179, 179, size=(500, 3))
    e[:, 1] = rng.uniform(-89, 89, size=500)
    back = R.matrix_to_euler(R.euler_to_matrix(e, order), order)
    np.testing.assert_allclose(back, e, atol=1e-9)
    # gimbal lock: the angles differ but the rotation must be the same
    e[:, 1] = 90.0 * np.sign(rng.normal(size=500))
    m = R.euler_to_matrix(e, order)
    np.testing.assert_allclose(R.euler_to_matrix(R.matrix_to_euler(m, order), order), m, atol=1e-9)


def test_euler_rejects_bad_order() -> None:
    with pytest.raises(ValueError, match="permutation"):
        R.euler_to_matrix(np.zeros(3), "XXY")


def test_quat_matrix_round_trip_including_180_degrees() -> None:
    q = _rand_quats(1000)
    q180 = np.array([[0.0, 1, 0, 0], [0.0, 0, 1, 0], [0.0, 0, 0, 1], [0.0, 0.6, 0.8, 0]])
    q = np.concatenate([q, q180])
    back = R.matrix_to_quat(R.quat_to_matrix(q))
    np.testing.assert_allclose(np.abs(np.sum(back * q, -1)), 1.0, atol=1e-12)
    m = R.quat_to_matrix(q)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


def test_quat_multiply_matches_matrix_product() -> None:
    a, b = _rand_quats(50, 2), _rand_quats(50, 3)
    np.testing.assert_allclose(R.quat_to_matrix(R.quat_multiply(a, b)), R.quat_to_matrix(a) @ R.quat_to_matrix(b),
                               atol=1e-12)
    np.testing.assert_allclose(R.quat_multiply(a, R.quat_conjugate(a)), np.tile([1.0, 0, 0, 0], (50, 1)), atol=1e-12)


def test_axis_angle_round_trip_and_small_angles() -> None:
    rng = np.random.default_rng(4)
    aa = rng.normal(size=(200, 3))
    aa *= (rng.uniform(0, np.pi - 1e-3, size=(200, 1)) / np.linalg.norm(aa, axis=-1, keepdims=True))
    np.testing.assert_allclose(R.matrix_to_axis_angle(R.axis_angle_to_matrix(aa)), aa, atol=1e-9)
    tiny = np.array([1e-9, 0, 0])
    np.testing.assert_allclose(R.axis_angle_to_quat(tiny), [1, 5e-10, 0, 0], atol=1e-15)
    np.testing.assert_allclose(R.quat_to_axis_angle(np.array([1.0, 0, 0, 0])), [0, 0, 0])


def test_rot6d_round_trip_and_projection() -> None:
    m = R.quat_to_matrix(_rand_quats(100, 5))
    d6 = R.matrix_to_rot6d(m)
    np.testing.assert_allclose(d6[:, :3], m[:, :, 0])
    np.testing.assert_allclose(R.rot6d_to_matrix(d6), m, atol=1e-12)
    # arbitrary 6 numbers still give a proper rotation
    junk = R.rot6d_to_matrix(np.random.default_rng(6).normal(size=(100, 6)))
    np.testing.assert_allclose(np.linalg.det(junk), 1.0, atol=1e-12)


def test_slerp_endpoints_midpoint_and_short_path() -> None:
    q0 = np.array([1.0, 0, 0, 0])
    q1 = R.axis_angle_to_quat(np.array([0, 1.0, 0]))  # 1 rad about Y
    np.testing.assert_allclose(R.slerp(q0, q1, 0.0), q0, atol=1e-12)
    np.testing.assert_allclose(R.slerp(q0, q1, 1.0), q1, atol=1e-12)
    np.testing.assert_allclose(R.quat_to_axis_angle(R.slerp(q0, q1, 0.5)), [0, 0.5, 0], atol=1e-12)
    # -q1 is the same rotation: slerp must take the short way, not the 2pi-1 way round
    np.testing.assert_allclose(np.abs(R.quat_to_axis_angle(R.slerp(q0, -q1, 0.25))), [0, 0.25, 0], atol=1e-12)
    # vectorised t over leading dims
    t = np.linspace(0, 1, 5)
    out = R.slerp(np.tile(q0, (5, 1)), np.tile(q1, (5, 1)), t)
    np.testing.assert_allclose(R.quat_to_axis_angle(out)[:, 1], t, atol=1e-12)


def test_leading_dims_preserved() -> None:
    q = _rand_quats(24).reshape(2, 3, 4, 4)
    assert R.quat_to_matrix(q).shape == (2, 3, 4, 3, 3)
    assert R.matrix_to_euler(R.quat_to_matrix(q), "YXZ").shape == (2, 3, 4, 3)

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


def _bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_norm_and_cross_are_numpys_to_the_bit(dtype: type) -> None:
    """The live step's own norm and cross (no dispatch) compute what np.linalg.norm / np.cross compute."""
    rng = np.random.default_rng(3)
    a, b = (rng.normal(size=(5, 7, 3)).astype(dtype) for _ in range(2))
    a[0, 0] = 0.0
    assert _bits(R.norm(a), np.linalg.norm(a, axis=-1, keepdims=True))
    assert _bits(R.cross(a, b), np.cross(a, b))
    assert _bits(R.cross(a[:, :1], b), np.cross(a[:, :1], b))  # broadcast


def _shepperd_reference(m: np.ndarray) -> np.ndarray:
    """matrix_to_quat written out plainly: all four candidates, the one with the largest divisor, normalised, w >= 0."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    cands = np.stack([
        np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                  m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                  m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 - m00 - m11 + m22], -1)], axis=-2)
    diag = np.stack([1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    q = np.take_along_axis(cands, np.argmax(diag, axis=-1)[..., None, None], axis=-2)[..., 0, :]
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-8)
    return np.where(q[..., :1] < 0, -q, q)


@pytest.mark.parametrize("shape", [(), (1,), (4, 21), (0,)])
def test_quaternion_conversions_compute_the_plain_formulas_to_the_bit(shape: tuple[int, ...]) -> None:
    """The conversions a live step runs many times (written for few calls) give exactly the plain formulas' values:
    the dance's frames do not depend on how they are computed."""
    rng = np.random.default_rng(4)
    q = rng.normal(size=(*shape, 4))
    m = R.quat_to_matrix(q)
    special = np.array([np.eye(3), np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])])
    for mats in (m, special):
        assert _bits(R.matrix_to_quat(mats), _shepperd_reference(mats))
    n = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-8)
    w, x, y, z = np.moveaxis(n, -1, 0)
    plain = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                      2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                      2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(*shape, 3, 3)
    assert _bits(m, plain)
    assert _bits(R.quat_normalize(q), n)
    assert np.array_equal(R.quat_normalize(np.zeros(4)), [1.0, 0.0, 0.0, 0.0])
    assert R.quat_to_matrix(q.astype(np.float32)).dtype == np.float32

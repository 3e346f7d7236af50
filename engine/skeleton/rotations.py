"""Rotation conversions (axis-angle, quaternion, matrix, 6D, Euler, slerp), vectorised over leading dims.

Conventions used everywhere in groovecast:

* Quaternions are ``(w, x, y, z)``, unit length, and act on column vectors: ``v' = q v q*``.
* Rotation matrices act on column vectors: ``v' = R @ v``; ``[..., 3, 3]``.
* 6D (Zhou et al. 2019, "On the Continuity of Rotation Representations") is the first two
  *columns* of the matrix, concatenated: ``[R[:, 0], R[:, 1]]`` -> ``[..., 6]``.
* Euler angles follow BVH: an ``order`` such as ``"ZXY"`` names the channels as written, angles come in
  that order, and the rotation is intrinsic in that order: ``R = R_Z(a0) @ R_X(a1) @ R_Y(a2)``.
"""

from __future__ import annotations

import numpy as np

_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}
_EPS = 1e-8


def _as_float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def norm(x: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(x, axis=-1, keepdims=True)`` of real vectors ``[..., n]``: the same operations (the square
    root of the sum of squares along the last axis, so the same values) without the general function's dispatch,
    which costs more than the arithmetic on the few vectors of a live step."""
    return np.sqrt(np.add.reduce(x * x, axis=-1, keepdims=True))


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.cross(a, b)`` of 3-vectors ``[..., 3]`` (same products and differences, so the same values)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    out = np.empty((*np.broadcast_shapes(a0.shape, b0.shape), 3), np.result_type(a, b))
    out[..., 0] = a1 * b2 - a2 * b1
    out[..., 1] = a2 * b0 - a0 * b2
    out[..., 2] = a0 * b1 - a1 * b0
    return out


# ----------------------------------------------------------------------------------------- quaternions


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[..., 4]``; a zero quaternion becomes identity rather than NaN."""
    q = _as_float(q)
    n = norm(q)
    out = q / np.maximum(n, _EPS)
    bad = ~(n > _EPS)
    if bad.any():
        ident = np.zeros_like(q)
        ident[..., 0] = 1.0
        out = np.where(bad, ident, out)
    return out


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugate (= inverse for unit quaternions) of ``[..., 4]`` (w, x, y, z)."""
    q = _as_float(q)
    return q * np.array([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``); broadcasts ``[..., 4]``."""
    a = _as_float(a)
    b = _as_float(b)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v [..., 3]`` by unit quaternions ``q [..., 4]``."""
    q = _as_float(q)
    v = _as_float(v)
    w = q[..., :1]
    u = q[..., 1:]
    # v' = v + 2w (u x v) + 2 u x (u x v): cheaper than building the matrix
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """``[..., 4]`` (w, x, y, z) -> ``[..., 3, 3]``; the input is normalised first."""
    q = quat_normalize(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = np.empty((*q.shape[:-1], 3, 3), q.dtype)
    m[..., 0, 0] = 1 - 2 * (yy + zz)
    m[..., 0, 1] = 2 * (xy - wz)
    m[..., 0, 2] = 2 * (xz + wy)
    m[..., 1, 0] = 2 * (xy + wz)
    m[..., 1, 1] = 1 - 2 * (xx + zz)
    m[..., 1, 2] = 2 * (yz - wx)
    m[..., 2, 0] = 2 * (xz - wy)
    m[..., 2, 1] = 2 * (yz + wx)
    m[..., 2, 2] = 1 - 2 * (xx + yy)
    return m


#: Shepperd's four candidate quaternions as entries of (1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
#: 1 - m00 - m11 + m22, m21 - m12, m02 - m20, m10 - m01, m01 + m10, m02 + m20, m12 + m21): candidate ``k`` is
#: ``entries[_SHEPPERD[k]]``.
_SHEPPERD = np.array([[0, 4, 5, 6], [4, 1, 7, 8], [5, 7, 2, 9], [6, 8, 9, 3]])


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` with ``w >= 0`` (Shepperd's branch choice)."""
    m = _as_float(m)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    # The four candidate solutions share their entries; pick the one whose divisor is largest (numerical stability).
    e = np.empty((*trace.shape, 10), np.result_type(trace, 1))
    e[..., 0] = 1 + trace
    e[..., 1] = 1 + m00 - m11 - m22
    e[..., 2] = 1 - m00 + m11 - m22
    e[..., 3] = 1 - m00 - m11 + m22
    e[..., 4] = m[..., 2, 1] - m[..., 1, 2]
    e[..., 5] = m[..., 0, 2] - m[..., 2, 0]
    e[..., 6] = m[..., 1, 0] - m[..., 0, 1]
    e[..., 7] = m[..., 0, 1] + m[..., 1, 0]
    e[..., 8] = m[..., 0, 2] + m[..., 2, 0]
    e[..., 9] = m[..., 1, 2] + m[..., 2, 1]
    best = np.argmax(e[..., :4], axis=-1)
    flat = e.reshape(-1, 10)
    q = flat[np.arange(len(flat))[:, None], _SHEPPERD[best.reshape(-1)]].reshape(*trace.shape, 4)
    q = quat_normalize(q)
    return np.where(q[..., :1] < 0, -q, q)


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[..., 4]`` -> axis-angle vectors ``[..., 3]`` (angle in radians, in [0, pi])."""
    q = quat_normalize(q)
    q = np.where(q[..., :1] < 0, -q, q)
    s = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    # angle/sin(angle/2) -> 2 as angle -> 0
    scale = np.where(s > 1e-7, angle / np.maximum(s, 1e-12), 2.0)
    return q[..., 1:] * scale


def axis_angle_to_quat(aa: np.ndarray) -> np.ndarray:
    """Axis-angle ``[..., 3]`` (direction = axis, norm = angle in radians) -> quaternions ``[..., 4]``."""
    aa = _as_float(aa)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(half)/angle -> 0.5 as angle -> 0
    k = np.where(angle > 1e-7, np.sin(half) / np.maximum(angle, 1e-12), 0.5 - angle * angle / 48.0)
    return np.concatenate([np.cos(half), aa * k], axis=-1)


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Axis-angle ``[..., 3]`` -> ``[..., 3, 3]``."""
    return quat_to_matrix(axis_angle_to_quat(aa))


def matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    """``[..., 3, 3]`` -> axis-angle ``[..., 3]``."""
    return quat_to_axis_angle(matrix_to_quat(m))


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation along the shorter arc; ``t`` broadcasts against ``[...]``.

    Args:
        q0: ``[..., 4]`` start quaternions (t = 0).
        q1: ``[..., 4]`` end quaternions (t = 1).
        t: interpolation parameter, scalar or ``[...]``.
    """
    q0 = quat_normalize(q0)
    q1 = quat_normalize(q1)
    t_arr = np.asarray(t, dtype=q0.dtype)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # q and -q are the same rotation: take the short way
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - t_arr, np.sin((1.0 - t_arr) * theta) / safe)
    w1 = np.where(near, t_arr, np.sin(t_arr * theta) / safe)
    return quat_normalize(w0 * q0 + w1 * q1)


# ------------------------------------------------------------------------------------------------- 6D


def matrix_to_rot6d(m: np.ndarray) -> np.ndarray:
    """``[..., 3, 3]`` -> ``[..., 6]``: first column then second column."""
    m = _as_float(m)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def rot6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """``[..., 6]`` -> ``[..., 3, 3]`` by Gram-Schmidt on the two columns (any 6 numbers give a rotation)."""
    d6 = _as_float(d6)
    a1 = d6[..., :3]
    a2 = d6[..., 3:]
    b1 = a1 / np.maximum(norm(a1), _EPS)
    a2 = a2 - np.add.reduce(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2 / np.maximum(norm(a2), _EPS)
    b3 = cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


# ---------------------------------------------------------------------------------------------- Euler


def _check_order(order: str) -> tuple[int, int, int]:
    up = order.upper()
    if len(up) != 3 or set(up) != {"X", "Y", "Z"}:
        raise ValueError(f"Euler order must be a permutation of 'XYZ' (as BVH channels are), got {order!r}")
    return _AXIS_INDEX[up[0]], _AXIS_INDEX[up[1]], _AXIS_INDEX[up[2]]


def axis_rotation_matrix(axis: str, angle: np.ndarray) -> np.ndarray:
    """Elementary rotation about ``axis`` ('X', 'Y' or 'Z') by ``angle [...]`` radians -> ``[..., 3, 3]``."""
    angle = _as_float(angle)
    c = np.cos(angle)
    s = np.sin(angle)
    one = np.ones_like(angle)
    zero = np.zeros_like(angle)
    ax = axis.upper()
    if ax == "X":
        rows = [one, zero, zero, zero, c, -s, zero, s, c]
    elif ax == "Y":
        rows = [c, zero, s, zero, one, zero, -s, zero, c]
    elif ax == "Z":
        rows = [c, -s, zero, s, c, zero, zero, zero, one]
    else:
        raise ValueError(f"axis must be X, Y or Z, got {axis!r}")
    return np.stack(rows, axis=-1).reshape(*angle.shape, 3, 3)


def euler_to_matrix(angles: np.ndarray, order: str, degrees: bool = True) -> np.ndarray:
    """Euler angles ``[..., 3]`` given in channel ``order`` -> ``[..., 3, 3]`` (intrinsic, BVH semantics)."""
    _check_order(order)
    angles = _as_float(angles)
    if angles.shape[-1] != 3:
        raise ValueError(f"Euler angles need a last dimension of 3, got shape {angles.shape}")
    if degrees:
        angles = np.deg2rad(angles)
    up = order.upper()
    m = axis_rotation_matrix(up[0], angles[..., 0])
    m = m @ axis_rotation_matrix(up[1], angles[..., 1])
    return m @ axis_rotation_matrix(up[2], angles[..., 2])


def matrix_to_euler(m: np.ndarray, order: str, degrees: bool = True) -> np.ndarray:
    """``[..., 3, 3]`` -> Euler angles ``[..., 3]`` in channel ``order`` with ``euler_to_matrix(result) == m``.

    The middle angle lies in [-90, 90] degrees; at gimbal lock (middle angle = +-90) the last angle is
    set to 0 and the first carries the whole remaining rotation.
    """
    i, j, k = _check_order(order)
    m = _as_float(m)
    # Parity of the permutation (i, j, k) of (0, 1, 2): flips the signs of the off-diagonal terms.
    s = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    sin_b = np.clip(s * m[..., i, k], -1.0, 1.0)
    b = np.arcsin(sin_b)
    locked = np.abs(sin_b) > 1.0 - 1e-9
    a = np.arctan2(-s * m[..., j, k], m[..., k, k])
    c = np.arctan2(-s * m[..., i, j], m[..., i, i])
    a_locked = np.arctan2(s * m[..., k, j], m[..., j, j])
    a = np.where(locked, a_locked, a)
    c = np.where(locked, 0.0, c)
    out = np.stack([a, b, c], axis=-1)
    return np.rad2deg(out) if degrees else out


def euler_to_quat(angles: np.ndarray, order: str, degrees: bool = True) -> np.ndarray:
    """Euler ``[..., 3]`` in channel ``order`` -> quaternions ``[..., 4]``."""
    return matrix_to_quat(euler_to_matrix(angles, order, degrees))


def quat_to_euler(q: np.ndarray, order: str, degrees: bool = True) -> np.ndarray:
    """Quaternions ``[..., 4]`` -> Euler ``[..., 3]`` in channel ``order``."""
    return matrix_to_euler(quat_to_matrix(q), order, degrees)

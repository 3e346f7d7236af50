"""Coordinate spaces and root/scale handling: engine space (right-handed, Y up, metres) and Unity's.

Engine space: right-handed, +Y up, metres; a character faces +Z, so its left hand is on +X.
Unity: left-handed, +Y up, metres; an avatar faces +Z with its right hand on +X.

The change of basis is the mirror ``M = diag(-1, 1, 1)`` (negate X):

* positions: ``p_u = M p = (-x, y, z)``;
* rotations: a rotation ``R`` in engine space is ``R_u = M R M`` in Unity space. Writing ``R`` as the
  quaternion ``(w, v)``, ``M R M`` has axis ``det(M) M v = (v_x, -v_y, -v_z)`` (an axis is a
  pseudo-vector, so the reflection flips its sign once more) and the same angle, so
  ``q_u = (w, x, -y, -z)``, equivalently ``(-w, -x, y, z)``. Unity's quaternion algebra is the usual
  Hamilton product, so this quaternion, sent as ``(x, y, z, w)``, is what a Unity ``Quaternion`` holds.

``tests/skeleton/test_space.py`` checks both facts numerically, including that forward kinematics in
Unity space on mirrored offsets gives the mirrored positions.
"""

from __future__ import annotations

import numpy as np

from engine.skeleton.skeleton import Skeleton

#: The mirror that maps engine space to Unity space (and back: it is its own inverse).
UNITY_MIRROR = np.diag([-1.0, 1.0, 1.0])
#: Body height (rest pose, feet to head top) that :func:`normalise_scale` targets by default.
DEFAULT_HEIGHT_M = 1.70


def to_unity_positions(p: np.ndarray) -> np.ndarray:
    """Engine-space positions ``[..., 3]`` -> Unity space ``[..., 3]``."""
    out = np.array(p, dtype=np.float64, copy=True)
    out[..., 0] *= -1.0
    return out


def to_unity_quats(q: np.ndarray) -> np.ndarray:
    """Engine-space quaternions ``[..., 4]`` (w, x, y, z) -> Unity-space quaternions (w, x, y, z)."""
    out = np.array(q, dtype=np.float64, copy=True)
    out[..., 2] *= -1.0
    out[..., 3] *= -1.0
    return out


def from_unity_positions(p: np.ndarray) -> np.ndarray:
    """Unity positions -> engine space (the mirror is an involution)."""
    return to_unity_positions(p)


def from_unity_quats(q: np.ndarray) -> np.ndarray:
    """Unity quaternions (w, x, y, z) -> engine space."""
    return to_unity_quats(q)


# --------------------------------------------------------------------------------------------- scale


def scale_factor_to_height(skel: Skeleton, height_m: float = DEFAULT_HEIGHT_M) -> float:
    """Factor that makes ``skel``'s rest-pose height equal ``height_m`` metres.

    The CMU files are "roughly metres" but only ~1.19 units tall, so the scale comes from the bone
    lengths (the rest skeleton), never from an assumed unit.
    """
    h = skel.height()
    if h <= 0:
        raise ValueError(f"skeleton {skel.name!r} has zero height; cannot normalise its scale")
    return height_m / h


def normalise_scale(
    skel: Skeleton, root_pos: np.ndarray, height_m: float = DEFAULT_HEIGHT_M
) -> tuple[Skeleton, np.ndarray, float]:
    """Scale a skeleton and its root trajectory ``[N, 3]`` to a body ``height_m`` tall.

    Rotations are unchanged by a uniform scale. Returns the scaled skeleton (same name), the scaled root
    positions and the factor used.
    """
    k = scale_factor_to_height(skel, height_m)
    return skel.scaled(k), np.asarray(root_pos, dtype=np.float64) * k, k


# ---------------------------------------------------------------------------------------------- root


def root_to_origin(root_pos: np.ndarray) -> np.ndarray:
    """Shift a root trajectory ``[N, 3]`` so the first frame stands over the origin (height kept)."""
    root_pos = np.asarray(root_pos, dtype=np.float64)
    out = root_pos.copy()
    out[..., 0] -= root_pos[0, 0]
    out[..., 2] -= root_pos[0, 2]
    return out


def floor_height(positions: np.ndarray) -> float:
    """Lowest joint height over a clip: ``positions [N, J, 3]`` -> scalar (used to put feet on y = 0)."""
    return float(np.min(np.asarray(positions)[..., 1]))


def root_velocity(root_pos: np.ndarray) -> np.ndarray:
    """Per-frame root displacement ``[N, 3]`` (first row zero): translation-invariant for models."""
    root_pos = np.asarray(root_pos, dtype=np.float64)
    vel = np.zeros_like(root_pos)
    vel[1:] = root_pos[1:] - root_pos[:-1]
    return vel


def integrate_root_velocity(vel: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`root_velocity`: cumulative sum from ``start`` (default origin) -> ``[N, 3]``."""
    vel = np.asarray(vel, dtype=np.float64)
    out = np.cumsum(vel, axis=0)
    if start is not None:
        out = out + np.asarray(start, dtype=np.float64)
    return out

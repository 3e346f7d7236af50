"""Staging for an audience: face the front, stay on the stage, never snap. One filter, offline and live.

Every performer's frames pass through a :class:`Stager` as they leave the model (sans-I/O, causal, per-performer
state, vectorised over performers; the steering's controller runs frame by frame, since each frame's turn depends on
the last, and whatever depends on the raw frames alone is computed for all of a step's frames at once). It does two
things:

* **Steering** (``StagingConfig.steer``). The staged pose is the model's pose under a horizontal rigid
  transform (a yaw ``theta`` about +Y and an offset) plus, per leg, a stride correction solved by leg IK:

  - *facing*: the transform turns only by *pivoting* about the foot points on the floor (the planted points of
    the one foot down, between the feet when both are down, the root in flight), so the pivot stays where it is
    (the other points of a flat foot or of the other foot move by the turn times their distance from the pivot).
    The rate is ``facing_gain`` times the error between the front and the performer's averaged facing (an
    exponential average of the facing direction, the hip-joint line, as a unit vector over ``facing_tau_s``;
    errors under ``dead_deg`` are left alone), scaled by that average's length and gated off while the dancer
    itself turns faster than ``spin_gate_dps``, so spins and turns of the dance are not resisted; at most
    ``max_turn_dps``. The averages turn with the transform, so the controller sees its correction at once.
    Beyond the radius the target turns the averaged drift back towards the centre (``edge_frac``).
  - *stage*: three corrections towards the centre (or :meth:`Stager.set_goal`), in the order of what they cost
    the dance. None of the first two changes a joint angle, so the legs stay as the model drew them (the style
    classifier reads the legs' joint-local rotations; session 8's pull re-bent every planted leg):

    1. *walk* (``walk_ms``): while one foot is planted, the transform also turns about that foot in the
       direction that carries the root inwards (the root moves sideways of its lever from the pivot). The
       facing law turns the dancer back about the next planted foot, and the pair of turns moves the whole
       dancer by the turn times the step between the feet: a waddle no foot slides for. The turn asked is
       ``walk_ms`` (in proportion to the distance from the centre, up to twice it beyond the radius) over the
       lever, at most ``walk_max_dps``, at most ``walk_sweep_ms`` for any other foot point near the floor, and
       never turning the averaged facing further than ``walk_cone_deg`` from the front.
    2. *air* (``air_ms``): while no foot point is near the floor the whole body moves towards the centre
       (rigidly: nothing is on the floor to slide).
    3. *leg IK*, only from ``inner_frac`` (0.7) of the radius on: the offset moves ``pull_ms`` at the radius (in
       proportion from ``inner_frac``, up to twice it) on top of the feet, and each leg with a planted foot is
       re-solved by two-bone IK (:func:`leg_ik`: hip, knee, ankle; the foot keeps its world orientation) so that
       foot stays where it was drawn. The correction is bounded by ``max_shift_m`` and by the leg's reach; a leg
       in the air lets it go back at ``recover_ms``. A keyframe that pins the legs is left as pinned: the model
       passes the blend's weight per frame (``StepFrames.pin_legs``), the leg IK is applied by one minus it and
       no new pull is taken while it is on (the walk and air moves are rigid: they change no joint angle).

* **Speed limit** (``StagingConfig.limit_speed``, on even with steering off). No joint may move faster than
  ``speed_factor`` (1.2) times the real data's 99.9th percentile of that joint's speed, per style
  (:data:`REAL_SPEED_P999`). A frame that would exceed it is blended from the previous output pose towards the
  new one (root lerp, rotation slerp) by the largest weight that keeps every joint within its limit, so a
  discontinuity anywhere upstream (a reset, a genre change, a re-plan, a retrieval cut, the end of the input)
  becomes a short, fast but human movement instead of a snap. The playout uses the same
  :class:`SpeedLimiter` for the transitions it makes itself (waking from idle, recovering from a held frame).

Directions: engine space is right-handed, +Y up, and a character at rest faces +Z (``docs/streams.md``), which
is also Unity's forward and the web viewer's camera side (its camera sits at +Z looking at the origin). So the
front is ``front_deg = 0``: a yaw measured from +Z towards +X. Distances are from ``centre_xz`` (metres).

Couples (or any group) can be staged as one unit: :func:`unit_pose` reduces the members' roots and facings to
one centre and facing, which is what the control law reads (:func:`turn_rate`); a group's transform would be
shared by its members. The runtime and ``generate`` stage every performer as its own unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.conditioning import GENRES
from engine.models.pose_repr import Motion, metric_cmu_skeleton, model_fk_layout, model_joint_indices
from engine.models.protocol import REWIND_STEPS, Capabilities, Controls, MotionModel, StepFrames
from engine.models.snapshots import SnapshotRing
from engine.skeleton import rotations as R
from engine.skeleton.skeleton import Skeleton

#: The points whose speed is limited and measured: the 21 model joints + the two toe end sites.
POINT_NAMES: tuple[str, ...] = tuple(model_fk_layout()[2])
#: Indices in :data:`POINT_NAMES` of the foot points (right ankle, right toe, left ankle, left toe).
FOOT_POINTS = (4, 21, 8, 22)
#: Height of each foot point above the floor at rest (ankle 3.9 cm above the toe end site), metres.
FOOT_REST_HEIGHT = np.array([0.039, 0.0, 0.039, 0.0])
#: A foot point is planted when within this height of its floor level and slower than this (as pose_repr).
CONTACT_HEIGHT_M = 0.05
CONTACT_SPEED_MS = 0.35

#: 99.9th percentile of each point's world speed (m/s, 30 fps) in the real training takes as captured, per
#: style (both salsa dancers; :data:`POINT_NAMES` order). Measured by ``python -m bench.staging_bench --real``.
REAL_SPEED_P999: dict[str, tuple[float, ...]] = {
    "salsa": (1.93, 2.05, 2.08, 3.99, 4.95, 2.05, 2.07, 3.87, 5.44, 1.80, 1.81, 2.35,
             2.64, 2.26, 2.54, 6.36, 8.22, 2.22, 2.50, 5.90, 7.77, 5.87, 6.03),
    "indian": (2.46, 2.45, 2.46, 7.04, 8.06, 2.46, 2.48, 7.31, 7.25, 2.35, 2.23, 2.25,
              2.31, 2.23, 2.33, 3.89, 5.88, 2.22, 2.36, 4.28, 6.23, 8.76, 7.85),
    "modern": (2.88, 3.23, 3.30, 10.37, 9.71, 2.99, 2.95, 4.42, 7.31, 3.19, 3.13, 2.80,
              2.87, 2.82, 3.10, 4.76, 7.39, 2.80, 2.94, 6.05, 8.10, 10.78, 8.67),
}
#: The limit is this multiple of the real 99.9th percentile.
SPEED_FACTOR = 1.2
#: The real per-joint world speed p99.9 over the three styles' as-captured training takes at 30 fps, m/s (the
#: keyframe blend's bound, ``engine.models.inbetween``, and the controls eval read it from here).
REAL_JOINT_SPEED_P999 = 6.3
#: Under a keyframe blend no point moves faster than this (m/s) unless the dance under the blend moves it as fast.
KEYFRAME_CAP_MS = 0.95 * REAL_JOINT_SPEED_P999


def speed_limits(style: str | None, factor: float = SPEED_FACTOR) -> np.ndarray:
    """Per-point speed limits [23] (m/s) for a style; unknown styles get the loosest of the known ones."""
    table = np.array(list(REAL_SPEED_P999.values()))
    base = np.array(REAL_SPEED_P999[style]) if style in REAL_SPEED_P999 else table.max(axis=0)
    return base * factor


def style_of_genre(genre: int) -> str | None:
    """The style name of a genre row (None for rows without a style table)."""
    name = GENRES[genre] if 0 <= genre < len(GENRES) else None
    return name if name in REAL_SPEED_P999 else None


@dataclass(frozen=True)
class StagingConfig:
    """How performers are staged (see the module doc). The defaults are the CLI's defaults."""

    steer: bool = True  # face the front and keep on stage (``--no-staging`` turns it off)
    front_deg: float = 0.0  # the audience's direction: yaw from +Z towards +X
    radius_m: float = 1.5  # stage radius around centre_xz
    centre_xz: tuple[float, float] = (0.0, 0.0)
    max_turn_dps: float = 540.0  # most steering turn rate (doubled at the stage edge)
    facing_tau_s: float = 0.25  # time constant of the averaged facing
    spin_tau_s: float = 0.2  # time constant of the averaged own turn rate
    spin_gate_dps: float = 360.0  # no facing correction while the dancer turns this fast
    dead_deg: float = 10.0  # facing errors below this are left alone
    facing_gain: float = 12.0  # turn rate per radian of facing error (1/s)
    travel_tau_s: float = 2.0  # time constant of the averaged travel velocity (the drift)
    cone_deg: float = 0.0  # within this of the front, the facing is turned to steer the drift home
    inner_frac: float = 0.7  # from this fraction of the radius on, the stride is pulled (leg IK) towards the centre
    edge_frac: float = 0.5  # beyond the radius, the drift home overrides the facing over this fraction of it
    flat_support: float = 1.0  # turn rate factor on one flat foot (ball and heel down: turns about their middle)
    double_support: float = 1.0  # turn rate factor with both feet planted (pivot between them: slides them)
    pull_ms: float = 1.5  # stride correction towards the centre at the stage edge (m/s; in proportion inside)
    max_shift_m: float = 0.35  # most a planted foot is held away from where the leg would put it (leg IK)
    recover_ms: float = 2.5  # a foot in the air returns to its own leg's reach at this speed
    hold_low_feet: bool = False  # the stride correction also holds a foot that is on the floor but moving
    walk_ms: float = 3.0  # stage correction by turns about the one planted foot: root speed asked at the radius
    walk_from_frac: float = 0.0  # ... from this fraction of the radius on (in proportion beyond it)
    walk_max_dps: float = 60.0  # most turn rate the stage correction asks for
    walk_lever_m: float = 0.05  # a root this near its pivot asks for less turn (no lever to move it with)
    walk_cone_deg: float = 30.0  # the walk turns the averaged facing no further from the front than this
    walk_sweep_ms: float = 1.0  # the walk's turn moves no other foot point near the floor faster than this
    air_ms: float = 3.0  # rigid move towards the centre while no foot is near the floor, at the radius (m/s)
    # a turn about a planted foot swings the root about it: such a turn may carry the root outwards only at
    # (guard_frac * radius - distance) / guard_s, not at all from guard_frac of the radius on (the turn waits for a
    # pivot that does not carry the root out, or for the dancer to come in); guard_frac 0: off
    guard_frac: float = 0.9
    guard_s: float = 0.25
    # the recent share of frames facing further than away_deg from the front (time constant away_tau_s), which the
    # staging reports to a model that steers its own dance to face the front (beat guidance's facing term)
    away_deg: float = 45.0
    away_tau_s: float = 3.0
    limit_speed: bool = True  # the snap guard (on even when steering is off)
    speed_factor: float = SPEED_FACTOR
    # the generated frames keep this much under the limit, so that playback stays within it: the playout's
    # phase-lock warp plays up to 5 % faster and 60 fps interpolation adds up to a few % on curved paths
    playout_margin: float = 0.08

    def __post_init__(self) -> None:
        if not (np.isfinite(self.front_deg) and -360.0 <= self.front_deg <= 360.0):
            raise ValueError(f"front must be a yaw in degrees within [-360, 360], got {self.front_deg}")
        if not (np.isfinite(self.radius_m) and 0.1 <= self.radius_m <= 100.0):
            raise ValueError(f"stage radius must be within [0.1, 100] m, got {self.radius_m}")
        if not self.speed_factor > 0:
            raise ValueError("speed_factor must be > 0")
        if not (np.isfinite(self.guard_frac) and self.guard_frac >= 0 and self.guard_s > 0):
            raise ValueError(f"guard_frac must be >= 0 and guard_s > 0, got {self.guard_frac}, {self.guard_s}")

    @property
    def front(self) -> float:
        return float(np.deg2rad(self.front_deg))


def wrap(a: np.ndarray) -> np.ndarray:
    """Angles into [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


def yaw_of(rot: np.ndarray) -> np.ndarray:
    """Facing yaw (radians from +Z towards +X) of world rotation matrices [..., 3, 3]: where +Z points."""
    return np.arctan2(rot[..., 0, 2], rot[..., 2, 2])


def facing_of(points: np.ndarray) -> np.ndarray:
    """Facing yaw of a body from its points [..., 23, 3]: forward = (left thigh - right thigh) x up, the
    definition the staging measures use (``engine.train.metrics.facing_yaw``)."""
    left = points[..., 6, :] - points[..., 2, :]
    return np.arctan2(-left[..., 2], left[..., 0])


def yaw_quat(yaw: np.ndarray) -> np.ndarray:
    """Rotation about +Y by ``yaw``: [...] -> [..., 4] (w, x, y, z)."""
    h = 0.5 * np.asarray(yaw, dtype=np.float64)
    z = np.zeros_like(h)
    return np.stack([np.cos(h), z, np.sin(h), z], axis=-1)


def rotate_xz(xz: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate horizontal vectors [..., 2] (x, z) about +Y by ``yaw`` [...] (broadcast)."""
    c, s = np.cos(yaw), np.sin(yaw)
    x, z = xz[..., 0], xz[..., 1]
    ox = c * x + s * z
    out = np.empty((*np.shape(ox), 2))
    out[..., 0] = ox
    out[..., 1] = c * z - s * x
    return out


#: (sin, -sin) factors of :func:`_turn`.
_SIGNS = np.array([1.0, -1.0])


def _cos_sin(yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The factors of a turn by ``yaw`` [...] for :func:`_turn`: cos [..., 1] and (sin, -sin) [..., 2]."""
    return np.cos(yaw)[..., None], np.sin(yaw)[..., None] * _SIGNS


def _turn(xz: np.ndarray, cs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """:func:`rotate_xz` with the factors of :func:`_cos_sin` (computed once per angle): the same products and
    sums (``x c + z s``, ``z c + x (-s)`` = ``c z - s x``), so the same values."""
    return xz * cs[0] + xz[..., ::-1] * cs[1]


def _clip(x: np.ndarray, lo: Any, hi: Any) -> np.ndarray:
    """``np.clip`` (the same ``min(max(x, lo), hi)``) without its dispatch, which costs more than the arithmetic on
    the few values of a live step."""
    return np.minimum(np.maximum(x, lo), hi)


def unit_pose(roots_xz: np.ndarray, facings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A group staged as one unit: its centre (mean root, [2]) and facing (mean unit facing vector, [2]).

    ``roots_xz`` [k, 2], ``facings`` [k] yaw angles. A single performer is its own unit.
    """
    centre = np.asarray(roots_xz, dtype=np.float64).mean(axis=0)
    f = np.asarray(facings, dtype=np.float64)
    return centre, np.array([np.sin(f).mean(), np.cos(f).mean()])


def turn_rate(cfg: StagingConfig, facing_avg: np.ndarray, pos_xz: np.ndarray, vel_avg: np.ndarray,
              spin: np.ndarray | None = None, centre: np.ndarray | None = None,
              front: np.ndarray | None = None) -> np.ndarray:
    """The steering law: desired turn rate (rad/s, + = from +Z towards +X) per unit.

    The target facing is the front, turned within the facing cone (+-``cone_deg``, 0 by default) to the side
    that sends the unit's drift (its averaged travel, taken in its own frame) back towards the centre; beyond
    the radius (over ``edge_frac`` of it) the target moves out of the cone as far as bringing the drift home
    needs. The rate is proportional to the error from the averaged facing, times that average's length (short
    during spins, which are therefore not resisted).

    Args:
        facing_avg: [B, 2] averaged facing as (sin yaw, cos yaw).
        pos_xz: [B, 2] the unit's position on the stage.
        vel_avg: [B, 2] averaged travel velocity (m/s).
        spin: [B] the performer's own recent turn rate (rad/s, averaged over ``spin_tau_s``): while it turns
            faster than ``spin_gate_dps`` the facing is not corrected (a spin or a turn is the dance's).
        centre: [B, 2] per-unit goal position (default ``cfg.centre_xz``; :meth:`Stager.set_goal`).
        front: [B] per-unit goal facing (default ``cfg.front``).
    """
    conf = R.norm(facing_avg)[..., 0]
    if spin is not None:
        conf = conf * _clip(1.0 - np.abs(spin) / math.radians(cfg.spin_gate_dps), 0.0, 1.0)
    yaw = np.arctan2(facing_avg[:, 0], facing_avg[:, 1])
    rel = pos_xz - (np.asarray(cfg.centre_xz) if centre is None else centre)
    fr = np.full(len(pos_xz), cfg.front) if front is None else front
    dist = R.norm(rel)[..., 0]
    r_in = cfg.inner_frac * cfg.radius_m
    speed = R.norm(vel_avg)[..., 0]
    moving = _clip((speed - 0.03) / 0.12, 0.0, 1.0)  # a drift worth steering
    home = np.arctan2(-rel[:, 0], -rel[:, 1])
    drift_body = wrap(np.arctan2(vel_avg[:, 0], vel_avg[:, 1]) - yaw)  # drift direction relative to the facing
    want = wrap(home - drift_body)  # the facing that sends the drift home
    # inside the cone: steer the drift as well as the cone allows, more so the further out; at the edge: leave it
    out = _clip((dist - cfg.radius_m) / (cfg.edge_frac * cfg.radius_m), 0.0, 1.0) * moving
    cone = math.radians(cfg.cone_deg)
    lean = _clip(dist / max(r_in, 1e-6), 0.0, 1.0) * moving  # how far into the cone to lean
    in_cone = fr + _clip(wrap(want - fr), -cone, cone) * lean
    target = in_cone + out * wrap(want - in_cone)
    err = wrap(target - yaw)
    dead = math.radians(cfg.dead_deg)
    err = np.sign(err) * np.maximum(np.abs(err) - dead, 0.0)  # the hips' own swing is left alone
    rate = cfg.facing_gain * conf * err * (1.0 + out)
    lim = math.radians(cfg.max_turn_dps) * (1.0 + out)
    return _clip(rate, -lim, lim)


def _arc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest-arc rotation matrices [..., 3, 3] turning directions ``a`` onto ``b`` ([..., 3], any length)."""
    a = a / np.maximum(R.norm(a), 1e-12)
    b = b / np.maximum(R.norm(b), 1e-12)
    v = R.cross(a, b)
    c = np.sum(a * b, axis=-1)[..., None, None]
    k = np.zeros((*v.shape[:-1], 3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return np.eye(3) + k + (k @ k) / np.maximum(1.0 + c, 1e-9)


class PointFK:
    """World positions of the 23 staged points and the hip's world rotation from full-skeleton quaternions."""

    def __init__(self, skel: Skeleton | None = None) -> None:
        skel = skel or metric_cmu_skeleton()
        self.parents, self.offsets, _ = model_fk_layout(skel)
        self.joint_idx = model_joint_indices(skel)
        self.n_model = len(self.joint_idx)
        # the legs for stride IK: skeleton joints (buttock, thigh, shin, foot) and points (thigh, knee, ankle)
        self.legs = [tuple(skel.index(side + n) for n in ("Buttock", "Thigh", "Shin", "Foot")) for side in "rl"]
        self.leg_points = [(2, 3, 4), (6, 7, 8)]
        # the arms for hold IK: skeleton joints (collar, shoulder, forearm, hand), points (shoulder, elbow, wrist)
        self.arms = [tuple(skel.index(side + n) for n in ("Collar", "Shldr", "ForeArm", "Hand")) for side in "rl"]
        self.arm_points = [(14, 15, 16), (18, 19, 20)]
        self.chest = POINT_NAMES.index("chest")

    def rotations(self, quat: np.ndarray) -> np.ndarray:
        """quat [..., J, 4] -> world rotations [..., 21, 3, 3] of the model joints (the root's included)."""
        rot = R.quat_to_matrix(np.asarray(quat, dtype=np.float64)[..., self.joint_idx, :])
        wrot: list[np.ndarray] = []
        for i, p in enumerate(self.parents[: self.n_model]):
            wrot.append(rot[..., i, :, :] if p < 0 else wrot[p] @ rot[..., i, :, :])
        return np.stack(wrot, axis=-3)

    def __call__(self, root: np.ndarray, quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """root [..., 3], quat [..., J, 4] -> points [..., 23, 3], hip world rotation [..., 3, 3]."""
        rot = R.quat_to_matrix(np.asarray(quat, dtype=np.float64)[..., self.joint_idx, :])
        root = np.asarray(root, dtype=np.float64)
        pos: list[np.ndarray] = []
        wrot: list[np.ndarray] = []
        for i, p in enumerate(self.parents):
            if p < 0:
                wrot.append(rot[..., i, :, :])
                pos.append(root)
                continue
            pos.append(pos[p] + np.einsum("...ij,j->...i", wrot[p], self.offsets[i]))
            wrot.append(wrot[p] @ rot[..., i, :, :] if i < self.n_model else wrot[p])
        return np.stack(pos, axis=-2), wrot[0]


def limb_ik(quat: np.ndarray, points: np.ndarray, move: np.ndarray, chain: tuple[int, ...],
            chain_points: tuple[int, ...], base_w: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Two-bone IK of one limb for a batch: its end point moves by ``move`` and keeps its world orientation.

    ``quat`` [B, J, 4] the pose (local rotations), ``points`` [B, 23, 3] its points, ``move`` [B, 3] (rows with no
    move are unchanged), ``chain`` the skeleton joints (base, upper, lower, end), ``chain_points`` the points of
    (upper, middle, end), ``base_w`` [B, 3, 3] the base joint's world rotation, ``hint`` [B, 3] the bend direction
    when the limb is straight. The middle joint stays in the limb's bend plane. Returns the new quats.
    """
    quat = np.array(quat, dtype=np.float64)
    sel = np.nonzero(np.abs(move).sum(-1) > 1e-7)[0]
    if len(sel) == 0:
        return quat
    _, jt, js, jf = chain
    m = R.quat_to_matrix(quat[sel][:, [jt, js, jf]])  # locals [n, 3, 3, 3]
    base = base_w[sel]
    up_w = base @ m[:, 0]
    low_w = up_w @ m[:, 1]
    end_w = low_w @ m[:, 2]
    ph, pk, pa = (points[sel, i] for i in chain_points)
    target = pa + move[sel]
    l1 = R.norm(pk - ph)[..., 0]
    l2 = R.norm(pa - pk)[..., 0]
    to = target - ph
    dist = R.norm(to)[..., 0]
    u = to / np.maximum(dist, 1e-9)[:, None]
    d = np.clip(dist, np.abs(l1 - l2) + 1e-4, 0.999 * (l1 + l2))
    perp = (pk - ph) - np.sum((pk - ph) * u, axis=-1, keepdims=True) * u
    fwd = hint[sel] - np.sum(hint[sel] * u, axis=-1, keepdims=True) * u
    bent = R.norm(perp) > 1e-4
    v = np.where(bent, perp, fwd)
    v = v / np.maximum(R.norm(v), 1e-12)
    a = (l1**2 - l2**2 + d**2) / (2 * d)
    h = np.sqrt(np.maximum(l1**2 - a**2, 0.0))
    mid = ph + u * a[:, None] + v * h[:, None]
    end = ph + u * d[:, None]
    r1 = _arc(pk - ph, mid - ph)
    up_n = r1 @ up_w
    r2 = _arc(np.einsum("nij,nj->ni", r1, pa - pk), end - mid)
    low_n = r2 @ r1 @ low_w
    local = np.stack([np.swapaxes(base, -1, -2) @ up_n, np.swapaxes(up_n, -1, -2) @ low_n,
                      np.swapaxes(low_n, -1, -2) @ end_w], axis=1)  # the three new locals, converted in one call
    quat[sel[:, None], [jt, js, jf]] = R.matrix_to_quat(local)
    return quat


def leg_ik(fk: PointFK, quat: np.ndarray, points: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Re-solve the legs so each ankle (and its foot, whose world orientation is kept) moves by ``-shift``.

    ``quat`` [B, J, 4] world-placed pose (root rotation included), ``points`` [B, 23, 3] its points, ``shift``
    [B, 2, 2] the horizontal (x, z) correction per leg (right, left). Two-bone IK (:func:`limb_ik`): the knee stays
    in the leg's bend plane (forward when the leg is straight); legs with no shift are unchanged. Returns the new
    quats.
    """
    quat = np.array(quat, dtype=np.float64)
    b = len(quat)
    hip_w = R.quat_to_matrix(quat[:, 0])
    # both legs solved in one call: each (leg, row) is a row of its own, its chain's joints and points first
    chains = np.array(fk.legs)  # [2 legs, 4]
    limbs = quat[:, chains].swapaxes(0, 1).reshape(2 * b, 4, 4)
    limb_pts = points[:, np.array(fk.leg_points)].swapaxes(0, 1).reshape(2 * b, 3, 3)
    move = np.zeros((2, b, 3))
    move[..., [0, 2]] = -shift.swapaxes(0, 1)
    base_w = (hip_w[:, None] @ R.quat_to_matrix(quat[:, chains[:, 0]])).swapaxes(0, 1).reshape(2 * b, 3, 3)
    hint = np.concatenate([hip_w[:, :, 2], hip_w[:, :, 2]])
    limbs = limb_ik(limbs, limb_pts, move.reshape(2 * b, 3), (0, 1, 2, 3), (0, 1, 2), base_w, hint)
    quat[:, chains[:, 1:]] = limbs[:, 1:].reshape(2, b, 3, 4).swapaxes(0, 1)
    return quat


def arm_ik(fk: PointFK, quat: np.ndarray, points: np.ndarray, move: np.ndarray) -> np.ndarray:
    """Re-solve the arms so each wrist (``rHand``/``lHand`` point) moves by ``move`` [B, 2 arms (right, left), 3]
    and the hand keeps its world orientation (:func:`limb_ik`; the elbow bends down when the arm is straight)."""
    quat = np.array(quat, dtype=np.float64)
    chest_w = fk.rotations(quat)[:, fk.chest]
    down = np.tile(np.array([0.0, -1.0, 0.0]), (len(quat), 1))
    for arm, chain in enumerate(fk.arms):
        base_w = chest_w @ R.quat_to_matrix(quat[:, chain[0]])
        quat = limb_ik(quat, points, move[:, arm], chain, fk.arm_points[arm], base_w, down)
    return quat


def limit_step(fk: PointFK, prev_root: np.ndarray, prev_quat: np.ndarray, prev_points: np.ndarray | None,
               root: np.ndarray, quat: np.ndarray, points: np.ndarray | None, max_step: np.ndarray,
               valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One frame of rows moved at most ``max_step`` [B, 23] (metres) per point from the previous pose.

    A row over the limit gets the pose ``w`` of the way from the previous one (root lerp, rotation slerp), ``w``
    the largest that keeps every point within its step. Returns (root, quat, points, which rows were limited).
    Rows with ``valid`` False (no previous pose) pass unchanged.
    """
    root = np.asarray(root, dtype=np.float64)
    quat = np.asarray(quat, dtype=np.float64)
    if points is None:
        points, _ = fk(root, quat)
    if prev_points is None:
        prev_points, _ = fk(prev_root, prev_quat)
    step = np.linalg.norm(points - prev_points, axis=-1)  # [B, 23]
    ratio = (step / max_step).max(axis=-1)
    if valid is not None:
        ratio = np.where(valid, ratio, 0.0)
    over = ratio > 1.0
    if over.any():
        sel = np.nonzero(over)[0]
        r0, q0, p0, l0 = prev_root[sel], prev_quat[sel], prev_points[sel], max_step[sel]
        w = 0.98 / ratio[sel]
        # Rotations do not move points linearly in the blend weight: shrink until within the limit (two tries,
        # then the previous pose is held for that frame: the limit is never exceeded, and the cost stays bounded)
        for attempt in range(3):
            rb = r0 + (root[sel] - r0) * w[:, None]
            qb = R.slerp(q0, quat[sel], w[:, None])
            pb, _ = fk(rb, qb)
            rr = (np.linalg.norm(pb - p0, axis=-1) / l0).max(axis=-1)
            bad = rr > 1.0 + 1e-6
            if not bad.any():
                break
            w = np.where(bad, 0.0 if attempt == 1 else w / rr * 0.9, w)
        root = root.copy()
        quat = quat.copy()
        points = points.copy()
        root[sel], quat[sel], points[sel] = rb, qb, pb
    return root, quat, points, over


class SpeedLimiter:
    """Per-row snap guard: each new pose moves every point at most at its speed limit from the previous output.

    Rows are performers (or playout rows); ``limits`` [rows, 23] in m/s. Sans-I/O: feed frames in order.
    """

    def __init__(self, fk: PointFK, n_joints: int, rows: int = 0) -> None:
        self.fk = fk
        k = len(fk.parents)
        self.limits = np.zeros((0, k))
        self.root = np.zeros((0, 3))
        self.quat = np.zeros((0, n_joints, 4))
        self.points = np.zeros((0, k, 3))
        self.valid = np.zeros(0, dtype=bool)
        self.lagging = np.zeros(0, dtype=bool)  # the last output was held back (it still catches up)
        self.limited_frames = 0  # frames blended towards the previous pose (statistics)
        self.resize(rows)

    def resize(self, rows: int) -> None:
        """Grow (or shrink) to ``rows`` rows; new rows start with no previous pose and the loosest limits."""
        grow = max(0, rows - len(self.valid))
        q = np.zeros((grow, self.quat.shape[1], 4))
        q[..., 0] = 1.0
        self.limits = np.concatenate([self.limits, np.tile(speed_limits(None), (grow, 1))])[:rows]
        self.root = np.concatenate([self.root, np.zeros((grow, 3))])[:rows]
        self.quat = np.concatenate([self.quat, q])[:rows]
        self.points = np.concatenate([self.points, np.zeros((grow, *self.points.shape[1:]))])[:rows]
        self.valid = np.concatenate([self.valid, np.zeros(grow, dtype=bool)])[:rows]
        self.lagging = np.concatenate([self.lagging, np.zeros(grow, dtype=bool)])[:rows]

    def forget(self, rows: np.ndarray | slice | int) -> None:
        """The next pose of these rows is taken as it is (a new performer, a placement)."""
        self.valid[rows] = False
        self.lagging[rows] = False

    def accept(self, rows: np.ndarray, root: np.ndarray, quat: np.ndarray, points: np.ndarray) -> None:
        """The rows' newest output is this pose, unchanged (it was within the limits)."""
        self.root[rows], self.quat[rows], self.points[rows] = root, quat, points
        self.valid[rows] = True
        self.lagging[rows] = False

    def move_row(self, src: int, dst: int) -> None:
        for a in (self.limits, self.root, self.quat, self.points, self.valid, self.lagging):
            a[dst] = a[src]

    def frame(self, rows: np.ndarray, root: np.ndarray, quat: np.ndarray, points: np.ndarray | None = None,
              dt: float = 1.0 / MODEL_FPS, limits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One frame of the given rows: root [B, 3], quat [B, J, 4] -> the limited root and quat.

        ``points`` [B, 23, 3] may pass the frame's points when the caller has them; ``limits`` [B, 23] (m/s) this
        frame's limits in place of the rows' own.
        """
        root = np.asarray(root, dtype=np.float64)
        quat = np.asarray(quat, dtype=np.float64)
        if points is None:
            points, _ = self.fk(root, quat)
        prev = self.valid[rows]
        root, quat, points, over = limit_step(self.fk, self.root[rows], self.quat[rows], self.points[rows], root, quat,
                                              points, (self.limits[rows] if limits is None else limits) * dt, prev)
        self.limited_frames += int(over.sum())
        self.lagging[rows] = over
        self.root[rows] = root
        self.quat[rows] = quat
        self.points[rows] = points
        self.valid[rows] = True
        return root, quat


class Stager:
    """Steering + speed limit for performers keyed by id (see the module doc). Sans-I/O, causal.

    Feeding a performer's frames in chunks of any size gives the same output (the state carries over), which is
    what makes offline generation (:func:`stage_motion`) and the live model (:class:`StagedModel`) identical.
    """

    def __init__(self, config: StagingConfig | None = None, skel: Skeleton | None = None,
                 fps: float = MODEL_FPS) -> None:
        self.cfg = config or StagingConfig()
        self.fk = PointFK(skel)
        self.dt = 1.0 / fps
        self.limiter = SpeedLimiter(self.fk, (skel or metric_cmu_skeleton()).num_joints)
        self._rows: dict[int, int] = {}
        n = 0
        self.theta = np.zeros(n)  # yaw of the staging transform
        self.offset = np.zeros((n, 2))  # staged xz = rotate(raw xz, theta) + offset
        self.face = np.zeros((n, 2))  # averaged facing (sin, cos)
        self.spin = np.zeros(n)  # averaged own turn rate (rad/s)
        self.last_yaw = np.zeros(n)  # raw facing yaw of the previous frame
        self.vel = np.zeros((n, 2))  # averaged staged root velocity
        self.last_xz = np.zeros((n, 2))  # staged root xz of the previous frame
        self.last_feet = np.zeros((n, 4, 2))  # raw foot points xz of the previous frame
        self.floor = np.zeros((n, 4))  # floor level of each foot point (tracked)
        self.shift = np.zeros((n, 2, 2))  # per leg, where its foot is drawn less where the transform puts it
        self.seen = np.zeros(n, dtype=bool)
        self.goal_xz = np.zeros((n, 2))  # per row, where the stage law pulls to (default the config's centre)
        self.goal_yaw = np.zeros(n)  # per row, the facing the stage law turns to (default the config's front)
        self.away = np.zeros(n)  # per row, the recent share of staged frames facing away from goal_yaw
        self.turned = 0.0  # total steering turn applied, radians (statistics)
        self.pivot_frames = 0
        # the state of each row after its newest steps (``save`` / ``restore``; the limiter's as "limiter.NAME")
        self.snapshots = SnapshotRing.for_rewinds(REWIND_STEPS)

    _FIELDS = ("theta", "offset", "face", "spin", "last_yaw", "vel", "last_xz", "last_feet", "floor", "shift", "seen",
               "goal_xz", "goal_yaw", "away")
    _LIMITER = ("root", "quat", "points", "valid", "lagging")  # the speed limiter's per-row state

    # -- rows ------------------------------------------------------------------------------------------

    def row(self, pid: int) -> int:
        """The state row of a performer (created fresh on first use)."""
        r = self._rows.get(pid)
        if r is None:
            r = len(self._rows)
            self._rows[pid] = r
            for f in self._FIELDS:
                a = getattr(self, f)
                setattr(self, f, np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)]))
            self.limiter.resize(r + 1)
            self.snapshots.resize(r + 1)
            self.reset(pid)
        return r

    def remove(self, pid: int) -> None:
        r = self._rows.pop(pid, None)
        if r is None:
            return
        last = len(self._rows)
        if r != last:
            moved = next(p for p, rr in self._rows.items() if rr == last)
            for f in self._FIELDS:
                getattr(self, f)[r] = getattr(self, f)[last]
            self.limiter.move_row(last, r)
            self.snapshots.move_row(last, r)
            self._rows[moved] = r
        for f in self._FIELDS:
            setattr(self, f, getattr(self, f)[:last])
        self.limiter.resize(last)
        self.snapshots.resize(last)

    def reset(self, pid: int) -> None:
        """Forget the performer entirely: identity transform, no averages, no previous pose."""
        r = self.row(pid)
        self.theta[r] = 0.0
        self.offset[r] = 0.0
        self.face[r] = 0.0
        self.spin[r] = 0.0
        self.vel[r] = 0.0
        self.floor[r] = FOOT_REST_HEIGHT
        self.shift[r] = 0.0
        self.seen[r] = False
        self.goal_xz[r] = self.cfg.centre_xz
        self.goal_yaw[r] = self.cfg.front
        self.away[r] = 0.0
        self.limiter.forget(r)
        self.snapshots.forget(r)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Every per-row state array by name (the limiter's as "limiter.NAME")."""
        out = {f: getattr(self, f) for f in self._FIELDS}
        out.update({f"limiter.{f}": getattr(self.limiter, f) for f in self._LIMITER})
        return out

    def keep_rewinds(self, steps: int) -> None:
        """Keep the state a rewind of up to ``steps`` steps needs (0: none, and :meth:`save` costs nothing)."""
        self.snapshots.keep_rewinds(steps)

    def save(self, pids: Sequence[int], steps: Sequence[int]) -> None:
        """Keep the performers' state as it stands after their step ``steps`` (the model's step index), so a
        rewind to it (:meth:`restore`) stages the regenerated frames exactly as if the discarded ones never were."""
        if not self.snapshots.depth:
            return
        rows = np.array([self.row(p) for p in pids], dtype=np.int64)
        self.snapshots.save(rows, steps, {name: a[rows] for name, a in self._state_arrays().items()})

    def drop_saved(self, pid: int) -> None:
        """Forget the performer's kept states (its model starts numbering steps over)."""
        self.snapshots.forget(self.row(pid))

    def restore(self, pid: int, step: int) -> bool:
        """Put the performer's state back to what it was after its step ``step`` (see :meth:`save`); False when
        that state is not kept (too old, or never saved), and the state is left alone."""
        r = self.row(pid)
        snap = self.snapshots.load(r, step) if step >= 0 else None
        if snap is None:
            return False
        for name, a in self._state_arrays().items():
            a[r] = snap[name]
        return True

    def set_goal(self, pid: int, centre_xz: np.ndarray | None = None, front: float | None = None) -> None:
        """Move one performer's goal: the point the stage law pulls it towards (``centre_xz``, in staged
        coordinates) and the facing it turns it to (``front``, radians from +Z towards +X); None keeps that part.
        The pull and turn are the stage's (pivots about the planted foot, leg IK; never sliding a planted foot);
        a couple places its follower this way (:mod:`engine.models.couple`). Kept until changed or reset."""
        r = self.row(pid)
        if centre_xz is not None:
            self.goal_xz[r] = np.asarray(centre_xz, dtype=np.float64)[:2]
        if front is not None:
            self.goal_yaw[r] = float(front)

    def place(self, pid: int, raw_xz: np.ndarray, raw_yaw: float, xz: np.ndarray, yaw: float) -> None:
        """Set the transform so the model's point ``raw_xz`` facing ``raw_yaw`` is staged at ``xz`` facing ``yaw``
        (a performer placed at a start; only before its first frame is staged, or after a reset)."""
        r = self.row(pid)
        th = float(wrap(np.asarray(yaw - raw_yaw)))
        self.theta[r] = th
        self.offset[r] = np.asarray(xz, dtype=np.float64)[:2] - rotate_xz(np.asarray(raw_xz, np.float64)[:2],
                                                                            np.asarray(th))

    def set_style(self, pid: int, style: str | None) -> None:
        """Speed limits of the performer's style (unknown: the loosest of the known styles)."""
        r = self.row(pid)
        self.limiter.limits[r] = speed_limits(style, self.cfg.speed_factor / (1.0 + self.cfg.playout_margin))

    def to_raw_xz(self, pid: int, xz: np.ndarray) -> np.ndarray:
        """A staged floor position [2] -> the model's own coordinates (what it integrates from)."""
        r = self.row(pid)
        return rotate_xz(np.asarray(xz, dtype=np.float64)[:2] - self.offset[r], -self.theta[r])

    def where(self, pid: int) -> tuple[np.ndarray, float] | None:
        """Where the performer stands after its newest staged frame: (its root less its goal [2] in staged
        coordinates, the transform's yaw); None before its first frame (what beat guidance's stage term reads:
        :meth:`StagedModel.tell_stage`)."""
        r = self.row(pid)
        if not self.seen[r]:
            return None
        return self.last_xz[r] - self.goal_xz[r], float(self.theta[r])

    def facing(self, pid: int) -> tuple[float, float]:
        """The performer's front (its goal facing, radians from +Z towards +X, staged) and the recent share of its
        staged frames facing further than ``away_deg`` from it (an average over ``away_tau_s``): what beat
        guidance's facing term reads (:meth:`StagedModel.tell_stage`)."""
        r = self.row(pid)
        return float(self.goal_yaw[r]), float(self.away[r])

    def to_raw(self, pid: int, root: np.ndarray, quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A staged pose (root [3], quat [J, 4]) -> the model's own frame (for keyframes)."""
        r = self.row(pid)
        out = np.asarray(root, dtype=np.float64).copy()
        out[[0, 2]] = self.to_raw_xz(pid, out[[0, 2]])
        q = np.asarray(quat, dtype=np.float64).copy()
        q[0] = R.quat_multiply(yaw_quat(-self.theta[r]), q[0])
        return out, q

    # -- frames ----------------------------------------------------------------------------------------

    def process(self, pids: list[int], root: np.ndarray, quat: np.ndarray,
                pin_legs: np.ndarray | None = None,
                under: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stage ``n`` consecutive frames of each performer: root [B, n, 3], quat [B, n, J, 4] -> the same, staged.

        ``pin_legs`` [B, n] (0..1): how much a keyframe blend pins each frame's legs
        (:attr:`~engine.models.protocol.StepFrames.pin_legs`). The stride correction gives way in proportion: its
        leg IK is applied by ``1 - pin`` and no new pull is taken while a pin is on, so a pinned leg pose comes
        out as the model drew it (the horizontal transform, a rigid turn and offset, changes no joint angle).

        ``under`` (root [B, n + 1, 3], quat [B, n + 1, J, 4], which rows [B] bool): the frames a keyframe blend ran on,
        with the one before them (:attr:`~engine.models.protocol.StepFrames.under`). For those rows the speed limit of
        each point on each frame is the smaller of its own and the larger of :data:`KEYFRAME_CAP_MS` and the point's
        speed in those frames, staged by the same transform: a blend, with the staging's turns on top of it, moves no
        point faster than the dance under it does, beyond the cap (``limit_speed`` on)."""
        rows = np.array([self.row(p) for p in pids], dtype=np.int64)
        th0, off0 = self.theta[rows].copy(), self.offset[rows].copy()  # the transform of the frame before these
        root = np.asarray(root, dtype=np.float64)
        quat = np.asarray(quat, dtype=np.float64)
        if not self.cfg.steer and not self.cfg.limit_speed:
            return root.copy(), quat.copy()
        pts, _ = self.fk(root, quat)  # [B, n, 23, 3] in the model's frame
        b, n = root.shape[:2]
        pin = np.zeros((b, n)) if pin_legs is None else np.clip(np.asarray(pin_legs, dtype=np.float64), 0.0, 1.0)
        if self.cfg.steer:  # the transform after each frame
            th, off, shift = self._steer(rows, root, pts, pin)
        else:
            th = np.repeat(self.theta[rows][:, None], n, axis=1)
            off = np.repeat(self.offset[rows][:, None], n, axis=1)
            shift = np.repeat(self.shift[rows][:, None], n, axis=1)
        shift = shift * (1.0 - pin)[..., None, None]
        r = root.copy()
        r[..., [0, 2]] = rotate_xz(r[..., [0, 2]], th) + off
        q = quat.copy()
        q[..., 0, :] = R.quat_multiply(yaw_quat(th), q[..., 0, :])
        p = pts.copy()
        p[..., [0, 2]] = rotate_xz(p[..., [0, 2]], th[..., None]) + off[:, :, None]
        if self.cfg.steer and np.abs(shift).max(initial=0.0) > 1e-7:
            flat = (b * n,)
            q = leg_ik(self.fk, q.reshape(*flat, *q.shape[2:]), p.reshape(*flat, *p.shape[2:]),
                       shift.reshape(*flat, 2, 2)).reshape(q.shape)
            p, _ = self.fk(r, q)
        if not self.cfg.limit_speed:
            return r, q
        # speed limit: frames that keep within it from the previous output pass as they are; a row over it (or still
        # catching up with its dance) is limited frame by frame
        lim_ms = np.repeat(self.limiter.limits[rows][:, None], n, axis=1)  # [B, n, 23]
        if under is not None:
            lim_ms = self._keyframe_limits(lim_ms, under, th0, off0, th, off)
        lim = lim_ms * self.dt
        prev = np.where(self.limiter.valid[rows][:, None, None], self.limiter.points[rows], p[:, 0])
        steps = np.linalg.norm(np.diff(np.concatenate([prev[:, None], p], axis=1), axis=1), axis=-1)  # [B, n, 23]
        slow = ~(steps / lim > 1.0).any(axis=(1, 2)) & ~self.limiter.lagging[rows]
        out_root, out_quat = r, q
        if slow.all():
            self.limiter.accept(rows, r[:, -1], q[:, -1], p[:, -1])
            return out_root, out_quat
        fast = np.nonzero(~slow)[0]
        if slow.any():
            s_ = np.nonzero(slow)[0]
            self.limiter.accept(rows[s_], r[s_, -1], q[s_, -1], p[s_, -1])
        out_root, out_quat = r.copy(), q.copy()
        for k in range(n):
            out_root[fast, k], out_quat[fast, k] = self.limiter.frame(rows[fast], r[fast, k], q[fast, k], p[fast, k],
                                                                      self.dt, lim_ms[fast, k])
        return out_root, out_quat

    def _keyframe_limits(self, lim_ms: np.ndarray, under: tuple[np.ndarray, np.ndarray, np.ndarray], th0: np.ndarray,
                         off0: np.ndarray, th: np.ndarray, off: np.ndarray) -> np.ndarray:
        """Per-frame point limits [B, n, 23] (m/s) of rows under a keyframe blend (see :meth:`process`)."""
        u_root, u_quat, has = under
        pu, _ = self.fk(np.asarray(u_root, dtype=np.float64), np.asarray(u_quat, dtype=np.float64))  # [B, n+1, 23, 3]
        th_all = np.concatenate([th0[:, None], th], axis=1)
        off_all = np.concatenate([off0[:, None], off], axis=1)
        pu[..., [0, 2]] = rotate_xz(pu[..., [0, 2]], th_all[..., None]) + off_all[:, :, None]
        v_under = np.linalg.norm(np.diff(pu, axis=1), axis=-1) / self.dt  # [B, n, 23]
        bound = np.minimum(lim_ms, np.maximum(KEYFRAME_CAP_MS, v_under))
        return np.where(np.asarray(has, dtype=bool)[:, None, None], bound, lim_ms)

    def _steer(self, rows: np.ndarray, root: np.ndarray, pts: np.ndarray,
               pin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Update the transform of ``rows`` over ``n`` consecutive raw frames (root [B, n, 3], points [B, n, 23, 3]);
        ``pin`` [B, n]: the legs' keyframe pin weight (no new stride pull while it is on). Returns the transform
        after each frame: theta [B, n], offset [B, n, 2] and the legs' stride shift [B, n, 2, 2].

        The controller is sequential (each frame's turn depends on the transform the last one left), so only its
        own arithmetic runs frame by frame, on state held in locals; whatever depends on the raw frames alone
        (floor, contacts, supports, raw facings, leg lengths) is computed for all frames at once, with the same
        operations frame by frame would do, so the result is the same to the bit."""
        cfg, dt = self.cfg, self.dt
        b, n = root.shape[:2]
        seen0 = self.seen[rows]
        # -- the raw frames alone, all n frames at once -------------------------------------------------------
        feet = pts[:, :, FOOT_POINTS]  # [B, n, 4, 3] raw
        feet_xz = feet[..., [0, 2]]
        # the floor: one level for the body (its lowest foot point less that point's rest height: some foot is
        # nearly always down), following it down at once and up at 0.2 m/s (a new take, a retrieval cut, a step up)
        lowest = (feet[..., 1] - FOOT_REST_HEIGHT).min(axis=-1)  # [B, n]
        fls = np.empty((b, n, 4))
        fl = self.floor[rows]
        for k in range(n):
            fl = np.minimum(fl[:, 0] - FOOT_REST_HEIGHT[0] + 0.2 * dt, lowest[:, k])[:, None] + FOOT_REST_HEIGHT
            fls[:, k] = fl
        self.floor[rows] = fl
        seen = np.ones((b, n), dtype=bool)  # a frame has a previous one: the row's first frame only if it was seen
        seen[:, 0] = seen0
        prev_xz = np.concatenate([self.last_feet[rows][:, None], feet_xz[:, :-1]], axis=1)
        fspeed = np.where(seen[..., None], np.linalg.norm(feet_xz - prev_xz, axis=-1) / dt, 0.0)
        height = feet[..., 1] - fls
        near = height < CONTACT_HEIGHT_M  # [B, n, 4]
        low = near & (fspeed < CONTACT_SPEED_MS)  # planted
        right = np.logical_or.reduce(low[..., :2], axis=-1)  # a foot with a planted point
        left = np.logical_or.reduce(low[..., 2:], axis=-1)
        single = right ^ left
        flight = ~(right | left)
        # pivot: the planted points as drawn (mapped, less their leg's stride shift), of the one foot on the floor
        # (or of both feet, with double_support), their mean; the root in flight
        use = low & ~(left[..., None] & np.array([True, True, False, False]) & single[..., None])
        use = use & ~(right[..., None] & np.array([False, False, True, True]) & single[..., None])
        n_use = np.maximum(use.sum(-1, keepdims=True), 1)  # [B, n, 1]
        root_xz = root[..., [0, 2]]
        raw_face = facing_of(pts)  # [B, n]
        # turning slides every planted point but the pivot: full rate on one point (a heel or a ball) or in flight,
        # less on a flat foot, least on both feet
        # (counted by height alone: a foot sliding on the floor would slide faster still when turned about another)
        n_near = near.sum(axis=-1)
        one_foot = near[..., :2].any(axis=-1) ^ near[..., 2:].any(axis=-1)
        allow = np.where(n_near <= 1, 1.0, np.where(one_foot, cfg.flat_support, cfg.double_support)) * seen
        walk = cfg.walk_ms > 0.0 and bool(single.any())
        air_on = cfg.air_ms > 0.0 and not bool(n_near.all())
        air_w = cfg.air_ms * (n_near == 0) * seen if air_on else None  # no foot near the floor
        planted = np.stack([right, left], axis=-1)  # [B, n, 2]
        if cfg.hold_low_feet:  # a foot on the floor that the model slides is held too (not slid further)
            planted = planted | np.stack([near[..., :2].any(axis=-1), near[..., 2:].any(axis=-1)], axis=-1)
        high = height >= CONTACT_HEIGHT_M
        lifted = np.stack([high[..., :2].all(axis=-1), high[..., 2:].all(axis=-1)], axis=-1)
        pinned = pin > 0.0  # a keyframe pins the legs: no stride pull (it would need leg IK, which gives way)
        # the legs: hip to ankle (the drawn vector) and their lengths, for how far each planted leg can still reach
        hip_p, knee_p, ankle_p = (pts[:, :, list(ix)] for ix in zip(*self.fk.leg_points, strict=True))  # [B, n, 2, 3]
        length = R.norm(knee_p - hip_p)[..., 0] + R.norm(ankle_p - knee_p)[..., 0]
        leg_w = ankle_p - hip_p
        leg_reach2 = (0.97 * length) ** 2
        # -- the controller, frame by frame ------------------------------------------------------------------
        th = self.theta[rows]
        off = self.offset[rows]
        face = self.face[rows]
        spin = self.spin[rows]
        last_yaw = self.last_yaw[rows]
        vel = self.vel[rows]
        last_xz = self.last_xz[rows]
        shift = self.shift[rows]  # [B, 2 legs, 2]
        goal = self.goal_xz[rows]
        goal_yaw = self.goal_yaw[rows]
        a_f = dt / cfg.facing_tau_s
        a_v = dt / cfg.travel_tau_s
        a_s = dt / cfg.spin_tau_s
        r_in = cfg.inner_frac * cfg.radius_m
        w_in = cfg.walk_from_frac * cfg.radius_m
        walk_max = math.radians(cfg.walk_max_dps)
        walk_cone = math.radians(cfg.walk_cone_deg)
        guard_r = cfg.guard_frac * cfg.radius_m
        sweep = math.isfinite(cfg.walk_sweep_ms)
        out_th = np.empty((b, n))
        out_off = np.empty((b, n, 2))
        out_shift = np.empty((b, n, 2, 2))
        turns = np.empty((n, b))
        for k in range(n):
            c, s = cs = _cos_sin(th)  # the turn of the transform (by theta), and back (by -theta)
            drawn = _turn(feet_xz[:, k], (c[:, None], s[:, None])) + off[:, None] - shift[:, [0, 0, 1, 1]]  # [B, 4, 2]
            pivot_s = np.add.reduce(drawn * use[:, k, :, None], axis=1) / n_use[:, k]
            pivot = _turn(pivot_s - off, (c, -s))  # the raw point drawn there
            pivot = np.where(flight[:, k, None], root_xz[:, k], pivot)
            # averages in staged space (before this frame's turn)
            xz = _turn(root_xz[:, k], cs) + off
            yaw = raw_face[:, k] + th
            fvec = np.empty((b, 2))
            fvec[:, 0] = np.sin(yaw)
            fvec[:, 1] = np.cos(yaw)
            raw_yaw = yaw - th
            v = (xz - last_xz) / dt
            if k == 0:  # a row's first frame ever starts its averages
                face = np.where(seen0[:, None], face * (1 - a_f) + fvec * a_f, fvec)
                v = np.where(seen0[:, None], v, 0.0)
                spin = np.where(seen0, spin * (1 - a_s) + wrap(raw_yaw - last_yaw) / dt * a_s, 0.0)
            else:
                face = face * (1 - a_f) + fvec * a_f
                spin = spin * (1 - a_s) + wrap(raw_yaw - last_yaw) / dt * a_s
            vel = vel * (1 - a_v) + v * a_v
            rate = turn_rate(cfg, face, xz, vel, spin, goal, goal_yaw)
            rel = xz - goal
            dist = R.norm(rel)[..., 0]
            inward = -rel / np.maximum(dist, 1e-9)[:, None]
            if walk and single[:, k].any():
                # stage walk: a turn about the one planted foot moves the root sideways of its lever (root - pivot);
                # turned the way that carries the root inwards, undone (by the facing law) about the next foot, the
                # pair of turns moves the whole dancer by the turn times the step between the feet: no leg re-bent
                lever = xz - pivot_s
                perp = lever[:, ::-1] * _SIGNS  # (lever z, -lever x): root velocity per rad/s of turn
                need = cfg.walk_ms * _clip((dist - w_in) / max(cfg.radius_m - w_in, 1e-6), 0.0, 2.0)
                w_s = need * np.add.reduce(perp * inward, axis=-1) / (np.add.reduce(perp * perp, axis=-1)
                                                                      + cfg.walk_lever_m**2)
                lim_w = walk_max
                if sweep:  # the other foot points near the floor sweep at most this fast
                    reach_f = np.where(near[:, k], R.norm(drawn - pivot_s[:, None])[..., 0], 0.0).max(axis=1)
                    lim_w = np.minimum(lim_w, cfg.walk_sweep_ms / np.maximum(reach_f, 1e-3))
                w_s = _clip(w_s, -lim_w, lim_w) * single[:, k]
                # not further from the front than the cone (the facing is the audience's first measure)
                f_err = wrap(np.arctan2(face[:, 0], face[:, 1]) - goal_yaw)
                w_s = np.where((np.sign(w_s) == np.sign(f_err)) & (np.abs(f_err) > walk_cone), 0.0, w_s)
                rate = rate + w_s
            if guard_r > 0:  # the turn swings the root about the pivot: outwards only as fast as the guard allows
                lever = xz - pivot_s
                out_per = -np.add.reduce(lever[:, ::-1] * _SIGNS * inward, axis=-1)  # outward m/s per rad/s
                room_v = np.maximum(guard_r - dist, 0.0) / cfg.guard_s
                rate = np.where(rate * out_per > room_v, room_v / np.where(out_per == 0.0, 1.0, out_per), rate)
            d = rate * dt * allow[:, k]
            # the averages turn with the transform: the controller sees its own correction at once (no loop delay)
            cd = _cos_sin(d)
            face = _turn(face, cd)
            vel = _turn(vel, cd)
            # pivot: the pivot's staged position is the same under the old and the new transform
            new_th = th + d
            cn = _cos_sin(new_th)
            off = off + _turn(pivot, cs) - _turn(pivot, cn)
            shift = _turn(shift, (cd[0][:, None], cd[1][:, None]))  # keeps the planted foot where it is drawn
            # stride: pull the body towards the centre on top of the drawn feet; a planted leg is re-solved to keep
            # its foot where it is (its shift grows), a leg in the air lets its shift go back to zero
            if air_w is not None:  # no foot near the floor: the body moves as one (nothing to slide, no leg re-bent)
                air = air_w[:, k] * _clip(dist / cfg.radius_m, 0.0, 2.0)
                off = off + inward * (air * dt)[:, None]
            pull = cfg.pull_ms * _clip((dist - r_in) / (cfg.radius_m - r_in), 0.0, 2.0) * seen[:, k]
            pull = np.where(pinned[:, k], 0.0, pull)
            delta = inward * (pull * dt)[:, None]  # [B, 2]
            back = R.norm(shift)[..., 0]  # [B, 2 legs]
            room = (cfg.max_shift_m - back) / np.maximum(R.norm(delta), 1e-9)
            # and only as far as each planted leg can still reach its foot (hip to drawn ankle within 97 % of its
            # length)
            dl = np.zeros((b, 3))
            dl[:, [0, 2]] = delta
            aa = np.add.reduce(dl * dl, axis=-1)[:, None]
            w = leg_w[:, k].copy()  # [B, 2 legs, 3]
            w[..., [0, 2]] = _turn(w[..., [0, 2]], (cn[0][:, None], cn[1][:, None])) - shift
            bb = np.add.reduce(w * dl[:, None], axis=-1)
            cc = np.add.reduce(w * w, axis=-1) - leg_reach2[:, k]
            disc = bb**2 - aa * cc
            reach = np.where(disc > 0, (-bb + np.sqrt(np.maximum(disc, 0.0))) / np.maximum(aa, 1e-18), 0.0)
            room = np.minimum(room, reach)
            frac = _clip(np.where(planted[:, k], room, 1.0), 0.0, 1.0).min(axis=1)
            delta = delta * frac[:, None]
            off = off + delta
            keep = np.maximum(0.0, back - cfg.recover_ms * dt) / np.maximum(back, 1e-12)
            shift = np.where(planted[:, k, :, None], shift + delta[:, None],
                             np.where(lifted[:, k, :, None], shift * keep[..., None], shift))
            th = wrap(new_th)
            last_yaw = raw_yaw
            last_xz = _turn(root_xz[:, k], cn) + off
            out_th[:, k] = th
            out_off[:, k] = off
            out_shift[:, k] = shift
            turns[k] = d
        self.shift[rows] = shift
        self.theta[rows] = th
        self.offset[rows] = off
        self.face[rows] = face
        self.spin[rows] = spin
        self.last_yaw[rows] = raw_yaw
        self.vel[rows] = vel
        self.last_xz[rows] = last_xz
        self.last_feet[rows] = feet_xz[:, -1]
        self.seen[rows] = True
        # the recent share of frames facing away from the front (as staged here, before the speed limit)
        away = np.abs(wrap(raw_face + out_th - goal_yaw[:, None])) > math.radians(cfg.away_deg)
        a_w = dt / cfg.away_tau_s
        aw = self.away[rows]
        for k in range(n):
            aw = aw * (1.0 - a_w) + away[:, k] * a_w
        self.away[rows] = aw
        for d in turns:
            self.turned += float(np.abs(d).sum())
        self.pivot_frames += int(np.count_nonzero(turns))
        return out_th, out_off, out_shift


def stage_arrays(root: np.ndarray, quat: np.ndarray, config: StagingConfig | None = None, style: str | None = None,
                 skel: Skeleton | None = None, chunk: int = 4, stats: dict[str, float] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Stage one performer's whole dance (root [T, 3], quat [T, J, 4]) as the live model would, ``chunk`` frames
    per step. ``stats``, when given, receives ``speed_capped_share``: the share of frames the speed limit held back."""
    st = Stager(config, skel)
    st.set_style(0, style)
    out_r = np.empty((len(root), 3))
    out_q = np.empty(np.shape(quat), dtype=np.float64)
    for s in range(0, len(root), chunk):
        r, q = st.process([0], np.asarray(root)[None, s : s + chunk], np.asarray(quat)[None, s : s + chunk])
        out_r[s : s + chunk], out_q[s : s + chunk] = r[0], q[0]
    if stats is not None:
        stats["speed_capped_share"] = st.limiter.limited_frames / max(1, len(root))
    return out_r, out_q


def stage_motion(motion: Motion, config: StagingConfig | None = None, style: str | None = None) -> Motion:
    """A whole :class:`~engine.models.pose_repr.Motion` staged as the live model stages it (4 frames per step)."""
    root, quat = stage_arrays(motion.root_pos, R.matrix_to_quat(motion.rot), config, style, motion.skeleton)
    return Motion(motion.skeleton, root, R.quat_to_matrix(quat), motion.fps)


#: The staging of the CLI's defaults.
DEFAULT_STAGING = StagingConfig()


class StagedModel:
    """Any :class:`~engine.models.protocol.MotionModel` with every performer's frames staged (:class:`Stager`).

    It is a motion model itself, so the runtime, ``generate`` and benchmarks drive it unchanged. Positions the
    runtime hands back (re-plans, placements) are in staged coordinates and are mapped to the model's own.
    A model reset without a position (the dance starts over where it stands) keeps the staging state, so the
    restart is blended by the speed limit; a reset to a position (a placement) starts the staging over too.
    """

    def __init__(self, inner: MotionModel, config: StagingConfig | None = None) -> None:
        self.inner = inner
        self.config = config or StagingConfig()
        self.stager = Stager(self.config, inner.skeleton)
        self.kind: str = inner.kind
        self.skeleton: Skeleton = inner.skeleton
        self.n_joints: int = inner.n_joints
        self.frames_per_step: int = inner.frames_per_step
        self.capabilities: Capabilities = inner.capabilities
        self._steps: dict[int, int] = {}  # each performer's newest step index (as the inner model numbers them)
        self._genres: dict[int, int] = {}  # the genre each performer's speed limits were set for
        for pid in inner.performer_ids():
            self._admit(pid)

    def __getattr__(self, name: str) -> Any:  # kind-specific extras (counters, performers) of the inner model
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _admit(self, pid: int) -> None:
        self.stager.reset(pid)
        genre = self.inner.controls(pid).genre
        self.stager.set_style(pid, style_of_genre(genre))
        self._genres[pid] = genre

    def performer_ids(self) -> list[int]:
        return self.inner.performer_ids()

    def add_performer(self, controls: Controls | None = None) -> int:
        pid = self.inner.add_performer(controls)
        self._admit(pid)
        return pid

    def remove_performer(self, pid: int) -> None:
        self.inner.remove_performer(pid)
        self.stager.remove(pid)
        self._steps.pop(pid, None)
        self._genres.pop(pid, None)

    def controls(self, pid: int) -> Controls:
        return self.inner.controls(pid)

    def step(self, cond: np.ndarray, pids: Sequence[int] | None = None) -> list[StepFrames]:
        return self.stage_frames(self.inner.step(cond) if pids is None else self.inner.step(cond, pids))

    def stage_frames(self, out: list[StepFrames]) -> list[StepFrames]:
        """The inner model's newest step (its frames, in its order) staged; the inner model is told where each
        performer now stands (:meth:`tell_stage`). :meth:`step` is the inner step and this."""
        if not out:
            return out
        stepped = [sf.pid for sf in out]
        for pid in stepped:  # the genre may have changed since the last step (the limits are set when it has)
            genre = self.inner.controls(pid).genre
            if self._genres.get(pid) != genre:
                self.stager.set_style(pid, style_of_genre(genre))
                self._genres[pid] = genre
        pin = None
        if any(sf.pin_legs is not None for sf in out):
            pin = np.stack([np.zeros(len(sf.root)) if sf.pin_legs is None else sf.pin_legs for sf in out])
        under = None
        if any(sf.under is not None for sf in out):  # rows without: their own frames (not bounded)
            under = (np.stack([np.concatenate([sf.root[:1], sf.root]) if sf.under is None else sf.under[0]
                               for sf in out]),
                     np.stack([np.concatenate([sf.quat[:1], sf.quat]) if sf.under is None else sf.under[1]
                               for sf in out]),
                     np.array([sf.under is not None for sf in out]))
        root, quat = self.stager.process(stepped, np.stack([sf.root for sf in out]), np.stack([sf.quat for sf in out]),
                                         pin, under)
        self.stager.save(stepped, [sf.step for sf in out])
        self._steps.update((sf.pid, sf.step) for sf in out)
        for pid in stepped:
            self.tell_stage(pid)
        return [StepFrames(pid=sf.pid, step=sf.step, root=root[i].astype(np.float32),
                           quat=quat[i].astype(np.float32)) for i, sf in enumerate(out)]

    def tell_stage(self, pid: int) -> None:
        """Tell the inner model where the staging has the performer (a model that steers its own dance home,
        :meth:`engine.models.gpt_dancer.DanceGenerator.set_stage`; others have no ``set_stage``). Called after
        every step, reset and rewind, so what the model reads always follows the staging's state."""
        tell = getattr(self.inner, "set_stage", None)
        if tell is None or not self.config.steer:
            return
        at = self.stager.where(pid)
        if at is None:
            tell(pid, None)
        else:
            front, away = self.stager.facing(pid)
            tell(pid, at[0], at[1], self.config.radius_m, front, away)

    def reset(self, pid: int, root_xz: np.ndarray | None = None) -> None:
        self._steps.pop(pid, None)  # the model numbers its steps from 0 again: the kept states are not its
        self.stager.drop_saved(pid)
        if root_xz is None:
            self.inner.reset(pid)
        else:
            self.stager.reset(pid)
            self.inner.reset(pid, np.asarray(root_xz, dtype=np.float64)[:2])
        self.tell_stage(pid)

    def keep_rewinds(self, steps: int) -> None:
        self.stager.keep_rewinds(steps)
        self.inner.keep_rewinds(steps)

    def step_group(self, pids: Sequence[int]) -> list[int]:
        return self.inner.step_group(pids)

    def rewind(self, pid: int, n: int, root_xz: np.ndarray | None = None) -> None:
        """The staging goes back with the model: to its state after the last kept step when it is kept (so the
        regenerated frames are staged as if the discarded ones never were), else it goes on (the speed limit
        blends the seam)."""
        last = self._steps.get(pid)
        if last is not None and n > 0:
            keep = last - min(n, last + 1)  # the newest kept step (-1: none)
            self.stager.restore(pid, keep)
            self._steps[pid] = keep
        self.inner.rewind(pid, n, None if root_xz is None else self.stager.to_raw_xz(pid, root_xz))
        self.tell_stage(pid)

    def set_keyframe(self, pid: int, frames_ahead: int, root: np.ndarray, quat: np.ndarray,
                     joints: str = "all") -> None:
        """The staged pose mapped into the model's frame with the transform of now (steering until the
        keyframe's frame moves it by that much)."""
        r, q = self.stager.to_raw(pid, root, quat)
        self.inner.set_keyframe(pid, frames_ahead, r.astype(np.float32), q.astype(np.float32), joints)

    def idle_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.idle_pose()

    def speed_limits(self, pid: int) -> np.ndarray:
        """The performer's joint speed limits [23] (m/s; the playout holds its own transitions to them)."""
        c = self.config
        return self.stager.limiter.limits[self.stager.row(pid)] * (1.0 + c.playout_margin)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {**self.inner.describe(), "staging": (
            f"front {c.front_deg:g} deg, radius {c.radius_m:g} m" if c.steer else "off"),
            "speed_limited_frames": self.stager.limiter.limited_frames}

"""Causal in-betweening: a pinned pose is reached exactly at its frame by a speed-limited blend.

A :class:`PoseTarget` pins joint-local rotations (all joints, the upper body or the lower body) and the
root height at an absolute frame of one performer's dance. :class:`InBetweener` is applied to each step's
frames as they are generated (it reads nothing from the future, so live and offline output are the same):

* **approach**: on each frame before the target it measures how far the generated pose is from the target
  (largest joint-position difference, root-relative, in the dancer's own heading) and starts blending when
  the frames left are about what a blend of that size needs to keep the speed it adds at or below
  ``speed_budget_ms`` (a smoothstep over ``L`` frames moves a joint by at most ``1.5 D / L`` per frame). The
  weight rises from 0 to exactly 1 at the target frame, so the masked joints *are* the target pose there.
* **release**: after the target the weight falls back to 0 over a length chosen the same way from the
  distance between the target and the generated pose at the target frame; the dance, which kept being
  generated underneath, continues.

The target's hip rotation is applied in the dancer's current heading (its yaw replaced by the generated
hip's yaw each frame): a pinned pose is a body configuration, not a direction on the floor, so the
dancer never snaps round to face where the pose file happened to face. The blend never moves root x/z (only
the speed bound below may hold the whole pose, root included, back for a few frames).

Speed limits of the real data (as-captured training takes, three styles, 30 fps): per-joint world speed
p99.9 = 6.3 m/s; per-frame mean root-relative joint speed p99.9 = 3.08 m/s (``REAL_JOINT_SPEED_P999``,
``REAL_MEAN_SPEED_P999``). The budget (default 1.5 m/s) bounds the blend's own rate; the dance keeps
moving underneath while the weight rises, so the speed a blend adds runs higher (measured on a trained GPT:
median 1.3-2.8 m/s, peaks 3-7 m/s, ``bench/reports/controls_gpt3c.md``). A target pinned too close in time for
its distance gets a shorter, faster blend (counted in ``rushed``).

* **speed bound** (session 12): on every frame the blend touches (and after it, until the output has caught up)
  no point may move faster than the larger of ``joint_cap_ms`` (0.9 of the real per-joint p99.9) and that
  point's speed in the generated dance under the blend, nor the mean root-relative point speed exceed the larger
  of ``mean_cap_ms`` (0.9 of the real p99.9) and the dance's; a frame over it is moved only part of the way from
  the previous output towards the blend's pose, and the rest is made up on later frames (``lagging``,
  ``bounded``). Measured cause (``bench/reports/controls_shipped.md``, "Keyframes, session 12"): the dance under
  the blend turns its hips fast while its points hardly move (the pinned pose, applied in that heading, whirls
  with it), or snaps; the staging bounds its own turns against the same dance (``StepFrames.under``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from engine.models.staging import REAL_JOINT_SPEED_P999, PointFK
from engine.skeleton import rotations as R
from engine.skeleton.skeleton import Skeleton, forward_kinematics

#: Real-data speed limits (see the module doc), m/s; the per-joint one is the staging's ``REAL_JOINT_SPEED_P999``.
REAL_MEAN_SPEED_P999 = 3.08
JOINT_SETS = ("all", "upper", "lower")
#: The speed bound (see :meth:`InBetweener._bound`), m/s: 0.9 of the real limits, leaving room for the staging's
#: turns after it.
BOUND_JOINT_MS = 0.9 * REAL_JOINT_SPEED_P999
BOUND_MEAN_MS = 0.9 * REAL_MEAN_SPEED_P999
#: Shares of the way the bound tries on a frame over it (the largest within the bound is taken).
_BOUND_STEPS = 20
#: Joint path length / straight joint distance under a slerp blend, bounded (see ``frames_needed``).
_PATH_FACTOR = 1.5


@dataclass
class PoseTarget:
    """A pose pinned at an absolute frame of a performer's dance."""

    frame: int
    root_y: float
    quat: np.ndarray  # [J, 4] joint-local rotations (w, x, y, z)
    joints: str = "all"  # "all", "upper" (abdomen and above) or "lower" (hip, legs, root height)


@dataclass
class InBetweenState:
    """One performer's pending targets and where its blend stands."""

    targets: list[PoseTarget] = field(default_factory=list)
    start: int | None = None  # approach start frame of targets[0] (None: not started)
    release: int = 0  # release length (frames) after targets[0], once reached
    reached: bool = False
    rushed: int = 0  # blends shorter than the speed budget asked for (the target was pinned too close)
    arc0: np.ndarray | None = None  # signed generated / target rotations of the last blended frame [J, 4]
    arc1: np.ndarray | None = None
    # the last frame applied: generated and output root [3] and rotations [J, 4] (the speed bound's reference)
    prev: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    lagging: bool = False  # the last output was held back by the speed bound (not yet the blend's own pose)
    bounded: int = 0  # frames the speed bound held back

    def add(self, target: PoseTarget) -> None:
        if not self.targets and not self.lagging:  # frames were not followed meanwhile: no reference frame
            self.prev = None
        self.targets.append(target)
        self.targets.sort(key=lambda t: t.frame)
        if self.targets[0] is target:
            self.start, self.reached, self.release = None, False, 0

    def clear(self) -> None:
        self.targets.clear()
        self.start, self.reached, self.release = None, False, 0
        self.arc0 = self.arc1 = None
        self.prev, self.lagging = None, False

    @property
    def active(self) -> bool:
        """Whether frames must pass :meth:`InBetweener.apply`: a target pending or the output still catching up."""
        return bool(self.targets) or self.lagging

    def copy(self) -> InBetweenState:
        """A copy to keep (the targets are never changed in place, so they are shared)."""
        return replace(self, targets=list(self.targets))

    def restart(self) -> None:
        """After a rewind: the blend of the current target is re-planned from the regenerated frames."""
        if not self.reached:
            self.start = None


def joint_mask(skel: Skeleton, joints: str) -> np.ndarray:
    """[J] bool: the joints a target of this kind pins ("upper": abdomen and everything above it)."""
    if joints not in JOINT_SETS:
        raise ValueError(f"keyframe joints must be one of {JOINT_SETS}, got {joints!r}")
    n = skel.num_joints
    if joints == "all":
        return np.ones(n, dtype=bool)
    upper = np.zeros(n, dtype=bool)
    upper[skel.index("abdomen")] = True
    for j in range(n):  # parents come before children
        p = skel.parents[j]
        if p >= 0 and upper[p]:
            upper[j] = True
    return upper if joints == "upper" else ~upper


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _yaw(q: np.ndarray) -> float:
    """Heading (radians about +y) of a rotation's local z axis on the floor; from its x axis when z points
    nearly straight up or down (a body bent flat), so the heading never flips on a near-vertical axis."""
    m = R.quat_to_matrix(q.astype(np.float64))
    if math.hypot(float(m[0, 2]), float(m[2, 2])) >= 0.3:
        return math.atan2(float(m[0, 2]), float(m[2, 2]))
    return math.atan2(float(m[0, 0]), float(m[2, 0])) - math.pi / 2


def _slerp_continuous(q0: np.ndarray, q1: np.ndarray, w: float, st: InBetweenState) -> np.ndarray:
    """Per joint, the point at ``w`` on the arc from the generated rotation ``q0`` [J, 4] to the target ``q1``,
    continuous over the blend: both quaternions keep the sign of their previous frame's (a quaternion and its
    negative are the same rotation, but the arc between two of them depends on their signs), and the arc is
    the shorter one only where the blend starts. So when the generated rotation drifts past 180 degrees from
    the target, the blend stays on its arc instead of flipping to the other side in one frame (a snap)."""
    q0 = R.quat_normalize(q0)
    q1 = R.quat_normalize(q1)
    if st.arc0 is None or st.arc1 is None:
        q1 = np.where(np.sum(q0 * q1, axis=-1, keepdims=True) < 0, -q1, q1)
    else:
        q0 = np.where(np.sum(q0 * st.arc0, axis=-1, keepdims=True) < 0, -q0, q0)
        q1 = np.where(np.sum(q1 * st.arc1, axis=-1, keepdims=True) < 0, -q1, q1)
    st.arc0, st.arc1 = q0, q1
    dot = np.clip(np.sum(q0 * q1, axis=-1, keepdims=True), -1.0, 1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    safe = np.where(sin < 1e-6, 1.0, sin)
    a = np.where(sin < 1e-6, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    b = np.where(sin < 1e-6, w, np.sin(w * theta) / safe)
    return R.quat_normalize(a * q0 + b * q1)


def _yaw_quat(angle: float) -> np.ndarray:
    return np.array([math.cos(angle / 2), 0.0, math.sin(angle / 2), 0.0])


class InBetweener:
    """Applies performers' pose targets to their generated frames (see the module doc).

    Args:
        skel: the model's skeleton (metres).
        fps: frame rate.
        speed_budget_ms: the most a blend may add to a joint's speed (m/s).
        min_frames / max_frames: bounds of a blend's length (approach or release).
    """

    def __init__(self, skel: Skeleton, fps: float = 30.0, speed_budget_ms: float = 1.5, min_frames: int = 8,
                 max_frames: int = 60, joint_cap_ms: float | None = BOUND_JOINT_MS,
                 mean_cap_ms: float | None = BOUND_MEAN_MS) -> None:
        self.skel = skel
        self.fps = fps
        self.budget = speed_budget_ms
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.masks = {k: joint_mask(skel, k) for k in JOINT_SETS}
        self.joint_cap = joint_cap_ms
        self.mean_cap = mean_cap_ms
        self.fk = PointFK(skel) if joint_cap_ms is not None or mean_cap_ms is not None else None
        #: When a list: every applied frame is appended as (frame, generated root [3], rotations [J, 4], output
        #: root, output rotations, weight) (the controls eval measures the blend against its own dance underneath).
        self.trace: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]] | None = None

    def target_pose(self, t: PoseTarget, gen_quat: np.ndarray) -> np.ndarray:
        """The target's rotations [J, 4] with its hip turned to the generated pose's heading."""
        out = t.quat.astype(np.float64).copy()
        turn = _yaw(gen_quat[0]) - _yaw(t.quat[0])
        out[0] = R.quat_multiply(_yaw_quat(turn), out[0])
        return out

    def distance(self, t: PoseTarget, gen_root_y: float, gen_quat: np.ndarray) -> float:
        """Largest joint-position difference (m) between the generated pose and the target, root-relative."""
        mask = self.masks[t.joints]
        tgt = np.where(mask[:, None], self.target_pose(t, gen_quat), gen_quat)
        y = t.root_y if t.joints != "upper" else gen_root_y
        quats = np.stack([gen_quat.astype(np.float64), tgt])
        pos = forward_kinematics(self.skel, np.array([[0.0, gen_root_y, 0.0], [0.0, y, 0.0]]), R.quat_to_matrix(quats))
        return float(np.linalg.norm(pos[0] - pos[1], axis=-1).max())

    def frames_needed(self, dist: float) -> int:
        """Blend length for a largest joint distance ``dist``: smoothstep's peak slope (1.5 / L) times the
        path factor (rotations interpolated along a chain move a joint on an arc, longer than the straight
        difference: up to 1.4x on random poses), within [min_frames, max_frames]."""
        need = math.ceil(1.5 * _PATH_FACTOR * dist * self.fps / max(self.budget, 1e-6))
        return int(min(self.max_frames, max(self.min_frames, need)))

    def apply(self, st: InBetweenState, frame0: int, root: np.ndarray, quat: np.ndarray) -> np.ndarray:
        """Blend frames ``frame0 ..`` (root [n, 3], quat [n, J, 4], changed in place) toward the targets.

        Returns the weight [n] with which each frame's legs are pinned (0 where no "all" or "lower" target
        blends them): the staging lets its leg IK give way by as much (:class:`~engine.models.staging.Stager`)."""
        legs = np.zeros(len(root))
        for i in range(len(root)):
            f = frame0 + i
            while st.targets:
                t = st.targets[0]
                if st.reached and f >= t.frame + st.release:
                    st.targets.pop(0)
                    st.start, st.reached, st.release = None, False, 0
                    st.arc0 = st.arc1 = None
                    continue
                if not st.reached and f > t.frame:  # pinned in the past (or skipped by a rewind): dropped
                    st.targets.pop(0)
                    st.start = None
                    continue
                break
            if not st.active:
                st.prev = None
                return legs
            gen_root, gen_quat = root[i].astype(np.float64), quat[i].astype(np.float64)
            w = 0.0
            if st.targets:
                t = st.targets[0]
                w = self._weight(st, t, f, float(root[i, 1]), quat[i])
                if w <= 0.0:
                    st.arc0 = st.arc1 = None
                else:
                    mask = self.masks[t.joints]
                    tgt = self.target_pose(t, quat[i])
                    blended = _slerp_continuous(gen_quat, tgt, w, st)
                    quat[i] = np.where(mask[:, None], blended, quat[i])
                    if t.joints != "upper":
                        root[i, 1] = (1.0 - w) * root[i, 1] + w * t.root_y
                        legs[i] = w
            if w > 0.0 or st.lagging:
                self._bound(st, gen_root, gen_quat, root, quat, i)
            st.prev = (gen_root, gen_quat, root[i].astype(np.float64), quat[i].astype(np.float64))
            if self.trace is not None:
                self.trace.append((f, gen_root, gen_quat, st.prev[2], st.prev[3], w))
        return legs

    def _bound(self, st: InBetweenState, gen_root: np.ndarray, gen_quat: np.ndarray, root: np.ndarray,
               quat: np.ndarray, i: int) -> None:
        """The speed bound on frame ``i`` (in place): no point of the output may move faster than the larger of
        ``joint_cap`` and that point's speed in the generated dance, nor the output's mean root-relative point
        speed exceed the larger of ``mean_cap`` and the generated dance's; a frame over either is moved from the
        previous output frame towards the blend's pose by the largest share of the way that keeps within both
        (root lerp, rotations slerp: the root's x/z too, since the dance may move its root a long way in a frame
        and its legs back under it). The rest of the way is made up on later frames (``lagging``): where the dance
        underneath is fast the blend may go as fast, never faster."""
        if self.fk is None or st.prev is None:
            st.lagging = False
            return
        pg_root, pg_quat, po_root, po_quat = st.prev
        want_root, want_quat = root[i].astype(np.float64), quat[i].astype(np.float64)
        pts, _ = self.fk(np.stack([pg_root, gen_root, po_root, want_root]), np.stack([pg_quat, gen_quat, po_quat,
                                                                                      want_quat]))
        rel = pts.copy()
        rel[..., [0, 2]] -= np.stack([pg_root, gen_root, po_root, want_root])[:, None, [0, 2]]
        v_gen = np.linalg.norm(pts[1] - pts[0], axis=-1) * self.fps
        m_gen = float(np.linalg.norm(rel[1] - rel[0], axis=-1).mean()) * self.fps
        lim = np.maximum(v_gen, self.joint_cap if self.joint_cap is not None else np.inf)
        mlim = max(m_gen, self.mean_cap if self.mean_cap is not None else np.inf)

        def within(p: np.ndarray, r: np.ndarray) -> np.ndarray:
            v = np.linalg.norm(p - pts[2], axis=-1) * self.fps  # [..., 23]
            m = np.linalg.norm(r - rel[2], axis=-1).mean(axis=-1) * self.fps
            return (v <= lim * (1.0 + 1e-9)).all(axis=-1) & (m <= mlim * (1.0 + 1e-9))

        if bool(within(pts[3], rel[3])):
            st.lagging = False
            return
        share = np.linspace(1.0, 0.0, _BOUND_STEPS + 1)[1:]  # the largest first; 0: the previous pose, held
        c_root = po_root[None] + share[:, None] * (want_root - po_root)[None]
        c_quat = R.slerp(np.broadcast_to(po_quat, (len(share), *po_quat.shape)),
                         np.broadcast_to(want_quat, (len(share), *want_quat.shape)), share[:, None])
        c_pts, _ = self.fk(c_root, c_quat)
        c_rel = c_pts.copy()
        c_rel[..., [0, 2]] -= c_root[:, None, [0, 2]]
        ok = within(c_pts, c_rel)
        k = int(np.argmax(ok)) if ok.any() else len(share) - 1
        root[i] = c_root[k]
        quat[i] = c_quat[k]
        st.lagging = True
        st.bounded += 1

    def _weight(self, st: InBetweenState, t: PoseTarget, f: int, root_y: float, gen_quat: np.ndarray) -> float:
        if st.reached:
            return 1.0 - _smoothstep((f - t.frame) / max(1, st.release))
        left = t.frame - f
        if st.start is None:
            if left > self.max_frames:
                return 0.0
            need = self.frames_needed(self.distance(t, root_y, gen_quat))
            if left > need:
                return 0.0
            st.start = f
            if left < need:
                st.rushed += 1
        if f == t.frame:
            st.reached = True
            st.release = self.frames_needed(self.distance(t, root_y, gen_quat))
            return 1.0
        length = t.frame - st.start
        return _smoothstep((f - st.start) / max(1, length)) if length > 0 else 1.0

"""Output side of the runtime: motion buffers and playheads for all performers at once (numpy, batched).

Generated frames land in a :class:`FrameRing` (one fixed ring per performer row, allocated once) keyed by
their frame index on the audio timeline (frame ``f`` shows the music at ``f / 30`` s). A
:class:`PlayheadBank` turns output ticks (30 or 60 per second) into poses for every performer in one
vectorised pass:

* it reads the rings at fractional frame positions (linear root, slerp rotations), which is what makes
  60 fps output and time-warping the same operation;
* it stays phase-locked to the tracked beat by a small warp offset ``delta`` (frames) per performer that
  follows the difference between the tracker's latest phase and the phase each frame was generated for,
  at most ``max_warp_rate`` frames per frame (gentle: 5 % speed change) and within what the ring holds;
* when a frame is missing (the model was late) it holds the last pose and counts a miss; when frames
  arrive again it blends from the held pose over ``blend_frames`` instead of jumping;
* the idle blend (0 = dance, 1 = idle pose) lets silence settle the avatars and music wake them;
* the poses it makes itself (waking, settling, recovering from a hold, an intensity change) are held to the
  performers' joint speed limits by the staging module's :func:`~engine.models.staging.limit_step`, the same
  snap guard the staged model applies to every generated frame, so no transition snaps.

:class:`MotionBuffer` and :class:`Playhead` are one-performer views of the same code (tests and simple
uses). Pure logic with no threads or clocks: the runtime drives it, the tests call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.models.staging import PointFK, limit_step
from engine.skeleton import rotations as R


def wrap_phase(x: float) -> float:
    """Phase difference into [-0.5, 0.5)."""
    return ((x + 0.5) % 1.0) - 0.5


def _slerp_rows(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Slerp of [N, J, 4] rotations with one weight per row [N]."""
    return R.slerp(q0, q1, w[:, None]).astype(np.float32)


class FrameRing:
    """Fixed rings of generated frames, one row per performer: root [3], joint quats [J, 4], generated phase."""

    def __init__(self, rows: int, n_joints: int, capacity: int = 64) -> None:
        self.rows = rows
        self.capacity = capacity
        self.index = np.full((rows, capacity), -1, dtype=np.int64)  # frame index held in each slot
        self.root = np.zeros((rows, capacity, 3), dtype=np.float32)
        self.quat = np.zeros((rows, capacity, n_joints, 4), dtype=np.float32)
        self.quat[..., 0] = 1.0
        self.phase = np.full((rows, capacity), np.nan, dtype=np.float64)  # beat phase the frame was made for
        self.newest = np.full(rows, -1, dtype=np.int64)

    def put(self, rows: np.ndarray | slice, first: int, root: np.ndarray, quat: np.ndarray,
            phase: np.ndarray) -> None:
        """Frames ``first .. first + n - 1`` of the given rows: root [B, n, 3], quat [B, n, J, 4], phase [n]."""
        n = root.shape[1]
        slots = (first + np.arange(n)) % self.capacity
        r = np.arange(self.rows)[rows][:, None]
        self.index[r, slots] = first + np.arange(n)
        self.root[r, slots] = root
        self.quat[r, slots] = quat
        self.phase[r, slots] = phase
        self.newest[rows] = np.maximum(self.newest[rows], first + n - 1)

    def has(self, row: int, frame_index: int) -> bool:
        return frame_index >= 0 and bool(self.index[row, frame_index % self.capacity] == frame_index)

    def discard_after(self, frame_index: int, rows: np.ndarray | slice = slice(None)) -> None:
        """Forget frames later than ``frame_index`` (a re-plan regenerates them)."""
        idx = self.index[rows]
        idx[idx > frame_index] = -1
        self.index[rows] = idx
        self.newest[rows] = np.minimum(self.newest[rows], frame_index)

    def sample_rows(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every row at its fractional frame ``pos`` [N]: (ok [N], root [N, 3], quat [N, J, 4], phase [N]).

        A row is ok when the frames around its position are present (an integer position needs one).
        """
        i0 = np.floor(pos).astype(np.int64)
        w = pos - i0
        exact = w < 1e-6
        w = np.where(exact, 0.0, w)
        rows = np.arange(self.rows)
        s0 = i0 % self.capacity
        s1 = (i0 + 1) % self.capacity
        ok = (i0 >= 0) & (self.index[rows, s0] == i0) & (exact | (self.index[rows, s1] == i0 + 1))
        r0, r1 = self.root[rows, s0], self.root[rows, s1]
        root = (r0 * (1.0 - w[:, None]) + r1 * w[:, None]).astype(np.float32)
        q0 = self.quat[rows, s0]
        quat = np.where(exact[:, None, None], q0, _slerp_rows(q0, self.quat[rows, s1], w))
        p0, p1 = self.phase[rows, s0], self.phase[rows, s1]
        dp = ((p1 - p0 + 0.5) % 1.0) - 0.5
        phase = np.where(exact, p0, (p0 + w * dp) % 1.0)
        return ok, root, quat.astype(np.float32), phase


@dataclass
class PlayoutStats:
    ticks: int = 0
    missed: int = 0  # ticks with no generated frame to show (held or blended instead), over all rows
    warp_frames: float = 0.0  # current warp offset (row 0)


class PlayheadBank:
    """Reads a :class:`FrameRing` at output ticks for every row; warps, holds, blends and idles (module doc)."""

    def __init__(self, ring: FrameRing, idle_root: np.ndarray, idle_quat: np.ndarray, max_warp_rate: float = 0.05,
                 max_warp_frames: float = 2.0, blend_frames: float = 4.0, limits: np.ndarray | None = None,
                 fk: PointFK | None = None) -> None:
        n = ring.rows
        self.ring = ring
        self.idle_root = idle_root.astype(np.float32)
        self.idle_quat = idle_quat.astype(np.float32)
        self.max_warp_rate = max_warp_rate
        self.max_warp_frames = max_warp_frames
        self.blend_frames = blend_frames
        self.delta = np.zeros(n)  # warp offset, frames
        self.idle = np.ones(n)  # current idle blend (starts idle)
        self.idle_target = np.ones(n)
        self.idle_rate = 1.0 / 15.0  # per 30 fps frame: settle over 0.5 s
        self.wake_rate = 1.0 / 2.0  # music returns: out of idle within 2 frames (reaction latency)
        self.intensity = np.ones(n)
        self.last_root = np.tile(self.idle_root, (n, 1))
        self.last_quat = np.tile(self.idle_quat, (n, 1, 1))
        self.recover = np.zeros(n)  # blend weight toward the held pose after a miss (1 = fully held)
        self.missed = np.zeros(n, dtype=np.int64)
        self.period_frames = 15.0  # beat period in model frames (warp target scaling)
        self.stats = PlayoutStats()
        # joint speed limits [N, 23] (m/s) of the transitions made here, with the points' forward kinematics of
        # the skeleton (None: transitions are not limited)
        self.fk = fk
        self.limits = limits
        self.weight = np.ones(n)  # idle/intensity blend weight of the previous tick
        self.lagging = np.zeros(n, dtype=bool)  # the speed limit held the previous tick back

    def set_idle(self, idle: bool) -> None:
        self.idle_target[:] = 1.0 if idle else 0.0

    def set_period_frames(self, period_frames: float) -> None:
        if period_frames > 0 and np.isfinite(period_frames):
            self.period_frames = period_frames

    def tick(self, pos: float, tracker_phase: float | None, step_frames: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Poses of every row at audio frame position ``pos`` (advanced by ``step_frames`` since the last tick).

        Returns root [N, 3], quat [N, J, 4] and which rows missed their frame [N] (held instead).
        """
        self.stats.ticks += 1
        ok, root, quat, gen_phase = self.ring.sample_rows(pos + self.delta)
        retry = ~ok & (self.delta != 0.0)
        if retry.any():  # the warp ran past the ring: fall back to no warp
            ok2, root2, quat2, phase2 = self.ring.sample_rows(np.full(self.ring.rows, float(pos)))
            use = retry & ok2
            ok = ok | use
            root = np.where(use[:, None], root2, root)
            quat = np.where(use[:, None, None], quat2, quat)
            gen_phase = np.where(use, phase2, gen_phase)
            self.delta[use] = 0.0
        missed = ~ok
        self.missed += missed
        self.stats.missed += int(missed.sum())
        self.recover[missed] = 1.0
        root = np.where(missed[:, None], self.last_root, root)
        quat = np.where(missed[:, None, None], self.last_quat, quat)
        if tracker_phase is not None:
            warp = ok & np.isfinite(gen_phase)
            if warp.any():
                # The motion beat sits where gen_phase == 0; the music's where tracker_phase == 0. Showing the
                # frame (err * period) ahead aligns them; move there gently.
                err = ((tracker_phase - gen_phase + 0.5) % 1.0) - 0.5
                target = np.clip(err * self.period_frames, -self.max_warp_frames, self.max_warp_frames)
                step = self.max_warp_rate * step_frames
                self.delta = np.where(warp, self.delta + np.clip(target - self.delta, -step, step), self.delta)
        blend = ok & (self.recover > 0.0)  # blend out of a hold instead of jumping
        transition = blend.copy()
        if blend.any():
            self.recover[blend] = np.maximum(0.0, self.recover[blend] - step_frames / self.blend_frames)
            w = np.where(blend, self.recover, 0.0)
            root = root * (1 - w[:, None]) + self.last_root * w[:, None]
            quat = np.where(blend[:, None, None], _slerp_rows(quat, self.last_quat, w), quat)
        # Idle: approach the target blend; waking is fast, settling slow.
        rate = np.where(self.idle_target < self.idle, self.wake_rate, self.idle_rate) * step_frames
        self.idle += np.clip(self.idle_target - self.idle, -rate, rate)
        weight = np.minimum(1.0, self.idle + (1.0 - self.intensity) * (1.0 - self.idle))
        blend_idle = weight > 0.0
        if blend_idle.any():
            idle_root = np.tile(self.idle_root, (len(root), 1))
            idle_root[:, [0, 2]] += root[:, [0, 2]]  # idle where the dancer stands
            root = root * (1 - weight[:, None]) + idle_root * weight[:, None]
            idle_q = np.broadcast_to(self.idle_quat, quat.shape)
            quat = np.where(blend_idle[:, None, None], _slerp_rows(quat, idle_q, weight), quat)
        transition |= (weight != self.weight) | self.lagging
        self.weight = weight
        if self.limits is not None and transition.any():
            root, quat = self._limit(np.nonzero(transition & ~missed)[0], root, quat, step_frames)
        root = root.astype(np.float32)
        quat = quat.astype(np.float32)
        self.last_root, self.last_quat = root, quat
        self.stats.warp_frames = float(self.delta[0])
        return root, quat, missed


    def _limit(self, rows: np.ndarray, root: np.ndarray, quat: np.ndarray, step_frames: float
               ) -> tuple[np.ndarray, np.ndarray]:
        """Hold ``rows`` of this tick's poses to the joint speed limits from the previous tick's poses."""
        self.lagging[:] = False
        if len(rows) == 0 or self.limits is None:
            return root, quat
        if self.fk is None:
            self.fk = PointFK()
        dt = step_frames / 30.0
        r, q, _, over = limit_step(self.fk, self.last_root[rows].astype(np.float64),
                                   self.last_quat[rows].astype(np.float64), None, root[rows], quat[rows], None,
                                   self.limits[rows] * dt)
        root = np.array(root, dtype=np.float64)
        quat = np.array(quat, dtype=np.float64)
        root[rows], quat[rows] = r, q
        self.lagging[rows] = over
        return root, quat


class MotionBuffer:
    """One performer's ring (a :class:`FrameRing` of one row)."""

    def __init__(self, n_joints: int, capacity: int = 64) -> None:
        self.ring = FrameRing(1, n_joints, capacity)

    @property
    def newest(self) -> int:
        return int(self.ring.newest[0])

    def put(self, frame_index: int, root: np.ndarray, quat: np.ndarray, phase: float) -> None:
        self.ring.put(slice(None), frame_index, np.asarray(root)[None, None], np.asarray(quat)[None, None],
                      np.array([phase]))

    def has(self, frame_index: int) -> bool:
        return self.ring.has(0, frame_index)

    def discard_after(self, frame_index: int) -> None:
        self.ring.discard_after(frame_index)

    def sample(self, pos: float) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Pose at fractional frame ``pos`` (both neighbours must be present; an integer needs one)."""
        ok, root, quat, phase = self.ring.sample_rows(np.array([pos]))
        return (root[0], quat[0], float(phase[0])) if ok[0] else None


class Playhead:
    """One performer's playhead (a :class:`PlayheadBank` of one row) over a :class:`MotionBuffer`."""

    def __init__(self, buffer: MotionBuffer, idle_root: np.ndarray, idle_quat: np.ndarray, max_warp_rate: float = 0.05,
                 max_warp_frames: float = 2.0, blend_frames: float = 4.0) -> None:
        self.bank = PlayheadBank(buffer.ring, idle_root, idle_quat, max_warp_rate, max_warp_frames, blend_frames)
        self.stats = self.bank.stats

    def set_idle(self, idle: bool) -> None:
        self.bank.set_idle(idle)

    def set_period_frames(self, period_frames: float) -> None:
        self.bank.set_period_frames(period_frames)

    def tick(self, pos: float, tracker_phase: float | None, step_frames: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray]:
        root, quat, _ = self.bank.tick(pos, tracker_phase, step_frames)
        return root[0], quat[0]

    @property
    def delta(self) -> float:
        return float(self.bank.delta[0])

    @property
    def idle(self) -> float:
        return float(self.bank.idle[0])

    @idle.setter
    def idle(self, v: float) -> None:
        self.bank.idle[0] = v

    @property
    def idle_target(self) -> float:
        return float(self.bank.idle_target[0])

    @idle_target.setter
    def idle_target(self, v: float) -> None:
        self.bank.idle_target[0] = v

    @property
    def last_quat(self) -> np.ndarray:
        return self.bank.last_quat[0]

    @property
    def last_root(self) -> np.ndarray:
        return self.bank.last_root[0]

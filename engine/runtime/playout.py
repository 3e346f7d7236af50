"""Output side of the runtime: per-performer motion buffers and the playhead that reads them.

Generated frames land in a :class:`MotionBuffer` keyed by their frame index on the audio timeline
(frame ``f`` shows the music at ``f / 30`` s). The :class:`Playhead` turns output ticks (30 or 60 per
second) into poses:

* it reads the buffer at a fractional frame position (linear root, slerp rotations), which is what
  makes 60 fps output and time-warping the same operation;
* it stays phase-locked to the tracked beat by a small warp offset ``delta`` (frames) that follows the
  difference between the tracker's latest phase and the phase each frame was generated for, at most
  ``max_warp_rate`` frames per frame (gentle: 5 % speed change) and within what the buffer holds;
* when a frame is missing (the generator was late) it holds the last pose and counts a miss; when
  frames arrive again it blends from the held pose over ``blend_frames`` instead of jumping;
* the idle blend (0 = dance, 1 = idle pose) lets silence settle the avatar and music wake it.

Pure logic with no threads or clocks: the runtime drives it, the tests call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.skeleton import rotations as R


@dataclass
class PlayoutStats:
    ticks: int = 0
    missed: int = 0  # ticks with no generated frame to show (held or blended instead)
    warp_frames: float = 0.0  # current warp offset


class MotionBuffer:
    """A fixed ring of generated frames for one performer: root [3], joint quats [J, 4], generated phase."""

    def __init__(self, n_joints: int, capacity: int = 64) -> None:
        self.capacity = capacity
        self.index = np.full(capacity, -1, dtype=np.int64)  # frame index held in each slot
        self.root = np.zeros((capacity, 3), dtype=np.float32)
        self.quat = np.zeros((capacity, n_joints, 4), dtype=np.float32)
        self.phase = np.full(capacity, np.nan, dtype=np.float64)  # beat phase the frame was generated for
        self.newest = -1

    def put(self, frame_index: int, root: np.ndarray, quat: np.ndarray, phase: float) -> None:
        s = frame_index % self.capacity
        self.index[s] = frame_index
        self.root[s] = root
        self.quat[s] = quat
        self.phase[s] = phase
        self.newest = max(self.newest, frame_index)

    def has(self, frame_index: int) -> bool:
        return frame_index >= 0 and bool(self.index[frame_index % self.capacity] == frame_index)

    def discard_after(self, frame_index: int) -> None:
        """Forget frames later than ``frame_index`` (a re-plan regenerates them)."""
        self.index[self.index > frame_index] = -1
        self.newest = min(self.newest, frame_index)

    def clear(self) -> None:
        self.index[:] = -1
        self.newest = -1

    def sample(self, pos: float) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Pose at fractional frame ``pos`` (both neighbours must be present; an integer needs one)."""
        i0 = int(np.floor(pos))
        w = pos - i0
        if not self.has(i0):
            return None
        s0 = i0 % self.capacity
        if w < 1e-6:
            return self.root[s0].copy(), self.quat[s0].copy(), float(self.phase[s0])
        if not self.has(i0 + 1):
            return None
        s1 = (i0 + 1) % self.capacity
        root = self.root[s0] * (1.0 - w) + self.root[s1] * w
        quat = R.slerp(self.quat[s0], self.quat[s1], w).astype(np.float32)
        p0, p1 = float(self.phase[s0]), float(self.phase[s1])
        dp = ((p1 - p0 + 0.5) % 1.0) - 0.5
        return root.astype(np.float32), quat, (p0 + w * dp) % 1.0


def wrap_phase(x: float) -> float:
    """Phase difference into [-0.5, 0.5)."""
    return ((x + 0.5) % 1.0) - 0.5


class Playhead:
    """Reads one performer's buffer at output ticks; warps, holds, blends and idles (see module doc)."""

    def __init__(
        self,
        buffer: MotionBuffer,
        idle_root: np.ndarray,
        idle_quat: np.ndarray,
        max_warp_rate: float = 0.05,
        max_warp_frames: float = 2.0,
        blend_frames: float = 4.0,
    ) -> None:
        self.buffer = buffer
        self.idle_root = idle_root.astype(np.float32)
        self.idle_quat = idle_quat.astype(np.float32)
        self.max_warp_rate = max_warp_rate
        self.max_warp_frames = max_warp_frames
        self.blend_frames = blend_frames
        self.delta = 0.0  # warp offset, frames
        self.idle = 1.0  # current idle blend (starts idle)
        self.idle_target = 1.0
        self.idle_rate = 1.0 / 15.0  # per 30 fps frame: settle over 0.5 s
        self.wake_rate = 1.0 / 2.0  # music returns: out of idle within 2 frames (reaction latency)
        self.intensity = 1.0
        self.last_root = self.idle_root.copy()
        self.last_quat = self.idle_quat.copy()
        self.root_origin = np.zeros(3, dtype=np.float32)  # keeps the idle pose under the dancer
        self.recover = 0.0  # blend weight toward the held pose after a miss (1 = fully held)
        self.stats = PlayoutStats()

    def set_idle(self, idle: bool) -> None:
        self.idle_target = 1.0 if idle else 0.0

    def tick(self, pos: float, tracker_phase: float | None, step_frames: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Pose to show at audio frame position ``pos`` (advanced by ``step_frames`` since the last tick).

        Args:
            pos: the output tick's position on the audio timeline, in model frames (fractional at 60 fps).
            tracker_phase: the tracker's current beat phase at ``pos`` (None: no belief, no warping).
            step_frames: frames advanced since the previous tick (1 at 30 fps, 0.5 at 60 fps).
        """
        self.stats.ticks += 1
        got = self.buffer.sample(pos + self.delta)
        if got is None and self.delta != 0.0:
            got = self.buffer.sample(pos)  # the warp ran past the buffer: fall back to no warp
            if got is not None:
                self.delta = 0.0
        if got is None:
            self.stats.missed += 1
            self.recover = 1.0
            root, quat = self.last_root, self.last_quat
        else:
            root, quat, gen_phase = got
            if tracker_phase is not None and np.isfinite(gen_phase):
                # The motion beat sits where gen_phase == 0; the music's where tracker_phase == 0.
                # Showing the frame (err * period) ahead aligns them; move there gently.
                target = float(
                    np.clip(
                        wrap_phase(tracker_phase - gen_phase) * self._period_frames,
                        -self.max_warp_frames,
                        self.max_warp_frames,
                    )
                )
                step = self.max_warp_rate * step_frames
                self.delta += float(np.clip(target - self.delta, -step, step))
            if self.recover > 0.0:  # blend out of a hold instead of jumping
                self.recover = max(0.0, self.recover - step_frames / self.blend_frames)
                root = root * (1 - self.recover) + self.last_root * self.recover
                quat = R.slerp(quat, self.last_quat, self.recover).astype(np.float32)
        # Idle: approach the target blend; waking is fast, settling slow.
        rate = self.wake_rate if self.idle_target < self.idle else self.idle_rate
        self.idle += float(np.clip(self.idle_target - self.idle, -rate * step_frames, rate * step_frames))
        weight_idle = min(1.0, self.idle + (1.0 - self.intensity) * (1.0 - self.idle))
        if weight_idle > 0.0:
            idle_root = self.idle_root.copy()
            idle_root[[0, 2]] += root[[0, 2]]  # idle where the dancer stands
            root = root * (1 - weight_idle) + idle_root * weight_idle
            quat = R.slerp(quat, self.idle_quat, weight_idle).astype(np.float32)
        self.last_root, self.last_quat = root, quat
        self.stats.warp_frames = self.delta
        return root, quat

    #: beat period in model frames, updated by the runtime from the tracker (warp target scaling)
    _period_frames: float = 15.0

    def set_period_frames(self, period_frames: float) -> None:
        if period_frames > 0 and np.isfinite(period_frames):
            self._period_frames = period_frames

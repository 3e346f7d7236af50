"""Real-time playback of a motion clip as PoseFrames, paced by the injected clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from engine.clock import SYSTEM_CLOCK, Clock
from engine.frames import ENGINE_SAMPLE_RATE, PoseFrame
from engine.skeleton import space
from engine.skeleton.motion import Motion


@dataclass
class PlaybackStats:
    frames: int = 0
    late_frames: int = 0  # frames emitted more than one period after their deadline
    max_late_ns: int = 0


class MotionPlayer:
    """Emits a motion's frames at ``fps`` in real time.

    The clip is resampled once (slerp) to ``fps``, scaled to ``height_m`` (0 keeps file units) and its
    world positions computed up front, so the per-frame work is only building the message.

    Args:
        motion: the clip (file units).
        fps: output rate (30 or 60 for the CLI; any positive rate works).
        loop: start over at the end instead of stopping.
        clock: pacing clock.
        performer: performer index stamped on frames.
        height_m: body height to scale to; 0 keeps the file's units.
        bpm: if > 0, a synthetic beat grid (beat flag and phase) at this tempo, for VJ tools.
    """

    def __init__(
        self,
        motion: Motion,
        fps: float = 30.0,
        *,
        loop: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        performer: int = 0,
        height_m: float = space.DEFAULT_HEIGHT_M,
        bpm: float = 0.0,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        m = motion.resample(fps)
        if height_m > 0:
            skel, root, _ = space.normalise_scale(m.skeleton, m.root_positions, height_m)
            m = Motion(skel, m.fps, root, m.rotations)
        self.motion = m
        self.fps = float(fps)
        self.loop = loop
        self.clock = clock
        self.performer = performer
        self.bpm = bpm
        self.positions = m.positions().astype(np.float32)  # [N, J, 3]
        self.rotations = m.rotations.astype(np.float32)  # [N, J, 4]
        self.roots = m.root_positions.astype(np.float32)  # [N, 3]
        self.stats = PlaybackStats()
        self.stopped = False

    def frame_at(self, i: int, capture_ns: int, due_ns: int = 0) -> PoseFrame:
        """Frame ``i`` of the output (``i`` counts on across loops), due to play out at ``due_ns``."""
        k = i % self.motion.num_frames
        t = i / self.fps
        beat = False
        phase = 0.0
        if self.bpm > 0:
            beats = t * self.bpm / 60.0
            phase = float(beats % 1.0)
            # a beat "falls on" the frame whose interval contains it
            beat = int(np.floor(beats)) != int(np.floor(beats - self.bpm / 60.0 / self.fps)) or i == 0
        speed = 0.0
        if k > 0:
            speed = float(np.mean(np.linalg.norm(self.positions[k] - self.positions[k - 1], axis=-1))) * self.fps
        return PoseFrame(
            sample_index=round(t * ENGINE_SAMPLE_RATE),
            capture_ns=capture_ns,
            frame_index=i,
            performer=self.performer,
            skeleton=self.motion.skeleton.name,
            root_position=self.roots[k],
            rotations=self.rotations[k],
            positions=self.positions[k],
            time_s=t,
            bpm=self.bpm,
            beat_phase=phase,
            beat=beat,
            # no music in a motion file: "energy" is mean joint speed mapped to 0..1 (2 m/s -> 1)
            energy=min(1.0, speed / 2.0),
            fps=self.fps,
            due_ns=due_ns,
        )

    def frames(self, seconds: float | None = None) -> Iterator[PoseFrame]:
        """Yield frames at their real-time deadlines until the clip ends (or ``seconds`` elapse, or stop())."""
        period_ns = round(1e9 / self.fps)
        start = self.clock.monotonic_ns()
        total = None if self.loop else self.motion.num_frames
        if seconds is not None:
            n = round(seconds * self.fps)
            total = n if total is None else min(total, n)
        i = 0
        while (total is None or i < total) and not self.stopped:
            deadline = start + i * period_ns
            self.clock.sleep_until_ns(deadline)
            now = self.clock.monotonic_ns()
            late = now - deadline
            if late > period_ns:
                self.stats.late_frames += 1
            self.stats.max_late_ns = max(self.stats.max_late_ns, late)
            yield self.frame_at(i, now, deadline)
            self.stats.frames += 1
            i += 1

    def run(self, sinks: Sequence[Callable[[PoseFrame], None]], seconds: float | None = None) -> PlaybackStats:
        """Play to every sink (each called with each frame, in order) and return the stats."""
        for f in self.frames(seconds):
            for s in sinks:
                s(f)
        return self.stats

    def stop(self) -> None:
        self.stopped = True

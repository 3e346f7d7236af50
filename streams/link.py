"""Ableton Link output: the engine's tempo and beat phase published as a Link session peer.

Resolume, TouchDesigner, Ableton Live, Traktor and most VJ tools sync to a Link session. The engine joins
the session on the local network and steers it: the session tempo follows the tracked BPM and the
session's beat phase follows the engine's (beats land where the dancers' beats land).

* :class:`LinkSteering` is the policy, without I/O: given the session's beat *now* and the engine's BPM and
  phase *now*, it says which tempo to set and which beat to force (only when the phase error exceeds a
  tolerance, so peers are not flooded with timeline changes).
* :class:`LinkPublisher` is the thin layer over the `aalink` package (an optional extra, imported lazily:
  ``pip install 'groovecast[link]'``). In real time it is a beat-pulse sink: each pulse leaves at the
  predicted beat as heard, so the session's beat is forced to a whole beat at that moment and its tempo to
  the pulse's (the phase follows the predicted beat, not the output frames). Without pulses (``--fast``,
  ``--beat-pulse frame``) it is a pose sink (performer 0's frames, at their playout time). It also takes
  ``publish(bpm, phase)`` from other callers (``groovecast analyze --live``, from the beat events).

Link discovers peers by UDP multicast on every network interface; ``--link`` is therefore opt-in.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.clock import Clock, SystemClock
from engine.frames import PoseFrame

if TYPE_CHECKING:
    from engine.runtime.beat_pulse import BeatPulse

log = logging.getLogger(__name__)

#: Beats per bar the session is told (Link's "quantum"); only the beat phase is steered, not the bar.
QUANTUM = 4.0


class LinkUnavailable(RuntimeError):
    """The `aalink` package is not installed or cannot start."""


@dataclass(frozen=True)
class LinkAction:
    """What to change in the session now: a tempo to set and/or a beat to force (None: leave it)."""

    tempo: float | None = None
    force_beat: float | None = None


def wrap_half(x: float) -> float:
    """``x`` wrapped into ``[-0.5, 0.5)``."""
    return (x + 0.5) % 1.0 - 0.5


@dataclass
class LinkSteering:
    """Decides how to steer a Link session towards the engine's tempo and phase (no I/O).

    Args:
        tempo_tolerance_bpm: a BPM change smaller than this is not sent.
        phase_tolerance_s: a phase error below this (in seconds at the current tempo) is left alone.
        min_bpm, max_bpm: tempos outside this range (Link's own limits are 20..999) are not published.
    """

    tempo_tolerance_bpm: float = 0.01
    phase_tolerance_s: float = 0.002
    min_bpm: float = 20.0
    max_bpm: float = 999.0

    def step(self, session_tempo: float, session_beat: float, bpm: float, phase: float) -> LinkAction:
        """One update. ``session_beat`` is the session's beat now; ``phase`` the engine's beat phase now (0..1).

        The forced beat keeps the session's beat count (and bar) and moves it by the wrapped phase error,
        so the session never jumps by more than half a beat.
        """
        if not self.min_bpm <= bpm <= self.max_bpm:
            return LinkAction()
        tempo = bpm if abs(bpm - session_tempo) >= self.tempo_tolerance_bpm else None
        err_beats = wrap_half(phase - session_beat)
        force = None
        if abs(err_beats) * 60.0 / bpm > self.phase_tolerance_s:
            force = session_beat + err_beats
        return LinkAction(tempo, force)


class LinkPublisher:
    """Joins the local Link session and steers it from the engine's frames.

    Args:
        bpm: the session tempo to start with.
        steering: the policy (default :class:`LinkSteering`).
        clock: the clock beat pulses' ``due_ns`` are on (the runtime's; default the system's).

    Raises:
        LinkUnavailable: `aalink` is missing or Link cannot start, with how to install it.
    """

    def __init__(self, bpm: float = 120.0, steering: LinkSteering | None = None, clock: Clock | None = None):
        try:
            import aalink
        except ImportError:
            raise LinkUnavailable("Ableton Link needs the aalink package: pip install 'groovecast[link]'") from None
        self.steering = steering or LinkSteering()
        self.clock: Clock = clock or SystemClock()
        self.updates = 0
        self.forced = 0
        self.pulses = False  # set once beat pulses steer the session (then pose frames are ignored)
        self.tempo_changes = 0
        # aalink wants a running asyncio loop at construction; the engine's sinks run on plain threads, so
        # the Link object lives with a loop of its own on a daemon thread.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="groovecast link", daemon=True)
        self._thread.start()

        async def create() -> Any:
            link = aalink.Link(float(bpm))
            link.quantum = QUANTUM
            link.enabled = True
            return link

        try:
            self._link = asyncio.run_coroutine_threadsafe(create(), self._loop).result(timeout=10)
        except Exception as exc:
            self._stop_loop()
            raise LinkUnavailable(f"cannot start Ableton Link: {exc}") from None
        self._lock = threading.Lock()

    @property
    def num_peers(self) -> int:
        return int(self._link.num_peers)

    def session(self) -> tuple[float, float, float]:
        """``(link time in seconds, tempo, beat)`` of the session now."""
        with self._lock:
            return self._link.time.total_seconds(), float(self._link.tempo), float(self._link.beat)

    def publish(self, bpm: float, phase: float, at_ns: int | None = None) -> LinkAction:
        """Steer the session to ``bpm`` with beat phase ``phase`` (0..1): the phase at this moment, or at the
        monotonic time ``at_ns`` (this publisher's clock), run on at ``bpm`` to the moment the session is read
        (a caller preempted between the two does not move the session's beat by its delay)."""
        with self._lock:
            if at_ns is not None:
                phase += (self.clock.monotonic_ns() - at_ns) / 1e9 * bpm / 60.0
            action = self.steering.step(float(self._link.tempo), float(self._link.beat), bpm, phase)
            if action.tempo is not None:
                self._link.tempo = action.tempo
                self.tempo_changes += 1
            if action.force_beat is not None:
                self._link.force_beat(action.force_beat)
                self.forced += 1
            self.updates += 1
        return action

    def on_pulse(self, pulse: BeatPulse) -> None:
        """Beat-pulse sink: the beat phase is 0 when the pulse is due (at its beat as heard), whenever it
        arrives."""
        self.pulses = True
        try:
            self.publish(float(pulse.bpm), 0.0, pulse.due_ns)
        except Exception as exc:  # Link trouble must never stop the dance
            log.warning("Ableton Link update failed: %s", exc)

    def __call__(self, frame: PoseFrame) -> None:
        """Pose sink: performer 0's tempo and phase at the moment the frame is due to play out (its ``due_ns``,
        however late it arrives; unless pulses steer the session: then the frames are left alone)."""
        if self.pulses or frame.performer != 0 or frame.bpm <= 0:
            return
        try:
            self.publish(float(frame.bpm), float(frame.beat_phase), frame.due_ns or None)
        except Exception as exc:  # Link trouble must never stop the dance
            log.warning("Ableton Link update failed: %s", exc)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def close(self) -> None:
        try:
            self._link.enabled = False
        finally:
            self._stop_loop()

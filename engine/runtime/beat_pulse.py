"""Beat pulses sent at the tracker's predicted beat, on the beat as heard (not on the next output frame).

The policy is pure: :class:`BeatPulser` is told the tracker's belief after each feature frame (predicted
next beat and period, on the audio timeline in seconds) and says when the next pulse is due and for which
beat; the runtime turns that audio time into a monotonic time with its audio clock and sends it from the
playout thread.

* **One pulse per beat.** Once a beat is pulsed, a prediction less than half a period after it names the
  same beat (the tracker still holding or moving its estimate), so the next pulse is one period on: pulses
  are never closer than half a period.
* **No stale pulses.** A beat that is already more than a quarter period past when it becomes due (the
  tracker had no phase yet, or re-locked backwards) is dropped, not sent late.
* **Grid smoothing.** The tracker places beats on its onset-function hops (11.6 ms), so consecutive
  predictions jitter by up to a hop. While the beats are steady (each new prediction within 12 % of a period
  of the previous pulse + one period), the pulse time is the least-squares line through the last
  ``window`` raw predictions evaluated at the newest one: the jitter falls (std 3.4 -> about 2 ms on the
  rendered beat set) and a tempo change resets the line within a beat.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

#: A prediction this close to the last pulse (in periods) is the same beat, moved by the tracker.
SAME_BEAT = 0.5
#: A beat this late (in periods) when it becomes due is dropped rather than sent.
STALE = 0.25
#: A new prediction within this fraction of a period of the steady grid continues the smoothing line.
STEADY = 0.12


@dataclass(frozen=True)
class BeatPulse:
    """One beat pulse: the beat's time on the audio timeline (seconds), its tempo, and its index."""

    beat_s: float
    bpm: float
    index: int  # pulses sent so far, 0-based
    #: the monotonic time (the runtime's clock) at which the beat is heard, when known; a sink that acts on
    #: the phase (Ableton Link) measures from it, so a pulse delivered late does not move its beat
    due_ns: int | None = None


class BeatPulser:
    """Which beat to pulse next, from the tracker's newest prediction (engine and playout threads, under a lock).

    Args:
        window: raw predictions of consecutive beats fitted by the smoothing line (1: no smoothing).
    """

    def __init__(self, window: int = 8) -> None:
        self.pending_s: float | None = None  # the next beat to pulse, audio timeline (s)
        self.last_s: float | None = None  # the last beat pulsed
        self.period_s = 0.0
        self.sent = 0
        self.dropped = 0  # stale beats not sent
        self._raw: deque[float] = deque(maxlen=max(1, window))  # raw predictions of the last pulsed beats
        self._pending_raw = 0.0

    def predict(self, next_beat_s: float, period_s: float, active: bool) -> None:
        """The tracker's belief after a feature frame; ``active`` False (silence, no phase yet) pulses nothing."""
        if not active or period_s <= 0 or next_beat_s < 0:
            self.pending_s = None
            return
        self.period_s = period_s
        b = next_beat_s
        last_raw = self._raw[-1] if self._raw else self.last_s
        if last_raw is not None:
            # The tracker still names the beat just pulsed (or an older one): pulse the one after it.
            while b - last_raw < SAME_BEAT * period_s:
                b += period_s
        self._pending_raw = b
        self.pending_s = self._smooth(b, period_s)

    def _smooth(self, b: float, period_s: float) -> float:
        raw = self._raw
        if len(raw) < 3 or abs(b - raw[-1] - period_s) > STEADY * period_s:
            return b
        y = np.fromiter(raw, np.float64, len(raw))
        if np.any(np.abs(np.diff(y) - period_s) > STEADY * period_s):
            return b
        y = np.append(y, b)
        x = np.arange(len(y), dtype=np.float64)
        slope, intercept = np.polyfit(x, y, 1)
        return float(intercept + slope * x[-1])

    def take(self, now_s: float, due_ns: int | None = None) -> BeatPulse | None:
        """The pulse due at audio-timeline time ``now_s`` (offset already removed by the caller), if any;
        ``due_ns`` (the monotonic time the beat is heard) is carried on the pulse."""
        if self.pending_s is None or self.pending_s > now_s:
            return None
        beat, raw = self.pending_s, self._pending_raw
        self.pending_s = None
        if now_s - beat > STALE * self.period_s:
            self.dropped += 1
            return None
        if self._raw and abs(raw - self._raw[-1] - self.period_s) > STEADY * self.period_s:
            self._raw.clear()  # not the next beat of a steady grid: start the line over
        self._raw.append(raw)
        self.last_s = beat
        self.sent += 1
        return BeatPulse(beat_s=beat, bpm=60.0 / self.period_s, index=self.sent - 1, due_ns=due_ns)

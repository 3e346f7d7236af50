"""One injectable clock. Nothing else in the engine calls ``time.*`` directly.

Pass a :class:`Clock` to anything that paces, stamps or sleeps; tests pass a :class:`FakeClock`
and advance it by hand instead of patching :mod:`time`.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic_ns(self) -> int:
        """Monotonic time in nanoseconds (same origin as ``time.monotonic_ns``)."""
        ...

    def sleep_until_ns(self, deadline_ns: int) -> None:
        """Block until ``monotonic_ns() >= deadline_ns`` (returns at once if already past)."""
        ...

    def wall_time(self) -> float:
        """Wall-clock seconds since the epoch (for file names and logs only)."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic_ns`` and a sleep that finishes with a short spin."""

    #: Sleep in the OS until this close to the deadline, then spin (OS sleeps overshoot ~0.1 ms).
    spin_ns = 300_000

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until_ns(self, deadline_ns: int) -> None:
        while True:
            remaining = deadline_ns - time.monotonic_ns()
            if remaining <= 0:
                return
            if remaining > self.spin_ns:
                time.sleep((remaining - self.spin_ns) / 1e9)
            # else spin: the loop re-reads the clock

    def wall_time(self) -> float:
        return time.time()


class FakeClock:
    """A clock that only moves when told to. ``sleep_until_ns`` jumps time forward instantly."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self._now = start_ns
        self._lock = threading.Lock()

    def monotonic_ns(self) -> int:
        with self._lock:
            return self._now

    def advance_ns(self, delta_ns: int) -> None:
        if delta_ns < 0:
            raise ValueError("a monotonic clock cannot go back")
        with self._lock:
            self._now += delta_ns

    def sleep_until_ns(self, deadline_ns: int) -> None:
        with self._lock:
            if deadline_ns > self._now:
                self._now = deadline_ns

    def wall_time(self) -> float:
        return self.monotonic_ns() / 1e9


#: The default clock for code that was not handed one.
SYSTEM_CLOCK: Clock = SystemClock()

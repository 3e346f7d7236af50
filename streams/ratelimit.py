"""Token buckets for inbound rate limits and a log limiter (one line per interval, counting what it held back)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable

from engine.clock import SYSTEM_CLOCK, Clock


class TokenBucket:
    """``rate`` events per second on average, bursts of up to ``burst``; :meth:`allow` takes one token."""

    def __init__(self, rate: float, burst: float, clock: Clock = SYSTEM_CLOCK) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1 (got {rate}, {burst})")
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self._tokens = float(burst)
        self._t = clock.monotonic_ns()

    def allow(self) -> bool:
        now = self.clock.monotonic_ns()
        self._tokens = min(self.burst, self._tokens + (now - self._t) * 1e-9 * self.rate)
        self._t = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class KeyedBuckets:
    """One :class:`TokenBucket` per key (a peer), at most ``max_keys`` kept (least recently used go first)."""

    def __init__(self, rate: float, burst: float, clock: Clock = SYSTEM_CLOCK, max_keys: int = 4096) -> None:
        self.rate, self.burst, self.clock, self.max_keys = rate, burst, clock, max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def allow(self, key: Hashable) -> bool:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = TokenBucket(self.rate, self.burst, self.clock)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return b.allow()

    def __len__(self) -> int:
        return len(self._buckets)


class LogLimiter:
    """Logs at most one line per ``interval_s`` through ``logger``; the next line says how many were held back.

    Client mistakes are logged this way: a flood of bad messages costs one line a second, never a
    traceback per message.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 1.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.logger = logger
        self.interval_ns = int(interval_s * 1e9)
        self.clock = clock
        self._last: int | None = None
        self.suppressed = 0
        self.lines = 0

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log one line unless one was logged less than ``interval_s`` ago; returns whether it was logged."""
        now = self.clock.monotonic_ns()
        if self._last is not None and now - self._last < self.interval_ns:
            self.suppressed += 1
            return False
        held, self.suppressed = self.suppressed, 0
        self._last = now
        self.lines += 1
        if held:
            self.logger.log(level, msg + " (%d similar held back)", *args, held)
        else:
            self.logger.log(level, msg, *args)
        return True

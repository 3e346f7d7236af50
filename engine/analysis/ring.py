"""Preallocated ring buffers whose newest window is always one contiguous view."""

from __future__ import annotations

import numpy as np


class SampleRing:
    """A ring (float32 by default) that keeps the newest ``capacity`` values readable as one contiguous view.

    Every value is written twice (at ``i`` and ``i + capacity``), so the last ``n <= capacity``
    values are ``buf[pos + capacity - n : pos + capacity]`` without copying or wrapping. Writing
    allocates nothing.
    """

    def __init__(self, capacity: int, dtype: type = np.float32) -> None:
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._buf: np.ndarray = np.zeros(2 * capacity, dtype=dtype)  # [2C]
        self._pos = 0  # index of the next write, in [0, C)
        self.count = 0  # values written since reset

    def reset(self) -> None:
        self._buf.fill(0.0)
        self._pos = 0
        self.count = 0

    def push(self, value: float) -> None:
        c = self.capacity
        self._buf[self._pos] = value
        self._buf[self._pos + c] = value
        self._pos = (self._pos + 1) % c
        self.count += 1

    def write(self, x: np.ndarray) -> None:
        """Append ``x`` (any length; only the newest ``capacity`` values are kept)."""
        total = n = len(x)
        c = self.capacity
        if n >= c:
            x = x[n - c:]
            n = c
        first = min(n, c - self._pos)
        self._buf[self._pos:self._pos + first] = x[:first]
        self._buf[self._pos + c:self._pos + c + first] = x[:first]
        rest = n - first
        if rest:
            self._buf[:rest] = x[first:]
            self._buf[c:c + rest] = x[first:]
        self._pos = (self._pos + n) % c
        self.count += total

    def latest(self, n: int) -> np.ndarray:
        """View of the newest ``n`` values, oldest first (zeros before the first write). Do not keep it."""
        if not 0 < n <= self.capacity:
            raise ValueError(f"window {n} outside 1..{self.capacity}")
        end = self._pos + self.capacity
        return self._buf[end - n:end]

    def ago(self, k: int) -> float:
        """The value written ``k`` pushes ago (``k = 0``: the newest)."""
        return float(self._buf[self._pos + self.capacity - 1 - k])

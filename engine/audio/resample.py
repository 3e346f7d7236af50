"""Resampling to the engine rate: whole-signal polyphase for files, a stateful polyphase filter for streams."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import firwin, resample_poly

from engine.frames import ENGINE_SAMPLE_RATE


def resample(x: np.ndarray, sr_in: int, sr_out: int = ENGINE_SAMPLE_RATE) -> np.ndarray:
    """Resample a whole mono signal (``resample_poly``, Kaiser window); returns float32."""
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive (got {sr_in} -> {sr_out})")
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x.copy()
    g = math.gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


class StreamResampler:
    """Polyphase FIR resampler with state: feeding a signal in any chunks gives the same output as one call.

    Output sample ``m`` sits at input position ``m * down / up``; it is the sum over taps of the
    prototype low-pass (cut at the lower Nyquist) at phase ``(m * down) % up``. Latency: half the
    filter, ``taps_per_phase // 2`` input samples.
    """

    def __init__(self, sr_in: int, sr_out: int = ENGINE_SAMPLE_RATE, taps_per_phase: int = 24) -> None:
        if sr_in <= 0 or sr_out <= 0:
            raise ValueError(f"sample rates must be positive (got {sr_in} -> {sr_out})")
        g = math.gcd(sr_in, sr_out)
        self.up, self.down = sr_out // g, sr_in // g
        self.sr_in, self.sr_out = sr_in, sr_out
        self.passthrough = self.up == self.down
        self.k = taps_per_phase
        cutoff = 0.95 / max(self.up, self.down)  # relative to the up-sampled Nyquist
        h = firwin(self.k * self.up, cutoff, window=("kaiser", 8.0)) * self.up
        # phases[p, j] multiplies input x[i0 - j] for output phase p: [up, K]
        self._phases = h.reshape(self.k, self.up).T.astype(np.float32).copy()
        self._hist = np.zeros(self.k, dtype=np.float32)  # last K input samples (an output may need x[n_prev - K])
        self._m = 0  # next output index
        self._n_in = 0  # input samples consumed
        self.latency_samples_in = self.k // 2

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed input samples; return every output sample whose input support has arrived."""
        x = np.asarray(x, dtype=np.float32)
        if self.passthrough:
            return x.copy()
        buf = np.concatenate([self._hist, x])  # buf[j] = input sample (n_in - K + j)
        base = self._n_in - self.k
        n_avail = self._n_in + len(x)
        # output m needs input up to i0 = floor(m * down / up) (its newest tap)
        m_end = (n_avail - 1) * self.up // self.down + 1 if n_avail > 0 else 0
        ms = np.arange(self._m, m_end, dtype=np.int64)
        if len(ms):
            pos = ms * self.down
            i0 = pos // self.up
            ph = pos % self.up
            idx = (i0 - base)[:, None] - np.arange(self.k)[None, :]  # [M, K]
            taps = buf[np.clip(idx, 0, len(buf) - 1)]
            taps[idx < 0] = 0.0
            y = np.einsum("mk,mk->m", taps, self._phases[ph]).astype(np.float32)
        else:
            y = np.zeros(0, dtype=np.float32)
        self._m = m_end
        self._n_in = n_avail
        self._hist = buf[len(buf) - self.k:].copy()
        return y

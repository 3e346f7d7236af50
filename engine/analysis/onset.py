"""Onset strength per hop: log-compressed mel spectral flux on aubio's phase vocoder, plus peak picking."""

from __future__ import annotations

import aubio
import numpy as np

from engine.analysis.ring import SampleRing
from engine.frames import ENGINE_SAMPLE_RATE

#: Analysis hop and window at the engine rate (11.6 ms hop, 46 ms window).
HOP = 256
WIN = 1024
N_MEL = 40
#: Mel bands below this index count as "bass" (about < 200 Hz): the downbeat accent uses them.
N_BASS_BANDS = 6
#: Log compression ``log1p(LOG_GAIN * mel)``: large enough that quiet passages still produce flux.
LOG_GAIN = 100.0


class OnsetStrength:
    """One value of the onset detection function (ODF) per ``HOP`` samples.

    ``process(hop)`` takes exactly ``HOP`` new samples and updates ``odf`` (positive log-mel flux,
    summed over bands), ``bass`` (the same over the lowest bands), ``flux`` (linear-magnitude
    spectral flux) and ``rms``; ``log_mel`` [N_MEL] and ``mel_flux`` [N_MEL] are the hop's log-mel
    spectrum and its positive difference (views, rewritten every hop: the neural beat tracker's input).
    All buffers are allocated here once.

    Latency: the window ends at the newest sample; an onset shows in the ODF within about half a
    window, so ``latency_samples = WIN // 2`` (the tracker subtracts :data:`ODF_DELAY_S` from beat
    times to put them back on the audio timeline).
    """

    latency_samples = WIN // 2

    def __init__(self, sample_rate: int = ENGINE_SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self._pv = aubio.pvoc(WIN, HOP)
        self._fb = aubio.filterbank(N_MEL, WIN)
        self._fb.set_mel_coeffs(float(sample_rate), 30.0, min(8000.0, sample_rate / 2 - 1))
        self._log = np.zeros(N_MEL, dtype=np.float32)  # [N_MEL]
        self._prev_log = np.zeros(N_MEL, dtype=np.float32)
        self._diff = np.zeros(N_MEL, dtype=np.float32)
        self._mag_prev = np.zeros(WIN // 2 + 1, dtype=np.float32)  # [513]
        self._mag_diff = np.zeros(WIN // 2 + 1, dtype=np.float32)
        self.odf = 0.0
        self.bass = 0.0
        self.flux = 0.0
        self.rms = 0.0

    @property
    def log_mel(self) -> np.ndarray:
        """[N_MEL] float32 ``log1p(LOG_GAIN * mel)`` of the newest hop (a view, rewritten every hop)."""
        return self._prev_log

    @property
    def mel_flux(self) -> np.ndarray:
        """[N_MEL] float32 positive log-mel difference of the newest hop (a view, rewritten every hop)."""
        return self._diff

    def reset(self) -> None:
        self.__init__(self.sample_rate)  # type: ignore[misc]

    def process(self, hop: np.ndarray) -> float:
        """Consume ``HOP`` float32 samples; return the new ODF value."""
        spec = self._pv(hop)  # aubio reuses its cvec: no allocation
        mel = self._fb(spec)
        np.multiply(mel, LOG_GAIN, out=self._log)
        np.log1p(self._log, out=self._log)
        np.subtract(self._log, self._prev_log, out=self._diff)
        np.maximum(self._diff, 0.0, out=self._diff)
        self.odf = float(self._diff.sum())
        self.bass = float(self._diff[:N_BASS_BANDS].sum())
        self._prev_log[:] = self._log
        mag = spec.norm
        np.subtract(mag, self._mag_prev, out=self._mag_diff)
        np.maximum(self._mag_diff, 0.0, out=self._mag_diff)
        self.flux = float(self._mag_diff.sum())
        self._mag_prev[:] = mag
        self.rms = float(np.sqrt(np.dot(hop, hop) / len(hop)))
        return self.odf


class PeakPicker:
    """Causal onset peaks on an ODF: a local maximum one hop back above an adaptive threshold.

    Latency: one hop (the peak at hop ``n - 1`` is known once hop ``n`` is seen).
    """

    latency_hops = 1

    def __init__(self, window: int = 16, delta: float = 0.6, min_gap_hops: int = 4) -> None:
        self._hist = SampleRing(window + 2)
        self.window = window
        self.delta = delta
        self.min_gap = min_gap_hops
        self._since = min_gap_hops

    def process(self, value: float) -> float:
        """Feed one ODF value; return the strength of a peak one hop back, or 0.0."""
        self._hist.push(value)
        self._since += 1
        if self._hist.count < 3:
            return 0.0
        prev2, prev, cur = self._hist.ago(2), self._hist.ago(1), self._hist.ago(0)
        if not (prev > prev2 and prev >= cur):
            return 0.0
        recent = self._hist.latest(self.window + 2)
        threshold = float(np.mean(recent)) * 1.0 + self.delta
        if prev <= threshold or self._since <= self.min_gap:
            return 0.0
        self._since = 1
        return prev

"""Causal beat tracker: recency-weighted comb tempo estimate with a continuity prior, and a
cumulative-score phase predictor that commits each beat half a beat ahead."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.analysis.onset import HOP, WIN
from engine.analysis.ring import SampleRing
from engine.frames import ENGINE_SAMPLE_RATE

#: Delay of the ODF peak after the audio onset, measured on clicks (see docs/audio.md):
#: beat times are reported on the audio timeline by subtracting it.
ODF_DELAY_S = (WIN / 2 - HOP / 2) / ENGINE_SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class TrackerBeat:
    """A committed beat, in hops and seconds on the audio timeline."""

    hop: int  # ODF index at which the beat was committed
    time_s: float
    bpm: float
    confidence: float
    next_beat_s: float
    beat_in_bar: int
    beats_per_bar: int


class BeatTracker:
    """Tempo and beat phase from one ODF value per hop, causally.

    Tempo: an exponentially forgetting autocorrelation of the rectified, de-trended ODF feeds a
    comb (4 harmonics) over a log-spaced BPM grid; a forward filter with a narrow log-tempo
    transition plus a small jump probability keeps the tempo stable yet lets it follow a real change.

    Phase: a cumulative score ``C(n) = (1-a) o(n) + a max_d W(d) C(n-d)`` (a log-Gaussian
    transition around one period) keeps the best beat path; half a beat after each beat the score is
    projected forward to predict the next beat, which is committed when its hop arrives. So beats
    are reported on time (plus the ODF delay), never after a look-ahead.

    Latency: ``latency_samples = WIN // 2`` (the ODF's); beats are predicted, not detected late.
    """

    latency_samples = WIN // 2

    def __init__(
        self,
        sample_rate: int = ENGINE_SAMPLE_RATE,
        hop: int = HOP,
        min_bpm: float = 55.0,
        max_bpm: float = 215.0,
        n_tempi: int = 160,
        acf_time_s: float = 3.0,
        tempo_every: int = 4,
        prior_bpm: float = 115.0,
        prior_octaves: float = 0.9,
        alpha: float = 0.9,
        tightness: float = 5.0,
        warmup_s: float = 1.5,
    ) -> None:
        self.fps = sample_rate / hop  # ODF values per second
        self.hop_s = hop / sample_rate
        self.min_bpm, self.max_bpm = min_bpm, max_bpm
        self.tempo_every = tempo_every
        self.alpha = alpha
        self.tightness = tightness
        self.warmup = int(warmup_s * self.fps)
        self.max_lag = math.ceil(4 * 60.0 * self.fps / min_bpm) + 2  # 4 harmonics of the slowest tempo
        self.max_period = 60.0 * self.fps / min_bpm

        # --- ODF conditioning
        self._mean = 0.0
        self._mean_k = 1.0 - math.exp(-self.hop_s / 0.5)  # 0.5 s running mean
        self._odf = SampleRing(self.max_lag + 1)
        # --- tempo: recency-weighted autocorrelation over lags 1..max_lag
        self._acf_decay = math.exp(-self.hop_s / acf_time_s)
        self._acf = np.zeros(self.max_lag + 1, dtype=np.float64)  # [L+1], index = lag
        self._acf_tmp = np.zeros(self.max_lag, dtype=np.float64)
        self.bpm_grid = np.geomspace(min_bpm, max_bpm, n_tempi)  # [T]
        lags = 60.0 * self.fps / self.bpm_grid  # [T] period in hops
        harm = lags[:, None] * np.arange(1, 5)[None, :]  # [T, 4]
        self._h_i0 = np.floor(harm).astype(np.int64)  # [T, 4]
        self._h_frac = harm - self._h_i0  # [T, 4]
        self._h_w = np.array([1.0, 0.9, 0.8, 0.7])[None, :] / 3.4  # [1, 4]
        self._obs = np.zeros(n_tempi)  # [T]
        self._obs_tmp = np.zeros((n_tempi, 4))  # [T, 4]
        self._obs_tmp2 = np.zeros((n_tempi, 4))
        log_grid = np.log2(self.bpm_grid)
        self._prior = np.exp(-0.5 * ((log_grid - math.log2(prior_bpm)) / prior_octaves) ** 2)  # [T]
        step = log_grid[1] - log_grid[0]
        d = (log_grid[:, None] - log_grid[None, :]) / step  # [T, T] distance in grid steps
        trans = np.exp(-0.5 * (d / 1.5) ** 2)
        trans /= trans.sum(axis=0, keepdims=True)
        self._trans = 0.998 * trans + 0.002 / n_tempi  # [T, T] column-stochastic
        self._post = np.full(n_tempi, 1.0 / n_tempi)  # [T]
        self._pred = np.zeros(n_tempi)
        self.bpm = 0.0
        self.period = 0.0  # hops
        self.confidence = 0.0

        # --- phase: cumulative score over the last 2 periods of the slowest tempo
        self._cs_len = math.ceil(2 * self.max_period) + 2
        self._cs = SampleRing(self._cs_len + 1)
        self._d = np.arange(1, self._cs_len + 1, dtype=np.float64)  # [D] look-back distances
        self._w = np.zeros(self._cs_len)  # [D] transition weights for the current period
        self._wtmp = np.zeros(self._cs_len)
        self._fut = np.zeros(math.ceil(1.6 * self.max_period) + 2)  # projected future score

        self.n = -1  # index of the newest ODF value
        self.last_beat = -1  # hop of the last committed beat
        self.next_beat = -1.0  # hop of the predicted next beat (float)
        self._predict_at = -1
        self.beat_count = 0
        # --- downbeats: decaying accent per bar position for 3 and 4 beats per bar
        self._accent = {3: np.zeros(3), 4: np.zeros(4)}
        self.beats_per_bar = 4
        self._bass = SampleRing(8)

    # ------------------------------------------------------------------ tempo
    def _update_acf(self, o: float) -> None:
        hist = self._odf.latest(self.max_lag + 1)  # oldest..newest
        past = hist[-2::-1]  # lag 1..L, newest first: a view
        np.multiply(past, o, out=self._acf_tmp)
        self._acf *= self._acf_decay
        self._acf[1:] += self._acf_tmp
        self._acf[0] = self._acf[0] * 1.0 + o * o * (1.0 - self._acf_decay)

    def _update_tempo(self) -> None:
        acf = self._acf
        np.take(acf, self._h_i0, out=self._obs_tmp)
        np.take(acf, self._h_i0 + 1, out=self._obs_tmp2)
        self._obs_tmp2 -= self._obs_tmp
        self._obs_tmp2 *= self._h_frac
        self._obs_tmp += self._obs_tmp2  # linear interpolation at fractional lags
        self._obs_tmp *= self._h_w
        self._obs_tmp.sum(axis=1, out=self._obs)
        np.maximum(self._obs, 0.0, out=self._obs)
        peak = float(self._obs.max())
        if peak <= 0.0:
            return
        self._obs /= peak
        self._obs **= 4.0  # sharpen: the comb peaks are broad
        self._obs *= self._prior
        self._obs += 1e-3
        np.dot(self._trans, self._post, out=self._pred)
        np.multiply(self._pred, self._obs, out=self._post)
        self._post /= self._post.sum()
        i = int(np.argmax(self._post))
        # parabolic refinement on log posterior for sub-grid precision
        frac = 0.0
        if 0 < i < len(self._post) - 1:
            a, b, c = (math.log(self._post[j] + 1e-300) for j in (i - 1, i, i + 1))
            den = a - 2 * b + c
            if den < 0:
                frac = max(-0.5, min(0.5, 0.5 * (a - c) / den))
        log_step = math.log2(self.bpm_grid[1] / self.bpm_grid[0])
        self.bpm = float(2 ** (math.log2(self.bpm_grid[i]) + frac * log_step))
        self.period = 60.0 * self.fps / self.bpm
        lo, hi = max(0, i - 2), min(len(self._post), i + 3)
        self.confidence = float(self._post[lo:hi].sum())
        # transition weights for the cumulative score: log-Gaussian around one period
        np.divide(self._d, self.period, out=self._wtmp)
        np.log(self._wtmp, out=self._wtmp)
        self._wtmp *= self.tightness
        np.square(self._wtmp, out=self._wtmp)
        self._wtmp *= -0.5
        np.exp(self._wtmp, out=self._w)
        lo_d, hi_d = round(self.period / 2), round(2 * self.period)
        self._w[: max(lo_d - 1, 0)] = 0.0
        self._w[hi_d:] = 0.0

    # ------------------------------------------------------------------ phase
    def _score(self, o: float) -> float:
        if self.period <= 0:
            return o
        past = self._cs.latest(self._cs_len)[::-1]  # distance 1..D
        np.multiply(past, self._w, out=self._wtmp)
        return (1.0 - self.alpha) * o + self.alpha * float(self._wtmp.max())

    def _predict(self) -> None:
        """Project the cumulative score one and a half periods ahead (no new onsets) and pick the next beat."""
        period = self.period
        k_max = min(len(self._fut) - 1, math.ceil(1.5 * period))
        past = self._cs.latest(self._cs_len)  # oldest..newest
        fut = self._fut
        d_max = self._cs_len
        w = self._w
        expected = (self.last_beat + period) if self.last_beat >= 0 else None
        best, best_k = -1.0, 1
        sigma = period / 6.0
        for k in range(1, k_max + 1):
            # distances d >= k reach back into the past ring; d < k into the projected future
            n_past = d_max - k + 1
            seg = past[len(past) - n_past:][::-1]  # distance k..D from hop n+k
            v = float((seg * w[k - 1:k - 1 + n_past]).max()) if n_past > 0 else 0.0
            if k > 1:
                fseg = fut[k - 1:0:-1]  # distances 1..k-1 from hop n+k
                v = max(v, float((fseg * w[: k - 1]).max()))
            fut[k] = self.alpha * v
            target = self.n + k
            g = 1.0 if expected is None else math.exp(-0.5 * ((target - expected) / sigma) ** 2)
            if fut[k] * g > best:
                best, best_k = fut[k] * g, k
        self.next_beat = float(self.n + best_k)

    # ------------------------------------------------------------------ per hop
    def process(self, odf: float, bass: float = 0.0) -> TrackerBeat | None:
        """Feed one ODF value; return the beat committed at this hop, if any."""
        self.n += 1
        self._mean += self._mean_k * (odf - self._mean)
        o = max(odf - self._mean, 0.0)
        self._odf.push(o)
        self._bass.push(bass)
        self._update_acf(o)
        if self.n % self.tempo_every == 0 and self.n >= self.warmup // 2:
            self._update_tempo()
        self._cs.push(self._score(o))
        if self.n < self.warmup or self.period <= 0:
            return None
        if self._predict_at < 0 and self.next_beat < 0:
            self._predict_at = self.n  # bootstrap: first prediction as soon as tempo exists
        if self.n == self._predict_at:
            self._predict()
        if self.next_beat >= 0 and self.n >= self.next_beat:
            return self._commit()
        return None

    def _commit(self) -> TrackerBeat:
        self.last_beat = self.n
        self._predict_at = self.n + max(1, round(self.period / 2))
        self.next_beat = self.n + self.period  # provisional until the mid-beat prediction
        accent = sum(self._bass.ago(k) for k in range(3))
        for m, acc in self._accent.items():
            acc *= 0.9
            acc[self.beat_count % m] += accent
        contrast = {m: float(acc.max() - acc.mean()) / (float(acc.mean()) + 1e-9) for m, acc in self._accent.items()}
        self.beats_per_bar = 3 if contrast[3] > 1.3 * contrast[4] else 4
        acc = self._accent[self.beats_per_bar]
        beat_in_bar = (self.beat_count - int(np.argmax(acc))) % self.beats_per_bar
        self.beat_count += 1
        return TrackerBeat(
            hop=self.n,
            time_s=self.hop_time(self.n),
            bpm=self.bpm,
            confidence=self.confidence,
            next_beat_s=self.hop_time(self.next_beat),
            beat_in_bar=beat_in_bar,
            beats_per_bar=self.beats_per_bar,
        )

    def hop_time(self, hop: float) -> float:
        """Audio-timeline time (s) of the onset that peaks the ODF at ``hop``."""
        return (hop + 1) * self.hop_s - ODF_DELAY_S

    def next_beat_s(self) -> float:
        """Predicted time of the next beat (s), or -1 before the tracker has a tempo."""
        return self.hop_time(self.next_beat) if self.next_beat >= 0 else -1.0

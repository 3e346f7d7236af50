"""Causal beat tracker: a recency-weighted comb tempo estimate with a continuity prior, and a phase
comb that predicts each beat before it arrives."""

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

    Tempo: an exponentially forgetting autocorrelation of the rectified, de-trended ODF (2 s memory,
    plus a 0.75 s one so a change shows sooner) feeds a comb (4 harmonics) over a log-spaced BPM grid;
    a forward filter with a narrow log-tempo transition plus a small jump probability keeps the tempo
    stable yet lets it follow a real change.

    Phase: every hop (until a quarter period before the predicted beat) each candidate phase ``j``
    ("the last beat was j hops ago") is scored by the ODF summed at ``j, j + T, j + 2T, ...`` hops back
    (``phase_beats`` beats, decaying by ``phase_decay``); the score is weighted towards the phase that
    keeps the current prediction (a clearly better phase, over ``1 / phase_floor`` times, still wins).
    The next beat is the best phase plus one period; it is committed when its hop arrives, so beats
    are reported on time (minus the ODF delay), never after a look-ahead.

    Downbeats: a decaying accent (bass-band flux at each beat) per bar position for 3 and 4 beats per
    bar; the stronger contrast picks the meter, the loudest position the downbeat.

    Latency: ``latency_samples = WIN // 2`` (the ODF's); beats are predicted, not detected late.

    Args (defaults tuned on the project's beat set, see docs/audio.md):
        min_bpm, max_bpm, n_tempi: the log-spaced tempo grid.
        acf_time_s, fast_acf_time_s, fast_weight: memories of the two autocorrelations and the short one's weight.
        tempo_every: hops between tempo updates.
        prior_bpm, prior_octaves: log-normal tempo prior (centre, standard deviation in octaves).
        obs_power, harmonic_decay, jump_prob: comb sharpening, weight ratio of successive harmonics,
            probability per update of a tempo jump anywhere on the grid.
        phase_beats, phase_decay, phase_floor: beats the phase comb looks back, their decay, and the
            continuity weight's floor.
        warmup_s: no beats before this much audio.
        min_confidence: beats below this confidence are tracked but not reported.
    """

    latency_samples = WIN // 2

    def __init__(
        self,
        sample_rate: int = ENGINE_SAMPLE_RATE,
        hop: int = HOP,
        min_bpm: float = 55.0,
        max_bpm: float = 215.0,
        n_tempi: int = 160,
        acf_time_s: float = 2.0,
        fast_acf_time_s: float = 0.75,
        fast_weight: float = 1.0,
        tempo_every: int = 4,
        prior_bpm: float = 110.0,
        prior_octaves: float = 0.5,
        obs_power: float = 4.0,
        harmonic_decay: float = 0.9,
        jump_prob: float = 0.002,
        phase_beats: int = 6,
        phase_decay: float = 0.8,
        phase_floor: float = 0.5,
        warmup_s: float = 1.5,
        min_confidence: float = 0.25,
    ) -> None:
        self.fps = sample_rate / hop  # ODF values per second
        self.hop_s = hop / sample_rate
        self.min_bpm, self.max_bpm = min_bpm, max_bpm
        self.tempo_every = tempo_every
        self.min_confidence = min_confidence
        self.obs_power = obs_power
        self.warmup = int(warmup_s * self.fps)
        self.max_lag = math.ceil(4 * 60.0 * self.fps / min_bpm) + 2  # 4 harmonics of the slowest tempo
        self.max_period = 60.0 * self.fps / min_bpm

        # --- ODF conditioning
        self._mean = 0.0
        self._mean_k = 1.0 - math.exp(-self.hop_s / 0.5)  # 0.5 s running mean
        self._odf = SampleRing(self.max_lag + 1, np.float64)
        # --- tempo: recency-weighted autocorrelation over lags 1..max_lag
        self._acf_decay = math.exp(-self.hop_s / acf_time_s)
        self._acf = np.zeros(self.max_lag + 1, dtype=np.float64)  # [L+1], index = lag
        self._acf_tmp = np.zeros(self.max_lag, dtype=np.float64)
        self._acfn = np.zeros(self.max_lag + 1, dtype=np.float64)  # [L+1] bias-corrected
        self.fast_weight = fast_weight
        self._acf_fast_decay = math.exp(-self.hop_s / fast_acf_time_s)
        self._acf_fast = np.zeros(self.max_lag + 1, dtype=np.float64)
        self._acf_tmp2 = np.zeros(self.max_lag + 1, dtype=np.float64)
        self._acf_norm = np.zeros(self.max_lag + 1, dtype=np.float64)
        self._lags = np.arange(self.max_lag + 1, dtype=np.float64)
        self._log_decay = math.log(self._acf_decay)
        self.bpm_grid = np.geomspace(min_bpm, max_bpm, n_tempi)  # [T]
        lags = 60.0 * self.fps / self.bpm_grid  # [T] period in hops
        harm = lags[:, None] * np.arange(1, 5)[None, :]  # [T, 4]
        self._h_i0 = np.floor(harm).astype(np.int64)  # [T, 4]
        self._h_i1 = self._h_i0 + 1
        self._h_frac = harm - self._h_i0  # [T, 4]
        hw = harmonic_decay ** np.arange(4, dtype=np.float64)
        self._h_w = (hw / hw.sum())[None, :]  # [1, 4] comb weights of the 4 harmonics
        self._obs = np.zeros(n_tempi)  # [T]
        self._obs_tmp = np.zeros((n_tempi, 4))  # [T, 4]
        self._obs_tmp2 = np.zeros((n_tempi, 4))
        log_grid = np.log2(self.bpm_grid)
        self._prior = np.exp(-0.5 * ((log_grid - math.log2(prior_bpm)) / prior_octaves) ** 2)  # [T]
        step = log_grid[1] - log_grid[0]
        d = (log_grid[:, None] - log_grid[None, :]) / step  # [T, T] distance in grid steps
        trans = np.exp(-0.5 * (d / 1.5) ** 2)
        trans /= trans.sum(axis=0, keepdims=True)
        self._trans = (1.0 - jump_prob) * trans + jump_prob / n_tempi  # [T, T] column-stochastic
        self._post = np.full(n_tempi, 1.0 / n_tempi)  # [T]
        self._pred = np.zeros(n_tempi)
        self.bpm = 0.0
        self.period = 0.0  # hops
        self.confidence = 0.0

        # --- phase: comb over the last `phase_beats` candidate beat positions for each phase
        self.phase_beats = phase_beats
        self.phase_decay = phase_decay
        self.phase_floor = phase_floor
        self._jmax = math.ceil(self.max_period) + 2
        self._oring = SampleRing(self._jmax + phase_beats * (self._jmax + 1) + 4, np.float64)
        self._ph_i0 = np.zeros((self._jmax, phase_beats), dtype=np.int64)  # [J, K] ring offsets (newest = 0)
        self._ph_i1 = np.zeros((self._jmax, phase_beats), dtype=np.int64)  # [J, K] = i0 + 1
        self._ph_pos = np.zeros((self._jmax, phase_beats))  # [J, K] fractional offsets
        self._ph_frac = np.zeros((self._jmax, phase_beats))  # [J, K]
        self._ph_a = np.zeros((self._jmax, phase_beats))
        self._ph_b = np.zeros((self._jmax, phase_beats))
        self._ph_w = phase_decay ** np.arange(phase_beats, dtype=np.float64)  # [K]
        self._ph_score = np.zeros(self._jmax)  # [J] score of "a beat j hops ago"
        self._ph_j = np.arange(self._jmax, dtype=np.float64)  # [J]
        self._ph_g = np.zeros(self._jmax)
        self._n_phase = 0  # valid entries of the phase arrays (= ceil(period))
        self._k_idx = np.arange(phase_beats, dtype=np.float64)  # [K]
        self.phase_clarity = 0.0

        self.n = -1  # index of the newest ODF value
        self.last_beat = -1  # hop of the last committed beat
        self.next_beat = -1.0  # hop of the predicted next beat (float)
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
        if self.fast_weight > 0:
            self._acf_fast *= self._acf_fast_decay
            self._acf_fast[1:] += self._acf_tmp

    def _update_tempo(self) -> None:
        # unbiased: lag l has had only n - l + 1 (decayed) products so far; divide by their total weight
        norm = self._acf_norm
        np.subtract(self.n + 1.0, self._lags, out=norm)
        np.maximum(norm, 0.0, out=norm)
        norm *= self._log_decay
        np.exp(norm, out=norm)
        np.subtract(1.0, norm, out=norm)
        np.maximum(norm, 0.05, out=norm)
        acf = self._acfn
        np.divide(self._acf, norm, out=acf)
        if self.fast_weight > 0:
            # a short-memory ACF, scaled to the long one's weight, lets a tempo change show sooner
            np.multiply(self._acf_fast, self.fast_weight * (1.0 - self._acf_fast_decay) / (1.0 - self._acf_decay),
                        out=self._acf_tmp2)
            acf += self._acf_tmp2
        np.take(acf, self._h_i0, out=self._obs_tmp)
        np.take(acf, self._h_i1, out=self._obs_tmp2)
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
        self._obs **= self.obs_power  # sharpen: the comb peaks are broad
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
        # phase comb positions for this period: "a beat j hops ago" looks at j + k * period hops ago
        n_ph = min(self._jmax, math.ceil(self.period))
        pos = self._ph_pos[:n_ph]  # [J, K] = j + k * period
        np.multiply(self._k_idx[None, :], self.period, out=pos)
        pos += self._ph_j[:n_ph, None]
        np.floor(pos, out=self._ph_frac[:n_ph])
        self._ph_i0[:n_ph] = self._ph_frac[:n_ph]
        np.add(self._ph_i0[:n_ph], 1, out=self._ph_i1[:n_ph])
        np.subtract(pos, self._ph_i0[:n_ph], out=self._ph_frac[:n_ph])
        self._n_phase = n_ph

    # ------------------------------------------------------------------ phase
    def _predict(self) -> None:
        """Score every phase of the current period on the recent ODF and predict the next beat."""
        n_ph = self._n_phase
        if n_ph < 2:
            return
        rev = self._oring.latest(self._oring.capacity)[::-1]  # newest first: rev[d] = o(n - d)
        i0 = self._ph_i0[:n_ph]
        a, b = self._ph_a[:n_ph], self._ph_b[:n_ph]
        np.take(rev, i0, out=a)
        np.take(rev, self._ph_i1[:n_ph], out=b)
        b -= a
        b *= self._ph_frac[:n_ph]
        a += b  # interpolated ODF at each candidate beat position: [J, K]
        score = self._ph_score[:n_ph]
        np.dot(a, self._ph_w, out=score)
        peak = float(score.max())
        if peak <= 0.0:
            return
        mean = float(score.mean())
        self.phase_clarity = (peak - mean) / peak
        g = self._ph_g[:n_ph]
        if self.next_beat >= 0:
            # continuity: prefer the phase that keeps the current prediction; a clearly better phase still wins
            np.subtract(self.n + self.period, self._ph_j[:n_ph], out=g)  # predicted next beat per phase
            g -= self.next_beat
            g /= self.period
            g += 0.5
            np.mod(g, 1.0, out=g)
            g -= 0.5  # wrapped distance in periods
            g /= 0.1
            np.square(g, out=g)
            g *= -0.5
            np.exp(g, out=g)
            g *= 1.0 - self.phase_floor
            g += self.phase_floor
            score *= g
        j = int(np.argmax(score))
        nxt = self.n - j + self.period
        if self.last_beat >= 0:
            nxt = max(nxt, self.last_beat + 0.55 * self.period)
        self.next_beat = float(nxt)

    # ------------------------------------------------------------------ per hop
    def process(self, odf: float, bass: float = 0.0) -> TrackerBeat | None:
        """Feed one ODF value; return the beat committed at this hop, if any."""
        self.n += 1
        self._mean += self._mean_k * (odf - self._mean)
        o = max(odf - self._mean, 0.0)
        self._odf.push(o)
        self._oring.push(o)
        self._bass.push(bass)
        self._update_acf(o)
        if self.n % self.tempo_every == 0 and self.n >= self.warmup // 2:
            self._update_tempo()
        if self.n < self.warmup or self.period <= 0:
            return None
        # re-estimate the phase every hop until the last quarter period before the predicted beat
        if self.next_beat < 0 or self.n < self.next_beat - 0.25 * self.period:
            self._predict()
        if self.next_beat >= 0 and self.n >= round(self.next_beat):
            beat = self._commit()
            # below min_confidence (noise, no pulse) the beat is tracked but not reported
            return beat if beat.confidence >= self.min_confidence else None
        return None

    def _commit(self) -> TrackerBeat:
        self.last_beat = self.n
        self.next_beat = self.n + self.period  # provisional until the next phase estimate
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
            confidence=self.belief,
            next_beat_s=self.hop_time(self.next_beat),
            beat_in_bar=beat_in_bar,
            beats_per_bar=self.beats_per_bar,
        )

    @property
    def belief(self) -> float:
        """Overall confidence 0..1: tempo posterior mass near its peak x how clearly one phase stands out.

        Phase clarity is ``(peak - mean) / peak`` of the phase scores: about 0.75 for noise, 0.85-1 for
        music, so it is mapped from [0.6, 0.9] to [0, 1].
        """
        clarity = min(1.0, max(0.0, (self.phase_clarity - 0.6) / 0.3))
        return self.confidence * clarity

    def hop_time(self, hop: float) -> float:
        """Audio-timeline time (s) of the onset that peaks the ODF at ``hop``."""
        return (hop + 1) * self.hop_s - ODF_DELAY_S

    def next_beat_s(self) -> float:
        """Predicted time of the next beat (s), or -1 before the tracker has a tempo."""
        return self.hop_time(self.next_beat) if self.next_beat >= 0 else -1.0

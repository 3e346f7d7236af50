"""Causal tempo and beat-phase inference on the beat network's activations: an online HMM over tempo x phase.

The hidden state is (beat period ``P`` in hops, position ``phi`` in ``0..P-1`` hops since the last beat), the
"bar pointer" state space at beat level: one block of ``P`` phase states per integer period, 55-215 BPM at
86.1 hops/s (71 tempi, 4189 states). Per hop, the forward filter:

1. **moves** every state one hop on (``phi + 1``); a state at ``phi = P - 1`` wraps to a beat (``phi = 0``)
   and may change tempo there: ``A[P, P'] ~ exp(-lambda |P'/P - 1|)`` (smooth tempo changes, ramps) mixed with
   a small probability of a jump to any tempo (drawn from the tempo prior), which is what lets the filter
   re-lock within two beats of a tempo jump;
2. **restarts** a small fraction of the mass as "a beat now" at every tempo (prior-weighted), so a phase that
   the music contradicts is replaced as soon as the beats it sees fit another one;
3. **weighs** by the activation ``a``: a state on the beat (``phi`` within a hop of 0, weighted 1 at 0 and
   ``edge_weight`` one hop either side) explains ``a``, every other state ``(1 - a) / (obs_lambda - 1)``
   (the observation model of Krebs, Böck & Widmer 2015); only the ~3 beat states per tempo are touched.

Output, as :class:`engine.analysis.tracker.BeatTracker` gives it (so the analyzer drives either): the
predicted next beat (sub-hop: the posterior mean phase around the most probable state, and the posterior
mean period of the tempi next to it), committed as a beat when its hop arrives; tempo; a confidence (the
posterior mass near the best tempo times how concentrated its phase is); the bar position from the
network's downbeat activation, accumulated per bar position for 3 and 4 beats per bar.

Cost: about a dozen numpy calls on preallocated arrays per hop; nothing is allocated per hop.
Latency: none beyond the activation's (beats are predicted, then committed on their hop).
"""

from __future__ import annotations

import math

import numpy as np

from engine.analysis.onset import HOP
from engine.analysis.ring import SampleRing
from engine.analysis.tracker import ODF_DELAY_S, TrackerBeat
from engine.frames import ENGINE_SAMPLE_RATE


class BeatHMM:
    """Online forward filter over (beat period, phase) driven by a beat activation in [0, 1] per hop.

    Args:
        min_bpm, max_bpm: the tempo range (integer periods in hops between them).
        prior_bpm, prior_octaves: log-normal tempo prior (start distribution, target of jumps and restarts).
        tempo_lambda: sharpness of the tempo change at a beat (``exp(-lambda |P'/P - 1|)``).
        jump_prob: probability, at each beat, of a jump to any tempo (prior-weighted).
        restart_prob: mass moved per hop to "a beat now" at every tempo (prior-weighted).
        tempo_weight: exponent of the tempo prior paid at every beat (0: the prior only starts the filter).
        onset_weight: weight of the onset function (de-trended, divided by its decaying peak) mixed into the
            activation: ``(1 - w) * activation + w * onset``.
        obs_lambda: off-beat states explain ``(1 - a) / (obs_lambda - 1)``; larger: sharper beats.
        edge_weight: weight of the beat observation one hop either side of the beat state.
        min_confidence: beats below this confidence are tracked but not reported.
        warmup_s: no beat before this much audio.
    """

    latency_samples = 0

    def __init__(
        self,
        sample_rate: int = ENGINE_SAMPLE_RATE,
        hop: int = HOP,
        min_bpm: float = 55.0,
        max_bpm: float = 215.0,
        prior_bpm: float = 115.0,
        prior_octaves: float = 0.6,
        tempo_lambda: float = 60.0,
        jump_prob: float = 0.02,
        restart_prob: float = 1e-4,
        tempo_weight: float = 1.0,
        onset_weight: float = 0.5,
        obs_lambda: float = 3.5,
        edge_weight: float = 0.5,
        min_confidence: float = 0.1,
        warmup_s: float = 1.5,
    ) -> None:
        self.fps = sample_rate / hop
        self.hop_s = hop / sample_rate
        self.min_confidence = min_confidence
        self.warmup = int(warmup_s * self.fps)
        self.obs_lambda = obs_lambda
        self.onset_weight = onset_weight
        self._o_mean = 0.0
        self._o_peak = 1e-9
        self._o_mean_k = 1.0 - math.exp(-self.hop_s / 0.5)  # 0.5 s running mean
        self._o_peak_decay = math.exp(-self.hop_s / 3.0)  # peak follower, 3 s
        p_lo = math.ceil(60.0 * self.fps / max_bpm)
        p_hi = math.floor(60.0 * self.fps / min_bpm)
        self.periods = np.arange(p_lo, p_hi + 1, dtype=np.int64)  # [T] period of each tempo block, hops
        nt = len(self.periods)
        self.starts = np.concatenate([[0], np.cumsum(self.periods)[:-1]]).astype(np.int64)  # [T] phi = 0
        self.ends = self.starts + self.periods - 1  # [T] phi = P - 1
        n = int(self.periods.sum())
        self.n_states = n
        blk = np.repeat(np.arange(nt), self.periods)  # [S] tempo block of each state
        phi = np.arange(n) - self.starts[blk]  # [S] hops since the beat
        self._block = blk
        self._frac = (phi / self.periods[blk]).astype(np.float64)  # [S] phase 0..1
        self._period_f = self.periods[blk].astype(np.float64)  # [S]
        # --- tempo prior and transition at the beat
        bpm = 60.0 * self.fps / self.periods
        self.bpm_grid = bpm
        prior = np.exp(-0.5 * ((np.log2(bpm) - math.log2(prior_bpm)) / prior_octaves) ** 2)
        self._prior = prior / prior.sum()  # [T]
        ratio = self.periods[None, :] / self.periods[:, None]  # [T, T] P'/P, rows = from
        a = np.exp(-tempo_lambda * np.abs(ratio - 1.0))
        a /= a.sum(axis=1, keepdims=True)
        trans = (1.0 - jump_prob) * a + jump_prob * self._prior[None, :]  # [from, to], rows sum to 1
        # every beat of a tempo also pays the prior (max 1, not renormalised): unlikely octaves lose mass
        trans *= (prior / prior.max())[None, :] ** tempo_weight
        self._trans_t = np.ascontiguousarray(trans.T)  # [to, from]
        self.restart_prob = restart_prob
        self._restart = restart_prob * self._prior  # [T]
        # --- observation: the beat states (phi = 0, 1 and P - 1) and their weights
        idx, w = [], []
        for s, p in zip(self.starts, self.periods, strict=True):
            idx += [s, s + 1, s + p - 1]
            w += [1.0, edge_weight, edge_weight]
        self._beat_idx = np.asarray(idx, np.int64)  # [3T]
        self._beat_w = np.asarray(w, np.float64)  # [3T]
        self._beat_buf = np.zeros(len(idx))
        self._ratio = np.zeros(len(idx))
        # --- posterior (double-buffered) and work buffers
        self._post = np.zeros(n)
        self._post[:] = (self._prior / self.periods)[blk]  # start: the prior's tempi, every phase alike
        self._next = np.zeros(n)
        self._ends_buf = np.zeros(nt)
        self._starts_buf = np.zeros(nt)
        self._cum = np.zeros(n)
        self._wbuf = np.zeros(n)
        self._dbuf = np.zeros(n)
        self._tempo_mass = np.zeros(nt)
        # --- public state (BeatTracker's names)
        self.n = -1
        self.bpm = 0.0
        self.period = 0.0  # hops
        self.next_beat = -1.0  # hop (float) of the predicted next beat
        self.last_beat = -1
        self.confidence = 0.0
        self.beat_count = 0
        self._accent = {3: np.zeros(3), 4: np.zeros(4)}
        self.beats_per_bar = 4
        self._down = SampleRing(8)
        self._act = SampleRing(8)
        self.evidence = 0.0  # decaying mean of the activation at the committed beats

    # ------------------------------------------------------------------ filter
    def _step(self, act: float) -> None:
        old, new = self._post, self._next
        new[1:] = old[:-1]  # every state one hop on (block starts are overwritten below)
        np.take(old, self.ends, out=self._ends_buf)
        np.dot(self._trans_t, self._ends_buf, out=self._starts_buf)  # beats: tempo may change
        self._starts_buf += self._restart  # "a beat now" at every tempo (the total is renormalised below)
        np.put(new, self.starts, self._starts_buf)
        a = min(max(act, 1e-4), 1.0 - 1e-4)
        b = (1.0 - a) / (self.obs_lambda - 1.0)
        # off-beat states explain b; dividing every state by b leaves only the beat states to weigh
        np.multiply(self._beat_w, a / b - 1.0, out=self._ratio)
        self._ratio += 1.0
        np.take(new, self._beat_idx, out=self._beat_buf)
        self._beat_buf *= self._ratio
        np.put(new, self._beat_idx, self._beat_buf)
        new /= new.sum()
        self._post, self._next = new, old

    def _estimate(self) -> None:
        """Tempo, sub-hop phase and confidence around the most probable state."""
        post = self._post
        s = int(np.argmax(post))
        k = int(self._block[s])
        lo, hi = max(0, k - 2), min(len(self.periods) - 1, k + 2)
        sl = slice(int(self.starts[lo]), int(self.ends[hi]) + 1)
        p = post[sl]
        # phase offset of each nearby state from the best one, wrapped into [-0.5, 0.5)
        d = self._dbuf[: p.size]
        np.subtract(self._frac[sl], self._frac[s], out=d)
        d += 0.5
        np.mod(d, 1.0, out=d)
        d -= 0.5
        w = self._wbuf[: p.size]
        np.abs(d, out=w)
        np.less(w, 0.15, out=w, casting="unsafe")  # 1 where the phase is near the best one
        w *= p
        mass = float(w.sum())
        if mass <= 0.0:
            return
        frac = float(self._frac[s]) + float(np.dot(w, d)) / mass
        period = float(np.dot(w, self._period_f[sl])) / mass
        self.period = period
        self.bpm = 60.0 * self.fps / period
        # confidence: how much of the whole posterior sits at this tempo and phase
        self.confidence = mass
        past = frac * period  # hops since the beat the posterior puts last
        uncommitted = self.last_beat < 0 or self.n - self.last_beat > 0.55 * period
        # a beat up to 2 hops ago that was not committed yet (its prediction rounded to the next hop) is
        # committed now, with its estimated time; otherwise the next beat is ahead
        nxt = self.n - past if past < 2.0 and uncommitted else self.n + (1.0 - frac) * period
        if self.last_beat >= 0 and nxt < self.last_beat + 0.55 * period:
            nxt += period  # still the beat just committed: the next one
        self.next_beat = nxt

    # ------------------------------------------------------------------ per hop
    def process(self, act: float, down: float = 0.0, onset: float = 0.0) -> TrackerBeat | None:
        """Feed one hop: beat and downbeat activations and the onset function's value; return the beat
        committed at this hop, if any."""
        self.n += 1
        self._down.push(down)
        if self.onset_weight > 0.0:
            self._o_mean += self._o_mean_k * (onset - self._o_mean)
            o = max(onset - self._o_mean, 0.0)
            self._o_peak = max(o, self._o_peak * self._o_peak_decay)
            act = (1.0 - self.onset_weight) * act + self.onset_weight * min(1.0, o / (self._o_peak + 1e-9))
        self._act.push(act)
        self._step(act)
        if self.n < self.warmup:
            return None
        self._estimate()
        if self.next_beat >= 0 and self.n >= round(self.next_beat):
            beat = self._commit()
            return beat if beat.confidence >= self.min_confidence else None
        return None

    def _commit(self) -> TrackerBeat:
        t = self.next_beat
        self.last_beat = self.n
        self.next_beat = t + self.period  # provisional until the next hop's estimate
        strength = max(self._act.ago(k) for k in range(3))
        self.evidence += 0.3 * (strength - self.evidence)
        accent = sum(self._down.ago(k) for k in range(3))
        for m, acc in self._accent.items():
            acc *= 0.9
            acc[self.beat_count % m] += accent
        contrast = {m: float(acc.max() - acc.mean()) / (float(acc.mean()) + 1e-9) for m, acc in self._accent.items()}
        self.beats_per_bar = 3 if contrast[3] > 1.3 * contrast[4] else 4
        acc = self._accent[self.beats_per_bar]
        beat_in_bar = (self.beat_count - int(np.argmax(acc))) % self.beats_per_bar
        self.beat_count += 1
        return TrackerBeat(hop=self.n, time_s=self.hop_time(t), bpm=self.bpm, confidence=self.belief,
                           next_beat_s=self.hop_time(self.next_beat), beat_in_bar=beat_in_bar,
                           beats_per_bar=self.beats_per_bar)

    @property
    def belief(self) -> float:
        """Confidence 0..1: posterior mass at the best tempo (+-2 periods) and within 0.15 of its phase, times
        the evidence (the activation at the recent beats, mapped from [0.15, 0.45] to [0, 1]): in silence the
        posterior still concentrates somewhere, but nothing is heard on its beats."""
        return self.confidence * min(1.0, max(0.0, (self.evidence - 0.15) / 0.3))

    def hop_time(self, hop: float) -> float:
        """Audio-timeline time (s) of the onset whose activation peaks at ``hop``."""
        return (hop + 1) * self.hop_s - ODF_DELAY_S

    def next_beat_s(self) -> float:
        """Predicted time of the next beat (s), or -1 before the filter has a tempo."""
        return self.hop_time(self.next_beat) if self.next_beat >= 0 else -1.0

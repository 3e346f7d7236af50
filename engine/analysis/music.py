"""The MusicAnalyzer stage: AudioBlocks in; FeatureFrames (30 fps), BeatEvents and OnsetEvents out."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import numpy as np

from engine.analysis.beat_hmm import BeatHMM
from engine.analysis.beat_net import BeatActivation, BeatNet
from engine.analysis.features import (
    BEAT,
    CHROMA,
    FLUX_SCALE,
    MFCC,
    MUSIC_FEATURE_DIM,
    ONSET_ENV,
    ONSET_SCALE,
    PEAK,
    PHASE_COS,
    PHASE_SIN,
    RMS,
    SPECTRAL_FLUX,
    TEMPO,
    TEMPO_SCALE,
    MusicFrameFeatures,
)
from engine.analysis.onset import HOP, OnsetStrength, PeakPicker
from engine.analysis.tracker import BeatTracker
from engine.frames import (
    ENGINE_SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    AudioBlock,
    BeatEvent,
    FeatureFrame,
    Frame,
    OnsetEvent,
)
from engine.pipeline import Stage

#: Beat trackers. "comb", "hybrid" and "neural" share the causal tempo/phase inference of :class:`BeatTracker`
#: and differ in what drives it. "comb": the hand-made onset function for beats, its bass band for downbeats
#: (the earlier default). "hybrid": the onset function for beats (so beats, phase and tempo are exactly the
#: comb's) and the beat network's downbeat activation for the bar position. "neural": the network's beat
#: activation for beats and its downbeat activation for downbeats. "hmm" (the default): the beat output
#: (BeatEvents, the pulse fields of every FeatureFrame: VJ beat pulses, Ableton Link, ``analyze``) comes from
#: an online HMM over tempo x phase on the network's activations (:class:`BeatHMM`), while the 40 dance
#: features still come from the hybrid tracker, bit for bit (the dance models are trained on them).
TRACKERS = ("hmm", "hybrid", "comb", "neural")
DEFAULT_TRACKER = "hmm"

#: What drives the features' tracker (:class:`BeatTracker`) for each kind: "odf" or "activation".
_FEATURE_INPUT = {"hmm": "odf", "hybrid": "odf", "comb": "odf", "neural": "activation"}


@functools.cache
def shipped_beat_net() -> BeatNet:
    """The shipped beat network, loaded once per process (immutable, shared by every analyzer)."""
    return BeatNet.load()


def make_tracker(kind: str, sample_rate: int = ENGINE_SAMPLE_RATE) -> tuple[BeatTracker, BeatActivation | None]:
    """The features' tempo/phase tracker for ``kind`` and, unless "comb", the network state that feeds it."""
    if kind not in TRACKERS:
        raise ValueError(f"unknown beat tracker {kind!r}; choose one of {', '.join(TRACKERS)}")
    return BeatTracker(sample_rate), (None if kind == "comb" else BeatActivation(shipped_beat_net()))


#: Longest gap in the input (dropped blocks) filled with silence to keep the timeline; longer gaps
#: are filled only up to this and the rest of the timeline shift is counted in ``gap_samples``.
MAX_GAP_FILL = ENGINE_SAMPLE_RATE * 2


class HopFramer:
    """Splits blocks of any size into fixed hops and frames on one sample timeline.

    ``feed(x)`` yields ``("hop", view)`` each time a ``hop``-sample hop completes and ``("frame", view)``
    each time a ``frame``-sample frame completes, in timeline order (a hop that ends on the same
    sample as a frame comes first). The views are valid until the next item. Allocates nothing.
    """

    def __init__(self, hop: int, frame: int) -> None:
        self.hop, self.frame = hop, frame
        self._hop_buf = np.zeros(hop, dtype=np.float32)
        self._frame_buf = np.zeros(frame, dtype=np.float32)
        self._hop_fill = 0
        self._frame_fill = 0
        self.total = 0  # samples consumed

    def feed(self, x: np.ndarray) -> Iterable[tuple[str, np.ndarray]]:
        j, n = 0, len(x)
        while j < n:
            m = min(n - j, self.hop - self._hop_fill, self.frame - self._frame_fill)
            self._hop_buf[self._hop_fill:self._hop_fill + m] = x[j:j + m]
            self._frame_buf[self._frame_fill:self._frame_fill + m] = x[j:j + m]
            self._hop_fill += m
            self._frame_fill += m
            self.total += m
            j += m
            if self._hop_fill == self.hop:
                self._hop_fill = 0
                yield "hop", self._hop_buf
            if self._frame_fill == self.frame:
                self._frame_fill = 0
                yield "frame", self._frame_buf


class MusicAnalyzer(Stage):
    """Causal hop-by-hop music analysis: onset strength, beat tracking, onsets and 30 fps features.

    Input: :class:`AudioBlock` (mono float32 at ``ENGINE_SAMPLE_RATE``, any block size; other frames
    pass through). Output, in timeline order: :class:`OnsetEvent` (an onset peak), :class:`BeatEvent`
    (a committed beat), and one :class:`FeatureFrame` per 735 samples: frame ``i`` is emitted as soon
    as sample ``(i + 1) * 735`` has arrived, from the audio up to that sample only. Output depends on
    the sample stream alone, never on how it was cut into blocks.

    ``kind`` picks the beat tracker (:data:`TRACKERS`; default ``hmm``: BeatEvents and the frames' pulse
    fields from :class:`BeatHMM` on the beat network, the features from the hybrid tracker); ``tracker``
    replaces the features' tempo/phase stage (tests, tuning).

    Times (``time_s``, ``next_beat_s``) are seconds on the stream's audio timeline, whose zero is the
    first sample this analyzer saw (or ``origin_sample``).

    Latency: ``latency_samples = 0`` for FeatureFrames (emitted at their last sample; the spectral
    windows end there). Onsets are reported one hop after their ODF peak, beats when their predicted
    hop arrives; both carry ``time_s`` corrected for the ODF delay (``tracker.ODF_DELAY_S``).
    """

    latency_samples = 0

    def __init__(self, sample_rate: int = ENGINE_SAMPLE_RATE, tracker: BeatTracker | None = None,
                 kind: str = DEFAULT_TRACKER) -> None:
        if sample_rate != ENGINE_SAMPLE_RATE:
            raise ValueError(f"MusicAnalyzer runs at {ENGINE_SAMPLE_RATE} Hz; resample the source (got {sample_rate})")
        self.sample_rate = sample_rate
        self.onset = OnsetStrength(sample_rate)
        self.kind = kind
        self.tracker, self.activation = make_tracker(kind, sample_rate)
        if tracker is not None:
            self.tracker = tracker
        # the beat output: its own filter ("hmm") or the features' tracker itself
        self.beat_tracker: BeatTracker | BeatHMM = BeatHMM(sample_rate) if kind == "hmm" else self.tracker
        self.peaks = PeakPicker()
        self.spectral = MusicFrameFeatures(sample_rate)
        self.framer = HopFramer(HOP, SAMPLES_PER_FRAME)
        self.frame_index = 0
        self.origin: int | None = None  # source sample index of our timeline's zero
        self.gap_samples = 0
        self.bad_samples = 0  # non-finite input values replaced by 0
        self._clean = np.zeros(4096, dtype=np.float32)
        self._zeros = np.zeros(4096, dtype=np.float32)
        # per-frame accumulators over the frame's hops
        self._odf_sum = 0.0
        self._flux_sum = 0.0
        self._hops = 0
        self._beat = False
        self._beat_s = -1.0
        self._peak = False

    def process(self, frame: Frame) -> Iterable[Frame]:
        if not isinstance(frame, AudioBlock):
            return (frame,)
        if frame.sample_rate != self.sample_rate:
            raise ValueError(
                f"MusicAnalyzer got a {frame.sample_rate} Hz block; sources must resample to {self.sample_rate} Hz"
            )
        out: list[Frame] = []
        x = frame.samples
        if x.ndim != 1:
            x = x.mean(axis=1) if x.ndim == 2 else x.reshape(-1)
        if self.origin is None:
            self.origin = frame.start_index
        expected = self.origin + self.framer.total + self.gap_samples
        gap = frame.start_index - expected
        if gap > 0:  # the source dropped audio: keep the timeline with silence (bounded)
            fill = min(gap, MAX_GAP_FILL)
            self.gap_samples += gap - fill
            while fill > 0:
                k = min(fill, len(self._zeros))
                self._run(self._zeros[:k], frame.capture_ns, out)
                fill -= k
        for start in range(0, len(x), len(self._clean)):
            chunk = x[start:start + len(self._clean)]
            buf = self._clean[: len(chunk)]
            np.copyto(buf, chunk, casting="unsafe")
            if not np.isfinite(buf).all():
                bad = ~np.isfinite(buf)
                self.bad_samples += int(bad.sum())
                buf[bad] = 0.0
            self._run(buf, frame.capture_ns, out)
        return out

    def _run(self, x: np.ndarray, capture_ns: int, out: list[Frame]) -> None:
        for kind, data in self.framer.feed(x):
            if kind == "hop":
                self._hop(data, capture_ns, out)
            else:
                out.append(self._frame(data, capture_ns))

    def _time0(self) -> float:
        # the tracker counts only processed samples; unfilled gap samples shift its clock
        return ((self.origin or 0) + self.gap_samples) / self.sample_rate

    def _hop(self, hop: np.ndarray, capture_ns: int, out: list[Frame]) -> None:
        odf = self.onset.process(hop)
        end = (self.origin or 0) + self.framer.total + self.gap_samples
        self._odf_sum += odf
        self._flux_sum += self.onset.flux
        self._hops += 1
        strength = self.peaks.process(odf)
        if strength > 0.0:
            self._peak = True
            # the peak is one hop back: the hop before this one (the tracker has not counted this hop yet)
            t = self._time0() + self.tracker.hop_time(self.tracker.n)
            out.append(OnsetEvent(end, capture_ns, time_s=max(0.0, t), strength=strength))
        t0 = self._time0()
        if self.activation is None:
            beat = self.tracker.process(odf, self.onset.bass)
            out_beat = beat
        else:
            act, down = self.activation.process(self.onset.log_mel, self.onset.mel_flux)
            beat = self.tracker.process(act if _FEATURE_INPUT[self.kind] == "activation" else odf, down)
            if isinstance(self.beat_tracker, BeatHMM):
                out_beat = self.beat_tracker.process(act, down, odf)
            else:
                out_beat = beat
        if beat is not None:
            self._beat = True
            self._beat_s = t0 + beat.time_s
        if out_beat is not None:
            period = 60.0 / out_beat.bpm if out_beat.bpm > 0 else 0.0
            phase = 0.0 if period <= 0 else ((end / self.sample_rate - t0 - out_beat.time_s) / period) % 1.0
            out.append(
                BeatEvent(
                    end,
                    capture_ns,
                    time_s=t0 + out_beat.time_s,
                    bpm=out_beat.bpm,
                    confidence=out_beat.confidence,
                    phase=phase,
                    next_beat_s=t0 + out_beat.next_beat_s,
                    beat_in_bar=out_beat.beat_in_bar,
                    beats_per_bar=out_beat.beats_per_bar,
                )
            )

    def _frame(self, samples: np.ndarray, capture_ns: int) -> FeatureFrame:
        sp = self.spectral
        sp.process(samples)
        f = np.zeros(MUSIC_FEATURE_DIM, dtype=np.float32)  # owned by the message
        hops = max(self._hops, 1)
        f[ONSET_ENV] = min(4.0, self._odf_sum / hops / ONSET_SCALE)
        f[MFCC] = sp.mfcc
        f[CHROMA] = sp.chroma
        f[RMS] = sp.rms
        f[SPECTRAL_FLUX] = min(4.0, self._flux_sum / hops / FLUX_SCALE)
        tr = self.tracker
        bpm = tr.bpm
        period_s = tr.period * tr.hop_s if tr.period > 0 else 0.0
        next_s = tr.next_beat_s()
        end = (self.origin or 0) + self.framer.total + self.gap_samples
        t0 = self._time0()
        if bpm > 0 and next_s >= 0 and period_s > 0:
            phase = ((end / self.sample_rate - t0 - next_s) / period_s) % 1.0
            f[PHASE_SIN] = math.sin(2 * math.pi * phase)
            f[PHASE_COS] = math.cos(2 * math.pi * phase)
            next_s += t0
        f[TEMPO] = bpm / TEMPO_SCALE
        f[BEAT] = 1.0 if self._beat else 0.0
        f[PEAK] = 1.0 if self._peak else 0.0
        beat_s = self._beat_s
        self._odf_sum = self._flux_sum = 0.0
        self._hops = 0
        self._beat = self._peak = False
        self._beat_s = -1.0
        bt = self.beat_tracker
        p_next = bt.next_beat_s()
        p_period = bt.period * bt.hop_s if bt.period > 0 else 0.0
        p_conf = bt.belief
        ff = FeatureFrame(
            end,
            capture_ns,
            frame_index=self.frame_index,
            features=f,
            bpm=bpm,
            period_s=period_s,
            next_beat_s=next_s,
            confidence=tr.belief,
            beat_s=beat_s,
            pulse_next_s=p_next + t0 if p_next >= 0 and p_period > 0 else -1.0,
            pulse_period_s=p_period,
            pulse_confidence=p_conf,
            pulse_active=p_next >= 0 and p_period > 0 and p_conf >= bt.min_confidence,
        )
        self.frame_index += 1
        return ff

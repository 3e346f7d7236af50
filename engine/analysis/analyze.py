"""Whole-signal analysis through the streaming MusicAnalyzer: what training and `groovecast analyze` use."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.analysis.features import MUSIC_FEATURE_DIM
from engine.analysis.music import DEFAULT_TRACKER, MusicAnalyzer
from engine.audio.resample import resample
from engine.frames import ENGINE_SAMPLE_RATE, AudioBlock, BeatEvent, FeatureFrame, OnsetEvent


@dataclass
class MusicAnalysis:
    """Everything the streaming analyzer produced for one signal, frame by frame (30 fps).

    ``bpm`` is the overall tempo (median of the committed beats' BPM over the second half of the
    signal, or the last estimate); the per-frame tracker belief is in ``frame_bpm`` etc.
    """

    features: np.ndarray  # [N, MUSIC_FEATURE_DIM] float32
    frame_bpm: np.ndarray  # [N] float32, tracker BPM at each frame (0 before a tempo exists)
    period_s: np.ndarray  # [N] float32
    next_beat_s: np.ndarray  # [N] float64, predicted next beat (-1 before a tempo exists)
    confidence: np.ndarray  # [N] float32
    beats: list[float] = field(default_factory=list)  # seconds
    downbeats: list[float] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)
    beat_bpm: list[float] = field(default_factory=list)  # tracker BPM at each beat
    bpm: float = 0.0
    duration_s: float = 0.0
    envelope: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [N] onset envelope
    # beats of the features' tracker (the beat flags of ``features``; the comb's with the default tracker,
    # whose ``beats`` come from the beat filter): what a dance made from these features is locked to
    dance_beats: list[float] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[0])


#: What an offline dance render reads from an analysis: (features, period_s, next_beat_s, beats).
DanceAnalysis = tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]


def dance_analysis(samples: np.ndarray, sr: int, given: DanceAnalysis | None = None) -> DanceAnalysis:
    """The analysis an offline render steps through: ``given`` if passed (precomputed), else the streaming
    analysis of ``samples`` (:func:`analyze_signal`, exactly as live input would flow)."""
    if given is not None:
        return given
    a = analyze_signal(samples, sr)
    return a.features, a.period_s, a.next_beat_s, list(a.dance_beats)


def analyze_signal(samples: np.ndarray, sr: int, block_size: int = 512, tracker: str = DEFAULT_TRACKER
                   ) -> MusicAnalysis:
    """Resample ``samples`` (mono, or [n, channels] which is averaged) to the engine rate and push it
    block by block through :class:`MusicAnalyzer`, exactly as live input would flow.

    The result does not depend on ``block_size`` (tested bit for bit). ``tracker`` picks the beat tracker
    (:data:`engine.analysis.music.TRACKERS`).
    """
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"samples must be [n] or [n, channels], got shape {x.shape}")
    x = resample(x, sr, ENGINE_SAMPLE_RATE)
    analyzer = MusicAnalyzer(kind=tracker)
    feats: list[np.ndarray] = []
    fbpm: list[float] = []
    fper: list[float] = []
    fnext: list[float] = []
    fconf: list[float] = []
    beats: list[float] = []
    downbeats: list[float] = []
    onsets: list[float] = []
    beat_bpm: list[float] = []
    dance_beats: list[float] = []
    for start in range(0, len(x), block_size):
        chunk = x[start:start + block_size]
        block = AudioBlock(start + len(chunk), 0, samples=chunk)
        for out in analyzer.process(block):
            if isinstance(out, FeatureFrame):
                feats.append(out.features)
                fbpm.append(out.bpm)
                fper.append(out.period_s)
                fnext.append(out.next_beat_s)
                fconf.append(out.confidence)
                if out.beat_s >= 0:
                    dance_beats.append(out.beat_s)
            elif isinstance(out, BeatEvent):
                beats.append(out.time_s)
                beat_bpm.append(out.bpm)
                if out.beat_in_bar == 0:
                    downbeats.append(out.time_s)
            elif isinstance(out, OnsetEvent):
                onsets.append(out.time_s)
    n = len(feats)
    features = np.stack(feats).astype(np.float32) if n else np.zeros((0, MUSIC_FEATURE_DIM), np.float32)
    duration = len(x) / ENGINE_SAMPLE_RATE
    late = [b for t, b in zip(beats, beat_bpm, strict=True) if t >= duration / 2]
    if late:
        bpm = float(np.median(late))
    elif beat_bpm:
        bpm = float(beat_bpm[-1])
    else:
        bpm = float(fbpm[-1]) if fbpm else 0.0
    return MusicAnalysis(
        features=features,
        frame_bpm=np.asarray(fbpm, np.float32),
        period_s=np.asarray(fper, np.float32),
        next_beat_s=np.asarray(fnext, np.float64),
        confidence=np.asarray(fconf, np.float32),
        beats=beats,
        downbeats=downbeats,
        onsets=onsets,
        beat_bpm=beat_bpm,
        bpm=bpm,
        duration_s=duration,
        envelope=features[:, 0].copy(),
        dance_beats=dance_beats,
    )


def analyze_speech_signal(samples: np.ndarray, sr: int, block_size: int = 512) -> np.ndarray:
    """Speech features [N, SPEECH_FEATURE_DIM] float32 of a whole signal, through the streaming
    :class:`SpeechAnalyzer` exactly as live input (resampled to the engine rate first)."""
    from engine.analysis.features import SPEECH_FEATURE_DIM
    from engine.analysis.speech import SpeechAnalyzer

    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"samples must be [n] or [n, channels], got shape {x.shape}")
    x = resample(x, sr, ENGINE_SAMPLE_RATE)
    analyzer = SpeechAnalyzer()
    feats: list[np.ndarray] = []
    for start in range(0, len(x), block_size):
        chunk = x[start:start + block_size]
        feats.extend(o.features for o in analyzer.process(AudioBlock(start + len(chunk), 0, chunk))
                     if isinstance(o, FeatureFrame))
    return np.stack(feats).astype(np.float32) if feats else np.zeros((0, SPEECH_FEATURE_DIM), np.float32)

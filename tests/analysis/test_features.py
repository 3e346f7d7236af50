"""Feature layout, frame timing, block-size invariance (bit for bit) and robustness of the music analyzer."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis import (
    MUSIC_FEATURE_DIM,
    MUSIC_FEATURE_NAMES,
    SPEECH_FEATURE_DIM,
    SPEECH_FEATURE_NAMES,
    MusicAnalyzer,
    SpeechAnalyzer,
    analyze_signal,
)
from engine.analysis import features as F
from engine.audio.synth import SyntheticSignal
from engine.frames import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME, AudioBlock, BeatEvent, FeatureFrame, OnsetEvent


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """8 s of clicks at 120 BPM over a quiet chord, at 44.1 kHz (so the resampler is exercised)."""
    sig = SyntheticSignal.clicks([(8.0, 120.0, 120.0)], noise_level=0.005)
    t = np.arange(len(sig.samples)) / ENGINE_SAMPLE_RATE
    chord = 0.05 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    x = (sig.samples + chord).astype(np.float32)
    from engine.audio.resample import resample

    return resample(x, ENGINE_SAMPLE_RATE, 44100)


def test_layout_matches_the_contract() -> None:
    assert MUSIC_FEATURE_DIM == 40 == len(MUSIC_FEATURE_NAMES)
    assert MUSIC_FEATURE_NAMES[0] == "onset_env"
    assert MUSIC_FEATURE_NAMES[1:21] == tuple(f"mfcc_{i}" for i in range(20))
    assert MUSIC_FEATURE_NAMES[21] == "chroma_C" and MUSIC_FEATURE_NAMES[32] == "chroma_B"
    assert MUSIC_FEATURE_NAMES[33:] == ("rms", "spectral_flux", "tempo", "beat_phase_sin", "beat_phase_cos",
                                        "beat", "peak")
    assert SPEECH_FEATURE_DIM == len(SPEECH_FEATURE_NAMES) == 16
    assert SPEECH_FEATURE_NAMES[:3] == ("energy", "pitch", "voicing")


def test_block_size_does_not_change_anything(music: np.ndarray) -> None:
    ref = analyze_signal(music, 44100, block_size=512)
    for bs in (1, 97, 735, 4096, 30000):
        if bs == 1:
            got = analyze_signal(music[: 44100 * 2], 44100, block_size=1)
            short = analyze_signal(music[: 44100 * 2], 44100, block_size=512)
            np.testing.assert_array_equal(got.features, short.features)
            continue
        got = analyze_signal(music, 44100, block_size=bs)
        np.testing.assert_array_equal(got.features, ref.features)
        np.testing.assert_array_equal(got.frame_bpm, ref.frame_bpm)
        np.testing.assert_array_equal(got.next_beat_s, ref.next_beat_s)
        assert got.beats == ref.beats and got.onsets == ref.onsets and got.downbeats == ref.downbeats


def test_shapes_ranges_and_frame_timing(music: np.ndarray) -> None:
    a = analyze_signal(music, 44100)
    n_engine = round(len(music) * ENGINE_SAMPLE_RATE / 44100)
    assert a.features.shape == (n_engine // SAMPLES_PER_FRAME, MUSIC_FEATURE_DIM)
    assert a.features.dtype == np.float32
    assert np.isfinite(a.features).all()
    assert a.frame_bpm.shape == a.period_s.shape == a.next_beat_s.shape == a.confidence.shape == (a.n_frames,)
    f = a.features
    assert f[:, F.ONSET_ENV].min() >= 0 and f[:, F.ONSET_ENV].max() <= 4
    assert np.abs(f[:, F.MFCC]).max() <= 4
    assert f[:, F.CHROMA].min() >= 0 and f[:, F.CHROMA].max() <= 1
    assert f[:, F.RMS].min() >= 0 and f[:, F.RMS].max() <= 1
    # the chord is C major: C, E and G dominate the chroma
    top = set(np.argsort(f[100:, F.CHROMA].mean(axis=0))[-3:])
    assert top == {0, 4, 7}
    late = f[-60:]
    np.testing.assert_allclose(late[:, F.TEMPO], 120 / 200, atol=1 / 200)
    np.testing.assert_allclose(late[:, F.PHASE_SIN] ** 2 + late[:, F.PHASE_COS] ** 2, 1.0, atol=1e-5)
    # beat one-hots: one every 15 frames (0.5 s) once locked
    assert 3 <= late[:, F.BEAT].sum() <= 5
    # the frame's tempo belief predicts the phase of the next beat
    last = a.n_frames - 1
    t_end = (last + 1) * SAMPLES_PER_FRAME / ENGINE_SAMPLE_RATE
    phase = ((t_end - a.next_beat_s[last]) / a.period_s[last]) % 1.0
    assert np.arctan2(late[-1, F.PHASE_SIN], late[-1, F.PHASE_COS]) % (2 * np.pi) == pytest.approx(
        2 * np.pi * phase, abs=1e-4)


def test_frame_i_is_emitted_when_its_last_sample_arrives() -> None:
    an = MusicAnalyzer()
    x = np.zeros(SAMPLES_PER_FRAME * 3, np.float32)
    out = list(an.process(AudioBlock(SAMPLES_PER_FRAME - 1, 0, samples=x[: SAMPLES_PER_FRAME - 1])))
    assert not [f for f in out if isinstance(f, FeatureFrame)]
    out = list(an.process(AudioBlock(SAMPLES_PER_FRAME, 42, samples=x[:1])))
    frames = [f for f in out if isinstance(f, FeatureFrame)]
    assert len(frames) == 1 and frames[0].frame_index == 0
    assert frames[0].sample_index == SAMPLES_PER_FRAME and frames[0].capture_ns == 42


def test_silence_nan_and_gaps_do_not_break_the_stream() -> None:
    an = MusicAnalyzer()
    silence = np.zeros(ENGINE_SAMPLE_RATE, np.float32)
    frames = [f for f in an.process(AudioBlock(ENGINE_SAMPLE_RATE, 0, silence)) if isinstance(f, FeatureFrame)]
    assert len(frames) == 30
    assert all(np.isfinite(f.features).all() for f in frames)
    bad = np.full(1000, np.nan, np.float32)
    bad[::2] = np.inf
    out = list(an.process(AudioBlock(ENGINE_SAMPLE_RATE + 1000, 0, bad)))
    assert an.bad_samples == 1000
    assert all(np.isfinite(f.features).all() for f in out if isinstance(f, FeatureFrame))
    # a dropped block (gap of 2205 samples) is filled with silence so the timeline stays right
    out = list(an.process(AudioBlock(ENGINE_SAMPLE_RATE + 1000 + 2205 + 735, 0, np.zeros(735, np.float32))))
    frames = [f for f in out if isinstance(f, FeatureFrame)]
    assert frames[-1].sample_index == (frames[-1].frame_index + 1) * SAMPLES_PER_FRAME


def test_other_frames_pass_through_and_wrong_rate_is_refused() -> None:
    an = MusicAnalyzer()
    ev = OnsetEvent(0, 0, time_s=0.0, strength=1.0)
    assert list(an.process(ev)) == [ev]
    with pytest.raises(ValueError, match="44100 Hz block"):
        list(an.process(AudioBlock(100, 0, np.zeros(100, np.float32), sample_rate=44100)))


def test_events_are_stamped_on_the_audio_timeline(music: np.ndarray) -> None:
    from engine.audio.resample import resample

    x = resample(music, 44100)
    an = MusicAnalyzer()
    out = []
    for i in range(0, len(x), 1000):
        out.extend(an.process(AudioBlock(i + len(x[i:i + 1000]), i, x[i:i + 1000])))
    beats = [f for f in out if isinstance(f, BeatEvent)]
    onsets = [f for f in out if isinstance(f, OnsetEvent)]
    assert beats and onsets
    for b in beats:
        # decided no earlier than the beat's audio arrived, and within a hop of it + the ODF delay
        assert b.sample_index / ENGINE_SAMPLE_RATE >= b.time_s
        assert b.sample_index / ENGINE_SAMPLE_RATE - b.time_s < 0.06
        assert b.next_beat_s > b.time_s
        assert 0 <= b.phase < 1


def test_speech_features_follow_pitch_and_voicing() -> None:
    sr = ENGINE_SAMPLE_RATE
    t = np.arange(sr) / sr
    voiced = (0.3 * np.sign(np.sin(2 * np.pi * 150 * t)) * np.exp(-0 * t)).astype(np.float32)
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, sr).astype(np.float32)
    an = SpeechAnalyzer()
    frames = [f for f in an.process(AudioBlock(2 * sr, 0, np.concatenate([voiced, noise])))
              if isinstance(f, FeatureFrame)]
    assert len(frames) == 60 and all(f.kind == "speech" for f in frames)
    feats = np.stack([f.features for f in frames])
    assert feats.shape == (60, SPEECH_FEATURE_DIM) and np.isfinite(feats).all()
    v = feats[5:28]
    np.testing.assert_allclose(v[:, 1], np.log2(150 / 200), atol=0.05)  # pitch
    assert v[:, 2].mean() > 0.8  # voicing
    u = feats[35:]
    assert u[:, 2].mean() < v[:, 2].mean() - 0.3
    assert (u[:, 1] == 0).mean() > 0.5  # unvoiced: no pitch


def test_streaming_memory_does_not_grow() -> None:
    import tracemalloc

    sig = SyntheticSignal.clicks([(40.0, 128.0, 128.0)], noise_level=0.01)
    x = sig.samples
    an = MusicAnalyzer()
    half = len(x) // 2
    for i in range(0, half, 512):
        an.process(AudioBlock(i + 512, 0, x[i:i + 512]))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(half, len(x) - 512, 512):
        an.process(AudioBlock(i + 512, 0, x[i:i + 512]))  # outputs dropped, as a consumer would
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 20_000, f"analyzer state grew by {grown} bytes over 20 s of audio"


def test_speech_signal_analysis_is_block_size_invariant() -> None:
    from engine.analysis import analyze_speech_signal

    sr = 16000  # a typical speech rate: resampled to the engine rate first
    t = np.arange(2 * sr) / sr
    x = (0.2 * np.sin(2 * np.pi * (120 + 40 * t) * t)).astype(np.float32)
    a = analyze_speech_signal(x, sr, block_size=512)
    b = analyze_speech_signal(x, sr, block_size=333)
    assert a.shape == (60, SPEECH_FEATURE_DIM)
    np.testing.assert_array_equal(a, b)

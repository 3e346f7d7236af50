"""Synthetic rhythm tracks: events land on the given (drifting) beats and the live tracker follows them."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis import analyze_signal
from engine.frames import ENGINE_SAMPLE_RATE
from engine.train.synth_music import render_track


def _rise(x: np.ndarray, sr: int, times: np.ndarray) -> np.ndarray:
    """Low-frequency (pulse band) energy in the 20 ms after each time over the 20 ms before it."""
    from scipy.signal import butter, sosfilt

    lo = sosfilt(butter(4, 150.0, btype="low", fs=sr, output="sos"), x)
    w = int(0.02 * sr)
    out = []
    for t in times:
        i = int(t * sr)
        before = np.sum(lo[max(0, i - w) : i] ** 2) + 1e-9
        after = np.sum(lo[i : i + w] ** 2)
        out.append(after / before)
    return np.array(out)


def test_pulse_lands_on_drifting_beats() -> None:
    beats = np.cumsum(np.linspace(0.62, 0.70, 20)) + 0.2  # the tempo slows down across the track
    x = render_track(beats, 14.0, seed=1)
    assert x.dtype == np.float32 and len(x) == 14 * ENGINE_SAMPLE_RATE
    assert np.abs(x).max() <= 1.0
    at_beats = _rise(x, ENGINE_SAMPLE_RATE, beats)
    off_beats = _rise(x, ENGINE_SAMPLE_RATE, beats[:-1] + 0.3 * np.diff(beats))
    assert np.mean(at_beats > 2.0) > 0.9  # a pulse starts on every beat ...
    assert np.median(off_beats) < 1.0 < np.median(at_beats)  # ... and not in between


def test_styles_differ_by_seed_and_repeat_by_seed() -> None:
    beats = np.arange(0.3, 10.0, 0.7)
    a = render_track(beats, 10.0, seed=1)
    np.testing.assert_array_equal(a, render_track(beats, 10.0, seed=1))
    assert not np.allclose(a, render_track(beats, 10.0, seed=2))


def test_live_tracker_locks_to_the_track() -> None:
    period = 60.0 / 112.0
    beats = np.arange(0.25, 20.0, period)
    res = analyze_signal(render_track(beats, 20.0, seed=3), ENGINE_SAMPLE_RATE)
    ratio = res.bpm / 112.0
    # The tracker may count at the bar-half or double level; either is a lock as long as it is exact.
    assert min(abs(ratio - r) for r in (0.5, 1.0, 2.0)) < 0.03
    late = np.array([b for b in res.beats if b > 10.0])
    d = np.abs(late[:, None] - beats[None]).min(1)
    assert np.mean(d < 0.07) > 0.8


def test_rejects_bad_beats() -> None:
    with pytest.raises(ValueError, match="increasing"):
        render_track(np.array([1.0, 0.5]), 2.0)

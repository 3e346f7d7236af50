"""A few clips of the project's beat set (music21 + fluidsynth, exact ground truth): this tracker vs aubio."""

from __future__ import annotations

import shutil
from pathlib import Path

import mir_eval
import numpy as np
import pytest

from bench.analysis_beatset import SOUNDFONT, TEST_CLIPS, Clip, build_set, load_tune, read_wav
from engine.analysis import analyze_signal
from engine.analysis.baseline import aubio_default_beats

pytestmark = pytest.mark.slow


def _f(ref: np.ndarray, est: np.ndarray | list[float]) -> float:
    return float(mir_eval.beat.f_measure(mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(np.asarray(est))))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        pytest.fail("fluidsynth + fluid-soundfont-gm are needed (scripts/setup.sh installs them)")
    return build_set(TEST_CLIPS, root=tmp_path_factory.mktemp("beatset"))


def test_ground_truth_matches_the_rendered_audio(clips: list[Clip]) -> None:
    for c in clips:
        x, sr = read_wav(c.wav)
        assert abs(len(x) / sr - 25.0) < 0.05
        assert np.all(np.diff(c.beats) > 0.25) and c.beats[0] == pytest.approx(0.4)
        assert set(np.round(c.downbeats, 6)) <= set(np.round(c.beats, 6))
    # 6/8: the beat is the dotted quarter, two per bar
    jig = next(c for c in clips if c.spec.meter == "6/8")
    assert np.allclose(np.diff(jig.beats[:5]), 60 / 96)
    assert len(jig.downbeats) == pytest.approx(len(jig.beats) / 2, abs=1)


def test_tune_loader_anchors_the_grid_on_the_first_full_bar() -> None:
    tune = load_tune("ryansMammoth/AcaciaReel.abc", "duple")  # starts with a half-beat pickup
    first_on = min(on for on, _, _ in tune.notes)
    assert tune.beats_per_bar == 2 and tune.beat_ql == 1.0
    assert first_on == pytest.approx(1.5)  # pickup in the last half beat of an empty first bar


def test_tracker_beats_aubio_default_on_the_subset(clips: list[Clip]) -> None:
    ours, theirs = [], []
    for c in clips:
        x, sr = read_wav(c.wav)
        ours.append(_f(c.beats, analyze_signal(x, sr).beats))
        theirs.append(_f(c.beats, aubio_default_beats(x, sr)))
    assert np.mean(ours) > 0.9, ours
    assert np.mean(ours) >= np.mean(theirs) + 0.1, (ours, theirs)


def test_cache_is_reused(clips: list[Clip]) -> None:
    c = clips[0]
    mtime = Path(c.wav).stat().st_mtime_ns
    again = build_set((c.spec.name,), root=Path(c.wav).parents[1])
    assert Path(again[0].wav).stat().st_mtime_ns == mtime

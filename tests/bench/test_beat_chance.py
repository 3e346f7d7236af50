"""The beat-alignment-beyond-chance diagnostic: a dancer stopping on the beats scores far above chance."""

from __future__ import annotations

import numpy as np
import pytest

from bench.beat_chance import bas_of_events, chance_scores, event_scores, shifted_beats
from engine.models.pose_repr import motion_to_vectors
from engine.train.evaluate import points
from tests.train.dance_helpers import stepping_motion


def test_shifted_beats_keep_the_tempo() -> None:
    b = np.arange(10) * 0.5 + 0.2
    np.testing.assert_allclose(shifted_beats(b, 0.25), b + 0.125)


def test_events_on_the_beats_score_one_and_chance_is_far_below() -> None:
    beats = 0.5 + 0.5 * np.arange(16)
    r = event_scores(beats * 60.0, beats, 9.0, 8)
    assert r["bas"] == pytest.approx(1.0)
    assert r["chance"] < 0.3 and r["excess"] > 0.7
    assert r["shift_4"] < 1e-3  # every motion beat half a period away from every music beat
    assert bas_of_events(np.zeros(0), beats, 9.0) == 0.0
    with pytest.raises(ValueError):
        event_scores(beats * 60.0, beats, 9.0, 1)


def test_a_dancer_stopping_on_the_beats_is_aligned_beyond_chance() -> None:
    m = stepping_motion(8.0, 30.0, 120.0)  # every joint stops on t = k * 0.5 s
    pos = points(*motion_to_vectors(m))
    beats = 0.5 * np.arange(1, 16)
    on = chance_scores(pos, 30.0, beats, 8)
    off = chance_scores(pos, 30.0, beats + 0.25, 8)  # the music's beats fall between the stops
    assert on["bas"] > 0.8 and on["excess"] > 0.4
    assert off["excess"] < -0.2
    assert on["motion_beats_per_beat"] == pytest.approx(1.0, abs=0.15)

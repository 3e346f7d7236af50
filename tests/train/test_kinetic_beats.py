"""Kinetic beats: tempo and beat times recovered from motion whose joints stop on known beats."""

from __future__ import annotations

import numpy as np
import pytest
from dance_helpers import stepping_motion

from engine.models.pose_repr import motion_positions
from engine.train.kinetic_beats import kinetic_beats


@pytest.mark.parametrize("bpm", [84.0, 100.0, 126.0])
def test_recovers_tempo_and_beats(bpm: float) -> None:
    m = stepping_motion(12.0, 60.0, bpm, seed=int(bpm))
    kb = kinetic_beats([motion_positions(m)], 60.0)
    assert kb.bpm == pytest.approx(bpm, rel=0.02)
    truth = np.arange(0, 12.0, 60.0 / bpm)
    d = np.abs(kb.beats_s[:, None] - truth[None]).min(1)
    assert np.mean(d < 0.035) > 0.9  # within two frames at 60 fps


def test_two_dancers_share_one_grid() -> None:
    a = motion_positions(stepping_motion(10.0, 60.0, 96.0, seed=1))
    b = motion_positions(stepping_motion(10.0, 60.0, 96.0, seed=2))
    kb = kinetic_beats([a, b], 60.0)
    assert kb.bpm == pytest.approx(96.0, rel=0.02)
    assert np.all(np.diff(kb.beats_s) > 0)

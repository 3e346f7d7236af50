"""Per-frame motion measures: the batched form is the per-clip one, clip by clip."""

from __future__ import annotations

import numpy as np
import pytest

from engine.models.motion_measures import frame_measures, per_frame_measures


def test_batched_measures_equal_each_clip_measured_alone() -> None:
    rng = np.random.default_rng(3)
    pos = rng.normal(size=(6, 5, 23, 3))
    lower = rng.normal(size=(6, 5, 61))
    lower[..., -4:] = rng.random((6, 5, 4))  # contacts around the 0.5 threshold: some feet land
    per = per_frame_measures(pos, lower, 30.0)
    assert per.shape == (6, 5, 5)
    for c in range(6):
        assert np.array_equal(np.cumsum(per[c], axis=0), frame_measures(pos[c], lower[c], 30.0).cum[1:])
    assert per[..., 4].max() > 0  # the steps column saw landings
    # the first frame repeats the second's rates (speed, turn, travel, steps) but has its own arm height
    assert np.array_equal(per[:, 0, [0, 1, 2, 4]], per[:, 1, [0, 1, 2, 4]])


def test_too_short_clip_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 2 frames"):
        frame_measures(np.zeros((1, 23, 3)), np.zeros((1, 61)), 30.0)

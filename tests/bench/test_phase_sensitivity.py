"""The phase-sensitivity probe moves every beat-phase input by half a beat and nothing else."""

from __future__ import annotations

import numpy as np

from bench.phase_sensitivity import BEAT, PHASE_COS, PHASE_SIN, half_beat_later
from engine.models.conditioning import COND_DIM, FRAMES_PER_TOKEN, MUSIC_DIM, phase_sincos


def test_half_beat_later_rotates_the_phase_inputs_by_pi_and_clears_the_beat_flags() -> None:
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(5, COND_DIM)).astype(np.float32)
    t = np.arange(FRAMES_PER_TOKEN) / 30.0
    cond[0, FRAMES_PER_TOKEN * MUSIC_DIM :] = phase_sincos(t, 0.5, 0.1).reshape(-1)
    out = half_beat_later(cond)
    np.testing.assert_allclose(out[0, FRAMES_PER_TOKEN * MUSIC_DIM :], phase_sincos(t, 0.5, 0.35).reshape(-1),
                               atol=1e-6)  # the next beat half a period (0.25 s) later
    touched = np.zeros(COND_DIM, bool)
    for f in range(FRAMES_PER_TOKEN):
        touched[[f * MUSIC_DIM + PHASE_SIN, f * MUSIC_DIM + PHASE_COS, f * MUSIC_DIM + BEAT]] = True
        np.testing.assert_allclose(out[:, f * MUSIC_DIM + PHASE_SIN], -cond[:, f * MUSIC_DIM + PHASE_SIN])
        assert not out[:, f * MUSIC_DIM + BEAT].any()
    touched[FRAMES_PER_TOKEN * MUSIC_DIM :] = True
    np.testing.assert_array_equal(out[:, ~touched], cond[:, ~touched])

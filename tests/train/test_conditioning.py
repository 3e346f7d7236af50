"""Per-token conditioning: only past music, predicted phase of the token's own frames, 168 values."""

from __future__ import annotations

import numpy as np
import pytest

from engine.models import conditioning as C


def _analysis(n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((n, C.MUSIC_DIM)).astype(np.float32)
    period = np.full(n, 0.5)
    nxt = 0.25 + 0.5 * np.ceil((np.arange(n) / 30.0 - 0.25) / 0.5)  # beats at 0.25 + 0.5 k
    return feats, period, nxt


def test_dimensions() -> None:
    assert C.COND_DIM == 168
    feats, period, nxt = _analysis()
    assert C.sequence_conditions(feats, period, nxt, 10).shape == (10, 168)


def test_token_sees_only_the_four_frames_before_it() -> None:
    feats, period, nxt = _analysis()
    c = C.token_condition(feats, period, nxt, token=3)
    np.testing.assert_array_equal(c[:160].reshape(4, 40), feats[8:12])
    # Changing the token's own frames or any later frame changes nothing.
    feats2 = feats.copy()
    feats2[12:] += 1.0
    np.testing.assert_array_equal(C.token_condition(feats2, period, nxt, 3), c)


def test_first_token_has_zero_music_and_phase_zero() -> None:
    feats, period, nxt = _analysis()
    c = C.token_condition(feats, period, nxt, token=0)
    assert not c[:160].any()
    np.testing.assert_allclose(c[160:].reshape(4, 2), [[0.0, 1.0]] * 4)


def test_phase_is_extrapolated_from_the_belief_before_the_token() -> None:
    feats, period, nxt = _analysis()
    t = 5  # frames 20..23, belief at frame 19
    c = C.token_condition(feats, period, nxt, t)
    times = (20 + np.arange(4)) / 30.0
    phase = ((times - nxt[19]) / 0.5) % 1.0
    np.testing.assert_allclose(c[160::2], np.sin(2 * np.pi * phase), atol=1e-6)
    np.testing.assert_allclose(c[161::2], np.cos(2 * np.pi * phase), atol=1e-6)


def test_vectorised_equals_per_token() -> None:
    feats, period, nxt = _analysis(37)  # not a multiple of 4: the last token's frames run past the end
    period[:6] = 0.0  # no tempo belief yet at the start
    seq = C.sequence_conditions(feats, period, nxt, 10)
    for t in range(10):
        np.testing.assert_allclose(seq[t], C.token_condition(feats, period, nxt, t), atol=1e-6)


def test_genre_ids() -> None:
    assert C.genre_id(None) == 0 and C.genre_id("Salsa") == C.GENRES.index("salsa")
    with pytest.raises(ValueError, match="known: none, salsa"):
        C.genre_id("polka")


def test_grid_phase_is_zero_on_beats_and_extrapolates() -> None:
    beats = np.array([1.0, 1.5, 2.5])
    ph = C.grid_phase(np.array([1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 0.75]), beats)
    np.testing.assert_allclose(ph, [0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="increasing"):
        C.grid_phase(np.zeros(2), np.array([1.0]))


def test_grid_phase_is_what_a_perfect_tracker_predicts() -> None:
    # A tracker that knows the grid (beats at 0.25 + 0.5 k) gives the same phase entries as the grid itself
    # for every token with a tempo belief (token 0 has none); so training on the grid's phase teaches the
    # meaning of the phase input, not one tracker's errors.
    feats, period, nxt = _analysis(80)
    cond = C.sequence_conditions(feats, period, nxt, 20)
    grid = C.with_grid_phase(cond, 0.25 + 0.5 * np.arange(10))
    np.testing.assert_allclose(grid[1:], cond[1:], atol=1e-5)
    music = C.FRAMES_PER_TOKEN * C.MUSIC_DIM
    np.testing.assert_array_equal(grid[:, :music], cond[:, :music])
    assert not np.allclose(grid[0], cond[0])


def test_decoder_beat_features_come_from_the_token_rows() -> None:
    feats, period, nxt = _analysis(120)
    rows = C.sequence_conditions(feats, period, nxt, 30)
    per_frame = C.sequence_beat_features(period, nxt, 30)  # [120, 4]
    assert per_frame.shape == (120, C.DECODER_BEAT_DIM)
    # the live engine's form (one token's conditioning row at a time) gives the same values
    for t in (0, 1, 7, 29):
        row = C.token_condition(feats, period, nxt, t)
        np.testing.assert_array_equal(C.decoder_beat_features(row[None, 160:])[0], per_frame[4 * t : 4 * t + 4])
    np.testing.assert_array_equal(per_frame[:, :2], rows[:, 160:].reshape(-1, 2))  # sin, cos of the phase
    # token 0 has no belief: no flag, no bump
    assert not per_frame[:4, 2:].any()
    # beats at 0.25 + 0.5 k s = frames 7.5, 22.5, ...: the frames within half a frame of a beat are flagged
    flagged = np.flatnonzero(per_frame[4:, 2]) + 4
    times = flagged / 30.0
    beats_off = np.abs((times - 0.25) / 0.5 - np.round((times - 0.25) / 0.5)) * 0.5  # seconds to the nearest beat
    assert len(flagged) > 0 and np.all(beats_off <= 0.5 / 30 + 1e-9)
    # the bump peaks at the flagged frames and falls off away from the beat
    assert per_frame[flagged, 3].min() > 0.9 and per_frame[4:, 3].min() < 0.01

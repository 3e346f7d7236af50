"""Captions and energy labels from measured attributes of motion windows."""

from __future__ import annotations

import numpy as np
import pytest

from engine.train import captions as C


def _clip(t: int = 90, arm: float = 0.0, spin_dps: float = 0.0, travel_ms: float = 0.0,
          wiggle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic positions [t, 23, 3] and lower vectors [t, 61] with known attributes."""
    fps = 30.0
    time = np.arange(t) / fps
    pos = np.zeros((t, 23, 3))
    pos[:, :, 1] = 1.0
    pos[:, 0, 0] = travel_ms * time  # the root travels along x
    pos[:, 1:, 0] = pos[:, :1, 0]
    pos[:, 16, 1] = pos[:, 14, 1] + arm  # right hand vs right shoulder
    pos[:, 20, 1] = pos[:, 18, 1] + arm
    pos[:, 5:10, 2] += wiggle * np.sin(2 * np.pi * 2 * time)[:, None]  # some joints move back and forth
    yaw = np.radians(spin_dps) * time
    lower = np.zeros((t, 61), np.float32)
    # hip rotation about +y by yaw: first column (cos, 0, -sin), second (0, 1, 0)
    lower[:, 3] = np.cos(yaw)
    lower[:, 5] = -np.sin(yaw)
    lower[:, 7] = 1.0
    return pos, lower


def test_window_attributes_measure_what_they_name() -> None:
    pos, lower = _clip(arm=0.3, spin_dps=180.0, travel_ms=0.5)
    a = C.clip_attributes(pos, lower, 30.0)
    assert a[C.ATTRIBUTES.index("arm")] == pytest.approx(0.3)
    assert a[C.ATTRIBUTES.index("turn")] == pytest.approx(180.0, rel=1e-3)
    assert a[C.ATTRIBUTES.index("travel")] == pytest.approx(0.5, rel=1e-6)
    assert a[0] == pytest.approx(0.0, abs=1e-9)  # nothing moves relative to the root
    moving = C.clip_attributes(*_clip(wiggle=0.1), 30.0)
    assert moving[0] > 0.05


def test_a_window_is_the_mean_over_its_frames() -> None:
    pos, lower = _clip(t=60, travel_ms=1.0)
    pos[30:, 0, 0] = pos[29, 0, 0]  # stands still in the second second
    m = C.frame_measures(pos, lower, 30.0)
    assert C.window_attributes(m, 0, 30)[2] == pytest.approx(1.0)
    assert C.window_attributes(m, 31, 60)[2] == pytest.approx(0.0)


def test_classes_terciles_and_energy_within_style() -> None:
    rng = np.random.default_rng(0)
    attrs = rng.random((300, 5))
    attrs[:150, 0] += 10.0  # style "fast" moves far more than style "slow"
    styles = ["fast"] * 150 + ["slow"] * 150
    th = C.attribute_thresholds(attrs, styles)
    # energy is relative to the style: the slowest "fast" window is calm for its style
    assert C.classes(np.array([10.0, 0.5, 0.5, 0.5, 0.5]), "fast", th)["speed"] == "low"
    assert C.classes(np.array([0.99, 0.5, 0.5, 0.5, 0.5]), "slow", th)["speed"] == "high"
    cls = C.classes(np.array([0.5, 0.01, 0.99, 0.5, 0.5]), "slow", th)
    assert cls["turn"] == "low" and cls["travel"] == "high" and "arm" not in cls
    assert C.energy_percentile(10.0, "fast", th) < 0.05
    assert C.energy_percentile(11.5, "fast", th) == 1.0
    assert 0.4 < C.energy_percentile(0.5, "slow", th) < 0.6


def test_captions_phrase_only_measured_classes() -> None:
    rng = np.random.default_rng(1)
    cls = {"speed": "high", "arm": "low"}
    caps = {C.caption(cls, "salsa", "fast", "follower", rng) for _ in range(200)}
    assert len(caps) > 20  # several phrasings and subsets
    parts = {p for c in caps for p in c.split(", ")}
    assert "arms low" in parts and "energetic" in parts
    allowed = {*C.PHRASES["speed"]["high"], *C.PHRASES["arm"]["low"], *C.STYLE_PHRASES["salsa"],
               *C.PHRASES["tempo"]["fast"], *C.PHRASES["role"]["follower"]}
    assert parts <= allowed


def test_eval_prompts_are_trained_phrasings_and_held_out_ones_are_not() -> None:
    trained = {p for by in C.PHRASES.values() for ph in by.values() for p in ph}
    for lo, hi in C.EVAL_PROMPTS.values():
        assert lo in trained and hi in trained
    for lo, hi in C.HELD_OUT_PROMPTS.values():
        assert lo not in trained and hi not in trained


def test_role_and_tempo() -> None:
    assert C.role_of("take12_x1.00_d60") == "leader"
    assert C.role_of("take12_x1.00_d61_m") == "follower"
    assert C.role_of("indian07_x1.00_solo") == "solo"
    assert [C.tempo_class(b) for b in (80, 110, 130)] == ["slow", "medium", "fast"]


def test_phrase_baseline_is_the_mean_of_every_matched_phrase() -> None:
    """The text baseline is the mean of the caption phrasings only: the prompt matcher's own phrasings
    (``MATCH_PHRASES``, session 12) stay out of it."""
    from engine.models.text_prompts import MATCHED, PHRASES, PromptMatcher, phrase_baseline

    def embed(texts: list[str]) -> np.ndarray:  # a deterministic stand-in for the sentence model
        out = np.zeros((len(texts), 8))
        for i, t in enumerate(texts):
            out[i, len(t) % 8] = 1.0
        return out

    every = [t for a in MATCHED for c in PHRASES[a] for t in PHRASES[a][c]]
    np.testing.assert_allclose(phrase_baseline(embed), embed(every).mean(0), rtol=1e-6)
    m = PromptMatcher(embed)
    np.testing.assert_allclose(m.baseline(), embed(every).mean(0), rtol=1e-6)

"""Beat-guided token choice: predicted beat frames, settings, and the scoring that picks the dip on the beat."""

from __future__ import annotations

import numpy as np
import pytest

from engine.models.beat_guidance import OFF, BeatGuide, GuidanceConfig, beat_frames, steer_targets
from engine.models.conditioning import sequence_conditions
from engine.models.pose_repr import LOWER_DIM, UPPER_DIM


def _cond(n_tokens: int, period: float = 0.5, first_beat: float = 0.1) -> np.ndarray:
    n = 4 * n_tokens
    t = np.arange(n) / 30.0
    nxt = first_beat + period * np.ceil((t - first_beat) / period)
    return sequence_conditions(np.zeros((n, 40), np.float32), np.full(n, period), nxt, n_tokens)


def test_beat_frames_follow_the_predicted_phase() -> None:
    cond = _cond(12)
    found = [4 * t + k for t in range(1, 12) for k in beat_frames(cond[t])]
    beats = 0.1 + 0.5 * np.arange(4)  # 0.1, 0.6, 1.1, 1.6 s -> frames 3, 18, 33, 48
    assert found == [round(b * 30) for b in beats if 4 <= b * 30 < 48]
    assert beat_frames(cond[0]) == []  # no tempo belief before the first token: no beat


def test_settings_from_the_model_card() -> None:
    assert not GuidanceConfig.from_card(None).enabled
    assert not GuidanceConfig.from_card({}).enabled
    cfg = GuidanceConfig.from_card({"candidates": 8, "weight": 5})
    assert cfg.enabled and cfg.candidates == 8 and cfg.weight == 5.0
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg
    with pytest.raises(ValueError, match="unknown beat_guidance keys"):
        GuidanceConfig.from_card({"candidates": 8, "wieght": 5})
    with pytest.raises(ValueError):
        GuidanceConfig(candidates=-1)
    assert not cfg.with_candidates(0).enabled
    assert cfg.with_candidates(4).candidates == 4 and cfg.with_candidates(4).weight == 5.0
    assert OFF.with_candidates(12) == GuidanceConfig(candidates=12)


def _frames(vx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A rigid pose sliding along x at speeds vx (m/s): every joint's speed is |vx|."""
    n = len(vx)
    up = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), (n, UPPER_DIM // 6))
    low = np.zeros((n, LOWER_DIM), np.float32)
    low[:, 3:-4] = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), (n, (LOWER_DIM - 7) // 6))
    low[:, 0] = vx
    low[:, 1] = 0.9
    return up, low


def _stack(cand: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Candidates' (upper, lower) frames stacked as the guide takes them: [C, 4, D] each."""
    return np.stack([c[0] for c in cand]), np.stack([c[1] for c in cand])


def test_the_candidate_with_the_speed_minimum_on_the_beat_wins() -> None:
    guide = BeatGuide(GuidanceConfig(candidates=3, weight=20.0, sigma=1.0))
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_frames(np.array([2.0, 2.0, 2.0, 2.0])))
    state.commit(*_frames(np.array([2.0, 1.8, 1.5, 1.2])))  # slowing down into the next token
    beat = state.frames + 1  # the beat falls on the candidates' second frame
    speeds = [
        np.array([1.0, 1.2, 1.8, 2.2]),  # minimum one frame early
        np.array([0.9, 0.2, 0.9, 1.8]),  # minimum on the beat
        np.array([1.1, 1.3, 1.6, 0.4]),  # minimum at the end
    ]
    cand = [_frames(v) for v in speeds]
    cu, cd = _stack(cand)
    scores = guide.beat_scores(state, [beat], cu, cd)
    assert int(np.argmax(scores)) == 1 and scores[1] > 0.9
    assert guide.choose(state, [beat], cu, cd, logp=np.zeros(3)) == 1
    # A much likelier candidate beats the dip when the weight is small.
    assert BeatGuide(GuidanceConfig(candidates=3, weight=0.1, sigma=1.0)).choose(
        state, [beat], cu, cd, logp=np.array([0.0, -5.0, 0.0])) != 1


def test_state_keeps_recent_beats_and_history_only() -> None:
    cfg = GuidanceConfig(candidates=4, history=8, back=3)
    guide = BeatGuide(cfg)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    cond = _cond(12)
    steering = []
    for t in range(12):
        steering.append(state.observe(cond[t]))
        state.commit(*_frames(np.ones(4)))
    assert len(state.hist_up) == 8 and state.frames == 48
    # Beat at frame 18 steers the token holding it (frames 16-19) and the next one (20-23, 18 >= 20 - 3).
    assert 18 in steering[4] and 18 in steering[5] and 18 not in steering[6]
    assert all(b >= 4 * t - 3 for t, bs in enumerate(steering) for b in bs)
    state.reset()
    assert state.frames == 0 and not state.beats and len(state.hist_up) == 0


def test_packed_rows_cover_every_candidate_with_the_fewest_decodes() -> None:
    import torch

    from engine.models.beat_guidance import pack_candidates

    cu = torch.tensor([5, 5, 9, 5, 9, 5])
    cd = torch.tensor([1, 2, 2, 1, 3, 1])
    ru, rd, iu, idn = pack_candidates(cu, cd)
    # each decoder decodes its own distinct tokens: 2 upper (5, 9), 3 lower (1, 2, 3)
    assert len(ru) == 2 and len(rd) == 3
    assert torch.equal(ru[iu], cu) and torch.equal(rd[idn], cd)


def _turning(rate: float, n: int = 4, start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A standing pose whose hip turns at ``rate`` radians per frame from heading ``start``."""
    up, low = _frames(np.zeros(n))
    th = start + rate * np.arange(1, n + 1)
    low[:, 3:9] = np.stack([np.cos(th), np.zeros(n), -np.sin(th), np.zeros(n), np.ones(n), np.zeros(n)], -1)
    return up, low


def test_steer_targets_name_the_measured_column_and_direction() -> None:
    assert steer_targets({"turn": "high"}) == ((1, 1.0),)
    assert steer_targets({"turn": "low", "arm": "high"}) == ((1, -1.0), (3, 1.0))
    assert steer_targets({"speed": "mid"}) == () and steer_targets({}) == ()
    cfg = GuidanceConfig.from_card({"candidates": 8, "text_weight": 2})
    assert cfg.text_weight == 2.0 and GuidanceConfig.from_card(cfg.to_card()) == cfg
    assert "text_weight" not in GuidanceConfig(candidates=8).to_card()  # cards without the term stay as they were
    with pytest.raises(ValueError, match="text_weight"):
        GuidanceConfig(text_weight=-1.0)


def test_the_text_term_prefers_the_asked_turn_rate() -> None:
    """Under "spinning" (turn high) the candidate whose hip yaws fastest wins, under "no turns" the stillest;
    the rate of the first candidate frame is measured from the last committed frame."""
    guide = BeatGuide(GuidanceConfig(candidates=3, weight=20.0, text_weight=2.0))
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_turning(0.0))
    cand = [_turning(r) for r in (0.02, 0.15, 0.05)]
    cu, cd = _stack(cand)
    pos, hists = guide._candidate_positions([state], cu[None], cd[None])
    vals = guide.attribute_values(state, pos[0], hists[0], cd)
    np.testing.assert_allclose(vals[:, 1], np.degrees([0.02, 0.15, 0.05]) * 30.0, rtol=1e-6)
    logp = np.array([0.0, -1.0, 0.0])  # the fast turn is the least likely draw
    assert guide.choose(state, [], cu, cd, logp, targets=steer_targets({"turn": "high"})) == 1
    assert guide.choose(state, [], cu, cd, logp, targets=steer_targets({"turn": "low"})) == 0
    # No target, or weight 0: the log-probability alone decides (the first of the likeliest).
    assert guide.choose(state, [], cu, cd, logp) == 0
    off = BeatGuide(GuidanceConfig(candidates=3, weight=20.0))
    assert off.choose(state, [], cu, cd, np.array([-1.0, -2.0, 0.0]), targets=steer_targets({"turn": "high"})) == 2


def test_select_sample_tilts_the_draws_by_the_beat_score_not_by_log_p() -> None:
    """``select`` "sample": a beat-only token draws its candidate with probability ~ exp(weight * hits), the log
    probability left out (the candidates are draws from the GPT already); a texted performer keeps argmax."""
    import torch

    from engine.models.beat_guidance import gumbel_noise

    cfg = GuidanceConfig.from_card({"candidates": 3, "weight": 2.0, "sigma": 1.0, "select": "sample"})
    assert cfg.select == "sample" and GuidanceConfig.from_card(cfg.to_card()) == cfg
    assert "select" not in GuidanceConfig(candidates=8).to_card()  # cards without it stay as they were
    with pytest.raises(ValueError, match="select"):
        GuidanceConfig(select="best")
    guide = BeatGuide(cfg)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_frames(np.array([2.0, 2.0, 2.0, 2.0])))
    state.commit(*_frames(np.array([2.0, 1.8, 1.5, 1.2])))
    beat = state.frames + 1
    cand = [_frames(v) for v in (np.array([1.0, 1.2, 1.8, 2.2]), np.array([0.9, 0.2, 0.9, 1.8]),
                                  np.array([1.1, 1.3, 1.6, 0.4]))]
    cu, cd = _stack(cand)
    hits = guide.beat_scores(state, [beat], cu, cd)
    logp = np.array([0.0, -8.0, 0.0])  # argmax would never take the dip at this weight
    assert BeatGuide(replace_select(cfg, "argmax")).choose(state, [beat], cu, cd, logp) != 1
    with pytest.raises(ValueError, match="Gumbel"):
        guide.choose(state, [beat], cu, cd, logp)
    gen = torch.Generator().manual_seed(0)
    n = 4000
    picks = np.bincount([guide.choose(state, [beat], cu, cd, logp, gumbel=gumbel_noise(3, gen)) for _ in range(n)],
                        minlength=3) / n
    expect = np.exp(cfg.weight * hits) / np.exp(cfg.weight * hits).sum()
    np.testing.assert_allclose(picks, expect, atol=0.03)
    # weight 0: every candidate equally likely (plain sampling among draws of the GPT)
    flat = BeatGuide(GuidanceConfig(candidates=3, weight=0.0, select="sample"))
    picks0 = np.bincount([flat.choose(state, [beat], cu, cd, logp, gumbel=gumbel_noise(3, gen)) for _ in range(3000)],
                         minlength=3) / 3000
    np.testing.assert_allclose(picks0, 1 / 3, atol=0.03)
    # a performer with a text term: argmax of log p + beat + text, whatever the noise
    texted = BeatGuide(GuidanceConfig(candidates=3, weight=2.0, sigma=1.0, text_weight=0.5, select="sample"))
    slow = steer_targets({"speed": "low"})
    as_argmax = BeatGuide(replace_select(texted.cfg, "argmax")).choose(state, [beat], cu, cd, logp, targets=slow)
    for k in range(3):
        noise = np.where(np.arange(3) == k, 50.0, 0.0)
        assert texted.choose(state, [beat], cu, cd, logp, targets=slow, gumbel=noise) == as_argmax
        assert texted.choose(state, [beat], cu, cd, logp, gumbel=noise) == k  # no text: the noise decides


def replace_select(cfg: GuidanceConfig, select: str) -> GuidanceConfig:
    from dataclasses import replace

    return replace(cfg, select=select)


def _stepping(vx: float, planted: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rigid pose drawn gliding at ``vx`` m/s, its feet marked planted (or in the air) on every frame."""
    up, low = _frames(np.full(4, vx))
    low[:, -4:] = 1.0 if planted else 0.0
    return up, low


def test_the_text_term_measures_travel_as_the_feet_will_be_locked() -> None:
    """A candidate drawn gliding with its feet planted does not travel once the generator locks its feet (the
    root follows the planted feet, which do not move), so under foot locking the candidate whose feet are in
    the air travels more; the travel of the first frame is locked against the last committed frame too."""
    cand = [_stepping(1.0, True), _stepping(0.5, False)]
    cu, cd = _stack(cand)
    travel = {}
    for lock in (False, True):
        guide = BeatGuide(GuidanceConfig(candidates=2, text_weight=5.0), foot_lock=lock)
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        state.commit(*_stepping(0.0, True))
        pos, hists = guide._candidate_positions([state], cu[None], cd[None])
        travel[lock] = guide.attribute_values(state, pos[0], hists[0], cd)[:, 2]
        want = 1 if lock else 0
        assert guide.choose(state, [], cu, cd, np.zeros(2), targets=steer_targets({"travel": "high"})) == want
    np.testing.assert_allclose(travel[False], [1.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(travel[True], [0.0, 0.5], atol=1e-6)


def test_a_texted_token_without_a_beat_resamples_the_draws_by_the_text_term() -> None:
    """With resampling noise (a texted performer on a token no beat steers) the pick maximises
    ``text_logp * logp + text_weight * z + noise``: weight 0 is the noise's (uniform) pick whatever the draws'
    probabilities; a strong weight the asked extreme; ``text_logp`` brings the probabilities back in."""
    import torch

    from engine.models.beat_guidance import gumbel_noise as gumbel

    cand = [_turning(r) for r in (0.02, 0.15, 0.05)]
    cu, cd = _stack(cand)
    logp = np.array([0.0, -30.0, -30.0])
    high = steer_targets({"turn": "high"})
    noise = np.array([0.0, 0.0, 0.5])

    def pick(w: float, lp: float = 0.0, nz: np.ndarray | None = noise) -> int:
        guide = BeatGuide(GuidanceConfig(candidates=3, text_weight=w, text_logp=lp))
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        state.commit(*_turning(0.0))
        return guide.choose(state, [], cu, cd, logp, targets=high, noise=nz)

    assert pick(1e-6) == 2  # the noise's pick: the likeliest draw (0) does not win by its probability
    assert pick(5.0) == 1  # the fastest turn
    assert pick(5.0, lp=1.0) == 0  # its probability counts again
    assert pick(5.0, nz=None) == 0  # without noise (a beat token): log p + text, as before
    # Gumbel noise makes the arg-max a draw with odds exp(score): frequencies follow the softmax.
    g = torch.Generator().manual_seed(0)
    a = np.array([0.0, 1.0, -0.5])
    wins = np.bincount([int(np.argmax(a + gumbel(3, g))) for _ in range(20000)], minlength=3) / 20000
    np.testing.assert_allclose(wins, np.exp(a) / np.exp(a).sum(), atol=0.015)
    assert np.array_equal(gumbel(5, torch.Generator().manual_seed(3)), gumbel(5, torch.Generator().manual_seed(3)))


def test_per_attribute_text_settings_from_the_card() -> None:
    """``text_attributes`` scales one attribute's weight (of ``text_weight``, so ``--text-steer 0`` still turns
    every attribute off) and may keep session 7's arg-max rule for it (no resampling)."""
    card = {"candidates": 8, "text_weight": 2.0, "text_logp": 1.0,
            "text_attributes": {"turn": {"scale": 0.25, "resample": False}}}
    cfg = GuidanceConfig.from_card(card)
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and cfg.to_card()["text_attributes"] == card[
        "text_attributes"]
    assert cfg.text_scale(1) == (0.5, False) and cfg.text_scale(3) == (2.0, True)
    assert not cfg.with_text_weight(0.0).text_on and cfg.text_on
    for bad in ({"spin": {"scale": 1.0}}, {"turn": {"scale": -1.0}}, {"turn": {"resample": "no"}},
                {"turn": {"weight": 1.0}}, {"turn": 0.5}):
        with pytest.raises(ValueError, match="text_attributes"):
            GuidanceConfig.from_card({"candidates": 8, "text_weight": 1.0, "text_attributes": bad})
    guide = BeatGuide(cfg)
    turn, arm = steer_targets({"turn": "high"}), steer_targets({"arm": "high"})
    assert not guide.resamples(turn) and guide.resamples(arm) and guide.resamples(turn + arm)
    # The turn term is weighted by its own weight (0.5): the fast turn (z = +1.38) beats a likelier draw by 0.6 nats
    # but not by 0.8.
    cand = [_turning(r) for r in (0.02, 0.15, 0.05)]
    cu, cd = _stack(cand)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_turning(0.0))
    pos, hists = guide._candidate_positions([state], cu[None], cd[None])
    z = guide.attribute_values(state, pos[0], hists[0], cd)[:, 1]
    z = (z - z.mean()) / z.std()
    np.testing.assert_allclose(guide.text_scores_batch([state], [turn], pos, hists, cd[None])[0], 0.5 * z)
    gap = 0.5 * (z[1] - z[0])
    assert guide.choose(state, [], cu, cd, np.array([0.0, -(gap - 0.1), -9.0]), targets=turn) == 1
    assert guide.choose(state, [], cu, cd, np.array([0.0, -(gap + 0.1), -9.0]), targets=turn) == 0


def test_the_energy_term_steers_the_speed_in_proportion_to_the_level() -> None:
    """``energy_weight`` scores the candidates' standardised speed by ``2 level - 1``: level 0 picks the calmest
    draw, 1 the liveliest, 0.5 (and an unset level, or the term off) steers nothing; the card round-trips it and
    refuses a negative weight; it steers without any text term."""
    from engine.models.beat_guidance import ENERGY_COLUMN, energy_target

    cfg = GuidanceConfig.from_card({"candidates": 8, "weight": 10.0, "energy_weight": 1.5})
    assert cfg.energy_weight == 1.5 and GuidanceConfig.from_card(cfg.to_card()) == cfg
    assert cfg.steer_on and not cfg.text_on and cfg.text_scale(ENERGY_COLUMN) == (1.5, True)
    with pytest.raises(ValueError, match="energy_weight"):
        GuidanceConfig(energy_weight=-1.0)
    assert energy_target(0.0, cfg) == ((ENERGY_COLUMN, -1.0),) and energy_target(1.0, cfg) == ((ENERGY_COLUMN, 1.0),)
    assert energy_target(0.75, cfg) == ((ENERGY_COLUMN, 0.5),)
    assert energy_target(0.5, cfg) == () and energy_target(None, cfg) == ()
    assert energy_target(0.0, GuidanceConfig(candidates=8)) == ()
    guide = BeatGuide(cfg)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_turning(0.0))
    cand = [_turning(r) for r in (0.05, 0.01, 0.15)]  # the joints move with the hip's turn: middling, calm, lively
    cu, cd = _stack(cand)
    logp = np.zeros(3)
    assert guide.choose(state, [], cu, cd, logp, targets=energy_target(0.0, cfg)) == 1
    assert guide.choose(state, [], cu, cd, logp, targets=energy_target(1.0, cfg)) == 2
    assert guide.choose(state, [], cu, cd, np.array([0.0, -0.1, -0.1]), targets=energy_target(0.5, cfg)) == 0
    pos, hists = guide._candidate_positions([state], cu[None], cd[None])
    lo = guide.text_scores_batch([state], [energy_target(0.25, cfg)], pos, hists, cd[None])[0]
    hi = guide.text_scores_batch([state], [energy_target(1.0, cfg)], pos, hists, cd[None])[0]
    np.testing.assert_allclose(lo, -0.5 * hi)  # in proportion to 2 level - 1
    assert hi[2] > hi[0] > hi[1]


def test_the_energy_feedback_steers_toward_the_level_s_target_speed() -> None:
    """With ``energy_speeds`` the energy term is a feedback on the dance's own recent speed: the level sets a target
    speed (the genre's reference times ``energy_span``), and a dance slower than it picks the livelier draw, one
    faster the calmer, whatever the level (0.5 is steered too); one on its target is not steered. Without an energy
    (or with the feedback off) nothing changes. On the old code the card keys are unknown and level 0 always picked
    the calmest draw."""
    from engine.models.beat_guidance import ENERGY_COLUMN, energy_target

    cfg = GuidanceConfig.from_card({"candidates": 3, "weight": 10.0, "energy_weight": 2.0,
                                    "energy_speeds": {"salsa": 0.4, "*": 0.5}, "energy_span": [0.5, 1.5],
                                    "energy_band": 0.2, "energy_frames": 12})
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and cfg.energy_feedback
    assert "energy_speeds" not in GuidanceConfig(energy_weight=0.2).to_card()  # cards without it stay as they were
    for bad in ({"energy_speeds": {"salsa": 0.0}}, {"energy_speeds": {"salsa": 0.4}, "energy_span": [1.2, 0.8]},
                {"energy_speeds": {"salsa": 0.4}, "energy_band": 0.0}, {"energy_speeds": [0.4]}):
        with pytest.raises(ValueError, match="energy_"):
            GuidanceConfig.from_card({"candidates": 3, "energy_weight": 1.0, **bad})
    assert cfg.energy_speed(0.0, "salsa") == pytest.approx(0.2) and cfg.energy_speed(1.0, "salsa") == pytest.approx(0.6)
    assert cfg.energy_speed(0.5, "modern") == pytest.approx(0.5)  # "*": any other genre
    assert cfg.energy_speed(None, "salsa") == 0.0 and GuidanceConfig(energy_weight=1.0).energy_speed(0.0, "salsa") == 0
    assert energy_target(0.5, cfg) == ((ENERGY_COLUMN, 0.0),) and energy_target(None, cfg) == ()
    guide = BeatGuide(cfg)
    cand = [_turning(r) for r in (0.05, 0.01, 0.15)]  # middling, calm, lively
    cu, cd = _stack(cand)

    def pick(committed_rate: float, level: float | None, genre: str = "salsa") -> int:
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        for k in range(3):
            state.commit(*_turning(committed_rate, start=4 * k * committed_rate))
        state.energy_speed = cfg.energy_speed(level, genre)
        return guide.choose(state, [], cu, cd, np.zeros(3), targets=energy_target(level, cfg))

    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    for k in range(3):
        state.commit(*_turning(0.05, start=0.2 * k))
    up, down = state.energy_window  # the last energy_frames committed frames
    assert len(up) == 12
    pos = guide._positions(up, down)
    speed_mid = float(np.linalg.norm(np.diff(pos, axis=0), axis=-1).mean() * 30.0)  # the middling dance's speed
    assert 0.2 < speed_mid < 0.6  # so level 0 (target 0.2 m/s) is below it and level 1 (0.6) above
    assert pick(0.05, 0.0) == 1 and pick(0.05, 1.0) == 2  # slower than level 1's target, faster than level 0's
    assert pick(0.0, 0.0) == 2  # a dancer standing still at level 0 is below even level 0's target: livelier
    assert pick(0.15, 1.0) == 1  # a dancer racing above level 1's target: calmer
    state.energy_speed = speed_mid  # on its target: the direction is 0, the term steers nothing
    assert guide.energy_direction(state) == pytest.approx(0.0, abs=1e-6)
    assert guide.choose(state, [], cu, cd, np.array([0.0, -0.1, -0.1]), targets=energy_target(0.3, cfg)) == 0
    # no energy: the feedback never runs (the target speed stays 0), the choice is the plain one
    assert pick(0.0, None) == 0


def test_an_energy_only_performer_resamples_without_the_log_probability() -> None:
    """Away from a beat, an energy-only performer's draws are resampled by the energy term alone (odds
    ``exp(w (2 e - 1) z)``, no ``text_logp``): with the term at a vanishing weight the noise picks, whatever the
    draws' probabilities (plain sampling, as without an energy); a performer with a text keeps ``text_logp``."""
    from engine.models.beat_guidance import energy_target

    cfg = GuidanceConfig(candidates=3, text_weight=1.0, text_logp=1.0, energy_weight=1e-6)
    guide = BeatGuide(cfg)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_turning(0.0))
    cand = [_turning(r) for r in (0.05, 0.01, 0.15)]
    cu, cd = _stack(cand)
    logp = np.array([0.0, -5.0, -5.0])
    noise = np.array([0.0, 0.0, 0.5])
    assert guide.choose(state, [], cu, cd, logp, targets=energy_target(1.0, cfg), noise=noise) == 2
    texted = energy_target(1.0, cfg) + steer_targets({"arm": "low"})
    assert guide.choose(state, [], cu, cd, logp, targets=texted, noise=noise) == 0  # text_logp 1 counts again


def _gliding(vx: float, vz: float) -> tuple[np.ndarray, np.ndarray]:
    """The rigid pose drawn gliding at (vx, vz) m/s with its feet in the air."""
    up, low = _frames(np.full(4, vx))
    low[:, 2] = vz
    return up, low


def test_the_stage_term_picks_the_way_home_in_the_models_frame() -> None:
    """A performer the staging reports out on the stage takes the candidate travelling towards the centre, in the
    model's own frame (the staging's yaw undone); inside ``stage_from`` of the radius, or with the term off, the
    pick is as before (the log-probability's)."""
    cand = [_gliding(0.6, 0.0), _gliding(0.0, 0.6), _gliding(-0.6, 0.0), _gliding(0.0, -0.6)]
    cu, cd = _stack(cand)
    logp = np.array([0.0, -0.5, -0.5, -0.5])
    cfg = GuidanceConfig(candidates=4, stage_weight=3.0, stage_from=0.5)
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and "stage_weight" not in GuidanceConfig().to_card()
    with pytest.raises(ValueError, match="stage_weight"):
        GuidanceConfig(stage_weight=1.0, stage_from=1.0)

    def pick(c: GuidanceConfig, rel: tuple[float, float] | None, theta: float = 0.0) -> int:
        guide = BeatGuide(c)
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        state.commit(*_gliding(0.0, 0.0))
        state.set_stage(None if rel is None else np.array(rel), theta, 1.5)
        return guide.choose(state, [], cu, cd, logp)

    assert pick(cfg, (1.4, 0.0)) == 2  # out at +x: home is -x
    assert pick(cfg, (0.0, -1.6)) == 1  # out at -z: home is +z
    # the staging turned the model's frame by +90 deg (from +Z towards +X: raw +z is staged +x), so home (staged
    # -x) is raw -z
    assert pick(cfg, (1.4, 0.0), np.pi / 2) == 3
    assert pick(cfg, (0.5, 0.0)) == 0  # inside half the radius: not steered
    assert pick(cfg, None) == 0
    assert pick(GuidanceConfig(candidates=4), (1.4, 0.0)) == 0  # the term off
    # steered by the stage alone on a token no beat steers: the draws resampled, exp(stage term) + noise
    guide = BeatGuide(cfg)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_gliding(0.0, 0.0))
    state.set_stage(np.array([1.4, 0.0]), 0.0, 1.5)
    assert guide.choose(state, [], cu, cd, logp, noise=np.array([0.0, 0.0, 0.0, 50.0])) == 3  # the noise's
    assert guide.choose(state, [], cu, cd, np.array([0.0, -50.0, -50.0, -50.0]), noise=np.zeros(4)) == 2  # not log p
    # a draw standing still is no better than one moving across the way home (STAGE_MOTION): out at +x, home is -x;
    # gliding along z wins over standing still, and the still draw over one walking straight out
    across = [_gliding(0.0, 0.0), _gliding(0.0, 0.6), _gliding(0.6, 0.0)]
    cu2 = np.stack([c[0] for c in across])
    cd2 = np.stack([c[1] for c in across])
    assert guide.choose(state, [], cu2, cd2, np.zeros(3)) == 1
    assert guide.choose(state, [], cu2[[0, 2]], cd2[[0, 2]], np.zeros(2)) == 0

def _facing(yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """The still pose with its hips turned to ``yaw`` (from +Z towards +X)."""
    up, low = _frames(np.zeros(4))
    low[:, 3:9] = np.array([np.cos(yaw), 0.0, -np.sin(yaw), 0.0, 1.0, 0.0], np.float32)
    return up, low


def test_the_facing_part_turns_a_dancer_that_faced_away_too_often_to_the_front() -> None:
    """Session 11: a performer the staging reports as facing away from the front on more than ``stage_away`` of its
    recent frames takes the draw whose hips face the front (in the model's frame: the staging's yaw undone); within
    its budget, or with the part off, the pick is the log-probability's (it turns as the dance likes)."""
    yaws = [np.pi, np.pi / 2, 0.0, -np.pi / 2]
    cand = [_facing(y) for y in yaws]
    cu, cd = _stack(cand)
    logp = np.array([0.0, -0.5, -0.5, -0.5])
    cfg = GuidanceConfig(candidates=4, stage_facing=3.0, stage_away=0.1)
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and "stage_facing" not in GuidanceConfig().to_card()
    with pytest.raises(ValueError, match="stage_facing"):
        GuidanceConfig(stage_facing=1.0, stage_away=0.0)

    def pick(c: GuidanceConfig, away: float, theta: float = 0.0, front: float = 0.0) -> int:
        guide = BeatGuide(c)
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        state.commit(*_facing(0.0))
        state.set_stage(np.zeros(2), theta, 1.5, front, away)
        assert state.stage_on == (c.stage_facing > 0 and away > c.stage_away)
        return guide.choose(state, [], cu, cd, logp)

    np.testing.assert_allclose(np.exp(1j * _hip_yaws(BeatGuide(cfg), cu, cd)), np.exp(1j * np.array(yaws)), atol=1e-5)
    assert pick(cfg, 0.3) == 2  # facing +Z, the front
    assert pick(cfg, 0.3, front=np.pi / 2) == 1  # a front at +X
    assert pick(cfg, 0.3, theta=np.pi / 2) == 3  # staged = raw turned +90 deg: raw -90 deg faces the front
    assert pick(cfg, 0.05) == 0  # within its budget: the likeliest draw, facing away
    assert pick(GuidanceConfig(candidates=4), 0.3) == 0  # the part off
    # every facing within the cone (45 deg) is as good: the likeliest of those wins, not the one nearest the front
    guide = BeatGuide(cfg)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_facing(0.0))
    state.set_stage(np.zeros(2), 0.0, 1.5, 0.0, 0.3)
    near = [_facing(y) for y in (0.0, np.radians(40.0), np.pi)]
    assert guide.choose(state, [], np.stack([c[0] for c in near]), np.stack([c[1] for c in near]),
                        np.array([-0.5, 0.0, 0.5])) == 1


def _hip_yaws(guide: BeatGuide, cu: np.ndarray, cd: np.ndarray) -> np.ndarray:
    """The hips' facing (as the facing part reads it) of each candidate's first frame."""
    pos = guide._positions(cu, cd)[:, 0]
    hips = pos[:, 6] - pos[:, 2]
    return np.arctan2(-hips[:, 2], hips[:, 0])


def _twisting(rate: float, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A standing pose whose upper body twists about the vertical at ``rate`` radians per frame: it moves (root-
    relative joint speed) but neither turns its hips, travels nor raises its hands."""
    up, low = _frames(np.zeros(n))
    th = rate * np.arange(1, n + 1)
    up[:, 0:6] = np.stack([np.cos(th), np.zeros(n), -np.sin(th), np.zeros(n), np.ones(n), np.zeros(n)], -1)
    return up, low

def _spinning_gliding(rate: float, vx: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_twisting` frames whose root glides at ``vx`` m/s along x (travel grows with vx, speed with rate)."""
    up, low = _twisting(rate)
    low[:, 0] = vx
    return up, low


def _pick_on_the_spot(c: GuidanceConfig, targets: tuple, cu: np.ndarray, cd: np.ndarray,
                      noise: np.ndarray | None) -> int:
    """The candidate (``cu`` / ``cd``) a performer that has danced on the spot (0.25 rad per frame, no glide) picks
    under ``targets`` off the beats, every draw equally likely."""
    guide = BeatGuide(c)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_spinning_gliding(0.25, 0.0))
    return guide.choose(state, [], cu, cd, np.zeros(len(cu)), targets=targets, noise=noise)


def test_the_speed_floor_takes_a_moving_draw_once_the_dancer_stands_still() -> None:
    """The stall (session 10): once a texted dancer stands still, the GPT's likeliest draws are still ones and the
    text pick (arg-max of ``log p + W z``, or odds ``p x exp(W z)``) kept taking them. With the floor a moving draw
    3 nats less likely wins under every non-calm prompt, on beat tokens (no noise) and resampled ones alike; without
    the floor (or under "calm", which may ask for stillness) a still draw wins; a dancer that moves is not steered."""
    from dataclasses import replace

    cfg = GuidanceConfig(candidates=4, text_weight=1.0, text_logp=1.0, text_attributes=(("turn", 0.75, False),),
                         text_floor=0.25, text_floor_weight=5.0)
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and cfg.to_card()["text_floor"] == 0.25
    assert GuidanceConfig.from_card({**cfg.to_card(), "text_floor_frames": 12}).text_floor_frames == 12
    only_turn = GuidanceConfig.from_card({**cfg.to_card(), "text_floor_attributes": ["turn"]})
    assert only_turn.floor_on(steer_targets({"turn": "low"})) and not only_turn.floor_on(steer_targets({"arm": "low"}))
    assert GuidanceConfig.from_card(only_turn.to_card()) == only_turn
    for bad in ({"text_floor": -0.1}, {"text_floor_weight": float("nan")}, {"text_floor_frames": 1},
                {"text_floor_attributes": ["spin"]}, {"text_floor_attributes": "turn"}):
        with pytest.raises(ValueError, match="text_floor"):
            GuidanceConfig.from_card({"candidates": 8, **bad})
    cand = [_twisting(0.0)] * 3 + [_twisting(0.25)]
    cu, cd = _stack(cand)
    logp = np.array([0.0, 0.0, 0.0, -3.0])  # the still draws are the likeliest
    prompts = [steer_targets({a: c}) for a in ("turn", "arm", "travel") for c in ("low", "high")]
    prompts.append(steer_targets({"speed": "high"}))

    def pick(c: GuidanceConfig, targets: tuple, history_rate: float, noise: np.ndarray | None = None) -> int:
        guide = BeatGuide(c)
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        state.commit(*_twisting(history_rate, 8))
        return guide.choose(state, [], cu, cd, logp, targets=targets, noise=noise)

    zero = np.zeros(4)
    for t in prompts:
        assert cfg.floor_on(t)
        assert pick(cfg, t, 0.0) == 3 and pick(cfg, t, 0.0, zero) == 3, t  # stood still: the moving draw
        assert pick(cfg, t, 0.25) == pick(replace(cfg, text_floor_weight=0.0), t, 0.25)  # moving: not steered
    off = replace(cfg, text_floor_weight=0.0)
    for t in prompts[:-1]:  # without the floor the still draw wins (the stall)
        assert pick(off, t, 0.0) != 3 and pick(off, t, 0.0, zero) != 3, t
    calm = steer_targets({"speed": "low", "turn": "high"})
    assert not cfg.floor_on(calm) and pick(cfg, calm, 0.0) != 3
    assert not cfg.with_text_weight(0.0).floor_on(prompts[0])  # --text-steer 0 turns the floor off with the term
    # the penalty: weight x (1 - v / floor) of each candidate's speed v, while the committed frames (the last
    # text_floor_frames: 1 s) move slower than the floor; nothing once they move faster
    guide = BeatGuide(cfg)
    v = np.array([0.0, 0.125, 0.25, 1.0])
    for rate, want in ((0.0, [5.0, 2.5, 0.0, 0.0]), (0.25, [0.0] * 4)):
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        for _ in range(10):  # 40 frames: the window holds the last 30
            state.commit(*_twisting(rate))
        assert len(state.floor_frames[0]) == 30 and len(state.hist_up) == cfg.history
        np.testing.assert_allclose(guide.floor_penalty(state, v), want)
    state.commit(*_twisting(0.0, 32))  # the dancer stops: the floor opens again
    assert guide.committed_speed(state) == 0.0 and guide.floor_penalty(state, v)[0] == 5.0


def test_the_shipped_card_keeps_every_non_calm_prompt_that_stalled_moving() -> None:
    """The shipped card floors turning (the arg-max pick the watched "spinning" stall came from) and the "low" side
    of arms and travel ("arms low" and "stay in place" stalled the dance by the eval's measure until session 11), for
    the evaluated prompts, trained phrasings and paraphrases, as matched; with its settings a stalled dancer takes a
    moving draw over still ones 3 nats likelier, where the card without the floor took a still one. "arms high",
    "travel across the floor" and speed are not floored (floored "high" sides danced livelier and cost FID;
    docs/models.md)."""
    import json

    from engine.models.text_prompts import default_matcher
    from engine.train.captions import EVAL_PROMPTS, HELD_OUT_PROMPTS
    from engine.train.generate import DEFAULT_MODEL_DIR

    card = DEFAULT_MODEL_DIR / "model.json"
    if not card.is_file():
        pytest.skip("no shipped model")
    cfg = GuidanceConfig.from_card(json.loads(card.read_text())["sampling"]["beat_guidance"])
    matcher = default_matcher()
    cand = [_twisting(0.0)] * (cfg.candidates - 1) + [_twisting(0.25)]
    cu, cd = _stack(cand)
    logp = np.zeros(cfg.candidates)
    logp[-1] = -3.0
    guide = BeatGuide(cfg)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_twisting(0.0, cfg.text_floor_frames))
    unfloored = BeatGuide(GuidanceConfig.from_card({k: v for k, v in cfg.to_card().items() if "floor" not in k}))
    floored = 0
    turn, travel, arm = (steer_targets({a: "high"})[0][0] for a in ("turn", "travel", "arm"))
    for pair in (*EVAL_PROMPTS.values(), *HELD_OUT_PROMPTS.values()):
        for text in pair:  # as matched (each to its own attribute and side: tests/models/test_text_prompts.py)
            targets = steer_targets(matcher.classes(matcher.embed([text])[0]))
            assert targets, text
            want = any(c == turn or (c in (arm, travel) and d < 0) for c, d in targets)
            assert cfg.floor_on(targets) == want, text
            if not want:
                continue
            floored += 1
            for noise in (None, np.zeros(cfg.candidates)):
                assert guide.choose(state, [], cu, cd, logp, targets=targets, noise=noise) == cfg.candidates - 1, text
                assert unfloored.choose(state, [], cu, cd, logp, targets=targets, noise=noise) != cfg.candidates - 1
    assert floored == 8


def test_a_stage_pull_does_not_override_the_energy_level() -> None:
    """Out on the stage, the stage term (weight ``stage_weight * s``) and the energy term both score the draws. With
    ``energy_weight`` alone the stage pull overrides the level: energy 0 and energy 1 take the same lively draw that
    goes home fastest. With ``energy_stage`` the energy term keeps its share of the stage's weight: energy 0 takes
    the calm draw that still goes home, energy 1 the lively one, and the draw walking away is never taken; a
    performer with no energy (and level 0.5) picks as before."""
    from dataclasses import replace

    from engine.models.beat_guidance import energy_target

    def moving(rate: float, vx: float) -> tuple[np.ndarray, np.ndarray]:  # joints turning at ``rate``, gliding at vx
        up, low = _turning(rate)
        low[:, 0] = vx
        return up, low

    # out at +x, so home is -x: lively going home, calm going home a little slower, calm walking away, standing
    cand = [moving(0.15, -0.6), moving(0.01, -0.5), moving(0.01, 0.6), moving(0.05, 0.0)]
    cu, cd = _stack(cand)
    base = GuidanceConfig(candidates=4, weight=10.0, energy_weight=0.2, stage_weight=4.0, stage_from=0.3)
    shared = GuidanceConfig(candidates=4, weight=10.0, energy_weight=0.2, stage_weight=4.0, stage_from=0.3,
                            energy_stage=0.25)
    assert GuidanceConfig.from_card(shared.to_card()) == shared and "energy_stage" not in base.to_card()
    with pytest.raises(ValueError, match="energy_stage"):
        GuidanceConfig(energy_stage=-0.1)

    def pick(cfg: GuidanceConfig, level: float | None, noise: np.ndarray | None = None) -> int:
        guide = BeatGuide(cfg)
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        state.commit(*moving(0.0, 0.0))
        state.set_stage(np.array([1.05, 0.0]), 0.0, 1.5)  # 1.05 m out of 1.5: strength 0.57
        assert state.stage_strength > 0.5
        return guide.choose(state, [], cu, cd, np.zeros(4), targets=energy_target(level, cfg), noise=noise)

    assert pick(base, 0.0) == pick(base, 1.0) == 0  # the stage term decides alone: the override
    for noise in (None, np.zeros(4)):  # arg-max, and a token no beat steers (resampled draws)
        assert pick(shared, 0.0, noise) == 1 and pick(shared, 1.0, noise) == 0
        assert pick(shared, None, noise) == pick(base, None, noise) == 0
        assert pick(shared, 0.5, noise) == pick(base, 0.5, noise)
    # the shipped card's settings (its share, 0.1) keep the two levels apart here too
    import json

    from engine.train.generate import DEFAULT_MODEL_DIR

    card = DEFAULT_MODEL_DIR / "model.json"
    if card.is_file():
        shipped = replace(GuidanceConfig.from_card(json.loads(card.read_text())["sampling"]["beat_guidance"]),
                          candidates=4)
        assert shipped.energy_stage > 0
        assert pick(shipped, 0.0) == 1 and pick(shipped, 1.0) == 0 and pick(shipped, None) == 0
    # the energy term's weight grows with the stage pull only while the stage steers, and only with an energy
    assert shared.energy_weight_at(0.0) == 0.2 and shared.energy_weight_at(1.0) == pytest.approx(0.2 + 0.25 * 4.0)
    assert GuidanceConfig(energy_stage=0.25, stage_weight=4.0).energy_weight_at(1.0) == 0.0
    # the facing part's weight counts as the stage term's too (a dancer turned away too often is steered by it)
    facing = replace(shared, stage_facing=4.0)
    assert facing.energy_weight_at(0.0, 0.0) == 0.2
    assert facing.energy_weight_at(0.0, 1.0) == pytest.approx(0.2 + 0.25 * 4.0)
    assert facing.energy_weight_at(1.0, 0.5) == pytest.approx(0.2 + 0.25 * (4.0 + 2.0))


def test_speed_residual_takes_out_the_part_of_an_attribute_that_speed_explains() -> None:
    from engine.models.beat_guidance import speed_residual

    rng = np.random.default_rng(0)
    speed = rng.uniform(0.0, 1.0, 16)
    other = rng.normal(size=16)
    values = 3.0 * speed + other
    res = speed_residual(values, speed)
    assert abs(np.corrcoef(res, speed)[0, 1]) < 1e-9  # nothing left that speed explains
    assert res.mean() == pytest.approx(values.mean())
    np.testing.assert_allclose(res - res.mean(), other - other.mean() - np.polyfit(speed, other, 1)[0]
                               * (speed - speed.mean()), atol=1e-12)
    np.testing.assert_array_equal(speed_residual(values, np.full(16, 0.3)), values)  # one speed: unchanged


def test_a_speed_neutral_attribute_no_longer_picks_the_still_draw() -> None:
    """"stay in place" (travel low) among draws whose travel grows with their speed: the plain term takes the draw
    standing still (the stall of session 10), the speed-neutral one (``text_speed_neutral``) the draw that moves on
    the spot and travels least for its speed; settings round-trip through the card, bad names are refused."""
    from dataclasses import replace

    cand = [_spinning_gliding(r, v) for r, v in ((0.0, 0.0), (0.25, 0.1), (0.25, 0.8), (0.25, 0.6))]
    cu, cd = _stack(cand)
    plain = GuidanceConfig(candidates=4, text_weight=1.0, text_logp=1.0)
    neutral = replace(plain, text_speed_neutral=("travel", "arm"))
    assert GuidanceConfig.from_card(neutral.to_card()) == neutral and "text_speed_neutral" not in plain.to_card()
    for bad in (["spin"], ["speed"], "travel"):
        with pytest.raises(ValueError, match="text_speed_neutral"):
            GuidanceConfig.from_card({"candidates": 8, "text_speed_neutral": bad})
    stay = steer_targets({"travel": "low"})

    def pick(c: GuidanceConfig, targets: tuple, noise: np.ndarray | None = None) -> int:
        return _pick_on_the_spot(c, targets, cu, cd, noise)

    for noise in (None, np.zeros(4)):
        assert pick(plain, stay, noise) == 0  # standing still travels least
        assert pick(neutral, stay, noise) == 1  # dances on the spot
        assert pick(neutral, steer_targets({"travel": "high"}), noise) == 2  # still the most travel
        assert pick(neutral, steer_targets({"turn": "low"}), noise) == pick(plain, steer_targets({"turn": "low"}),
                                                                            noise)  # not named: unchanged
        only_high = replace(plain, text_speed_neutral=("travel:high",))  # a side: the other side is plain
        assert pick(only_high, stay, noise) == 0 and pick(only_high, steer_targets({"travel": "high"}), noise) == 2
    assert neutral.speed_neutral(2, -1.0) and not neutral.speed_neutral(1, 1.0)
    assert only_high.speed_neutral(2, 1.0) and not only_high.speed_neutral(2, -1.0)
    with pytest.raises(ValueError, match="text_speed_neutral"):
        GuidanceConfig.from_card({"candidates": 8, "text_speed_neutral": ["speed:high"]})


def test_a_one_sided_residual_does_not_pick_the_livelier_draw_for_stay_in_place() -> None:
    """"stay in place" among draws whose travel grows with their speed, one of them dancing much faster and
    travelling a little less than that line predicts: the two-sided speed residual (``text_speed_neutral``) takes that
    fast draw (the modern dances on real music that sped up and travelled more under a stronger "stay", session 15);
    the one-sided one (``text_speed_one_sided``) takes the draw that travels least without favouring stillness: the
    slower draws are still corrected (the still one is not taken for being still), the faster ones are not credited."""
    from dataclasses import replace

    from engine.models.beat_guidance import speed_residual

    cand = [_spinning_gliding(r, v) for r, v in ((0.25, 0.3), (0.25, 0.4), (0.6, 0.5), (0.6, 0.7), (0.1, 0.05))]
    cu, cd = _stack(cand)
    two = GuidanceConfig(candidates=5, text_weight=1.0, text_logp=1.0, text_speed_neutral=("travel",))
    one = replace(two, text_speed_one_sided=("travel:low",))
    assert GuidanceConfig.from_card(one.to_card()) == one and "text_speed_one_sided" not in two.to_card()
    for bad in (["spin"], ["arm"], "travel"):  # unknown, not a speed-neutral side, not a list
        with pytest.raises(ValueError, match="text_speed_one_sided"):
            GuidanceConfig.from_card({**two.to_card(), "text_speed_one_sided": bad})
    assert one.one_sided(2, -1.0) and not one.one_sided(2, 1.0) and not two.one_sided(2, -1.0)
    stay, far = steer_targets({"travel": "low"}), steer_targets({"travel": "high"})

    def pick(c: GuidanceConfig, targets: tuple, noise: np.ndarray | None = None) -> int:
        return _pick_on_the_spot(c, targets, cu, cd, noise)

    for noise in (None, np.zeros(5)):
        assert pick(two, stay, noise) == 2  # the fast draw: 1.8 m/s against 1.0-1.2, and it travels 0.5 m/s
        assert pick(one, stay, noise) == 4  # travels least (0.05 m/s) for its speed
        assert pick(one, far, noise) == pick(two, far, noise)  # the other side is not named: unchanged
    rng = np.random.default_rng(1)
    speed = rng.uniform(0.2, 1.0, 16)
    values = 0.8 * speed + rng.normal(0.0, 0.05, 16)
    low, high = speed_residual(values, speed, -1.0), speed_residual(values, speed, 1.0)
    slow = speed < speed.mean()
    np.testing.assert_allclose(low[slow], speed_residual(values, speed)[slow])  # the slower ones corrected (up)
    np.testing.assert_array_equal(low[~slow], values[~slow])  # the faster ones keep their travel
    np.testing.assert_array_equal(high[slow], values[slow])
    np.testing.assert_allclose(high[~slow], speed_residual(values, speed)[~slow])


def test_a_side_floor_raises_the_speed_floor_of_that_side_only() -> None:
    """``text_side_floors`` {"travel:low": f}: "stay in place" is floored at f m/s in place of ``text_floor`` (the
    dancer moving at 0.17 m/s, over the shared 0.1 floor and under the side's 0.3, takes the moving draw 1.5 nats less
    likely), every other side keeps ``text_floor``; settings round-trip, a floor <= 0 or a bad side is refused."""
    from dataclasses import replace

    cfg = GuidanceConfig(candidates=4, text_weight=1.0, text_logp=1.0, text_floor=0.1, text_floor_weight=5.0,
                         text_floor_attributes=("travel:low", "arm:low"))
    side = replace(cfg, text_side_floors=(("travel:low", 0.3),))
    assert GuidanceConfig.from_card(side.to_card()) == side and "text_side_floors" not in cfg.to_card()
    for bad in ({"travel:low": 0.0}, {"travel": 0.3}, {"travel:low": "x"}, ["travel:low"]):
        with pytest.raises(ValueError, match="text_side_floors"):
            GuidanceConfig.from_card({**cfg.to_card(), "text_side_floors": bad})
    stay, arms = steer_targets({"travel": "low"}), steer_targets({"arm": "low"})
    assert side.floor_for(stay) == 0.3 and side.floor_for(arms) == 0.1 and cfg.floor_for(stay) == 0.1
    assert side.floor_for(stay + arms) == 0.3
    def twist(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # as _twisting, at the angles th (one per frame)
        up, low = _twisting(0.0, len(th))
        up[:, 0:6] = np.stack([np.cos(th), 0 * th, -np.sin(th), 0 * th, 1 + 0 * th, 0 * th], -1)
        return up, low

    # three slow draws going on at 0.05 rad per frame as the dancer did (0.17 m/s), one moving (0.25 rad per frame)
    cand = [twist(0.05 * np.arange(4.0))] * 3 + [twist(0.25 * np.arange(4.0))]
    cu, cd = _stack(cand)
    logp = np.array([0.0, 0.0, 0.0, -1.5])  # the side floor's penalty of a slow draw: 5 x (1 - 0.17 / 0.3) = 2.2

    def pick(c: GuidanceConfig, targets: tuple, noise: np.ndarray | None = None) -> int:
        guide = BeatGuide(c)
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        state.commit(*twist(0.05 * np.arange(-32.0, 0.0)))  # the dancer moves at 0.17 m/s
        assert guide.committed_speed(state) == pytest.approx(0.167, abs=0.01)
        return guide.choose(state, [], cu, cd, logp, targets=targets, noise=noise)

    for noise in (None, np.zeros(4)):
        assert pick(cfg, stay, noise) != 3 and pick(side, stay, noise) == 3  # under the side's floor: moves on
        assert pick(side, arms, noise) == pick(cfg, arms, noise) != 3  # another side: the shared floor, not under it


def test_a_floor_name_with_a_side_floors_only_that_side() -> None:
    """``text_floor_attributes`` "arm:low" floors "arms low" and not "arms high" ("turn": both sides); a side other
    than low / high or an unknown name is refused."""
    cfg = GuidanceConfig.from_card({"candidates": 8, "text_weight": 1.0, "text_floor": 0.2, "text_floor_weight": 10.0,
                                    "text_floor_attributes": ["turn", "arm:low", "travel:high"]})
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg
    on = {(a, c): cfg.floor_on(steer_targets({a: c}))
          for a in ("turn", "arm", "travel", "speed") for c in ("low", "high")}
    assert on == {("turn", "low"): True, ("turn", "high"): True, ("arm", "low"): True, ("arm", "high"): False,
                  ("travel", "low"): False, ("travel", "high"): True, ("speed", "low"): False, ("speed", "high"): False}
    assert cfg.floor_on(steer_targets({"arm": "high", "turn": "high"}))  # one floored target is enough
    assert not cfg.floor_on(steer_targets({"arm": "low", "speed": "low"}))  # calm: never
    for bad in (["arm:down"], ["arm:"], ["spin:low"], ["arm:low:high"]):
        with pytest.raises(ValueError, match="text_floor_attributes"):
            GuidanceConfig.from_card({"candidates": 8, "text_floor_attributes": bad})


def test_a_side_scale_weights_one_side_of_an_attribute() -> None:
    """``text_side_scales`` {"arm:high": s}: "arms high" is steered with weight ``text_weight * s``, "arms low" with
    the attribute's scale; the scores follow (a side scaled to 0 adds nothing); bad keys are refused."""
    cfg = GuidanceConfig.from_card({"candidates": 4, "text_weight": 2.0, "text_attributes": {"arm": {"scale": 1.5}},
                                    "text_side_scales": {"arm:high": 0.25, "travel:low": 0.0}})
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and "text_side_scales" not in GuidanceConfig().to_card()
    arm, travel = steer_targets({"arm": "high"})[0][0], steer_targets({"travel": "low"})[0][0]
    assert cfg.text_side_weight(arm, 1.0) == 0.5 and cfg.text_side_weight(arm, -1.0) == 3.0
    assert cfg.text_side_weight(travel, -1.0) == 0.0 and cfg.text_side_weight(travel, 1.0) == 2.0
    guide = BeatGuide(cfg)
    state = guide.new_state(UPPER_DIM, LOWER_DIM)
    cand = [_twisting(r) for r in (0.0, 0.1, 0.2, 0.3)]
    cu, cd = _stack(cand)
    for k in range(4):
        cd[k, :, 0] = 0.2 * k  # travel grows with k
    pos, hists = guide._candidate_positions([state], cu[None], cd[None])
    lo = guide.text_scores_batch([state], [steer_targets({"travel": "low"})], pos, hists, cd[None])
    hi = guide.text_scores_batch([state], [steer_targets({"travel": "high"})], pos, hists, cd[None])
    np.testing.assert_array_equal(lo, 0.0)  # scaled to 0
    assert np.argmax(hi[0]) == 3 and hi[0].std() > 0
    for bad in ({"arm": 1.0}, {"arm:up": 1.0}, {"spin:low": 1.0}, {"arm:low": -1.0}, {"arm:low": True}, ["arm:low"]):
        with pytest.raises(ValueError, match="text_side_scales"):
            GuidanceConfig.from_card({"candidates": 8, "text_side_scales": bad})


def test_a_side_logp_resamples_one_side_without_the_arg_max() -> None:
    """``text_side_logp`` {"turn:high": 0}: "spinning" resamples its draws on tokens no beat steers with odds
    ``exp(W z)`` (the log-probability's weight 0), where the card's turn entry (``resample`` false) takes the arg-max
    of ``log p + W z`` on every token, which under "spinning" kept the likeliest draw; "no turns" keeps the arg-max.
    With several targets the least weight counts; bad keys are refused."""
    card = {"candidates": 3, "text_weight": 1.0, "text_logp": 1.0,
            "text_attributes": {"turn": {"scale": 0.75, "resample": False}}}
    old = GuidanceConfig.from_card(card)
    cfg = GuidanceConfig.from_card({**card, "text_side_logp": {"turn:high": 0.0}})
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and "text_side_logp" not in old.to_card()
    high, low, arm = steer_targets({"turn": "high"}), steer_targets({"turn": "low"}), steer_targets({"arm": "high"})
    assert cfg.resample_logp(high) == 0.0 and cfg.resample_logp(arm) == 1.0 and cfg.resample_logp(high + arm) == 0.0
    assert old.resample_logp(high) == 1.0 and cfg.resample_logp(()) == 0.0
    cand = [_turning(r) for r in (0.02, 0.15, 0.05)]
    cu, cd = _stack(cand)
    logp = np.array([0.0, -6.0, -6.0])  # the fast turn is a far less likely draw
    noise = np.zeros(3)
    picks = {}
    for name, c in (("old", old), ("new", cfg)):
        guide = BeatGuide(c)
        state = guide.new_state(UPPER_DIM, LOWER_DIM)
        state.commit(*_turning(0.0))
        assert guide.resamples(high) == (name == "new") and not guide.resamples(low)
        # off the beats: the new card resamples (noise given); the old one has no noise for turning (arg-max)
        picks[name] = guide.choose(state, [], cu, cd, logp, targets=high,
                                   noise=noise if guide.resamples(high) else None)
        # "no turns" is picked as before, and a beat token is the arg-max either way
        assert guide.choose(state, [], cu, cd, logp, targets=low) == 0
        assert guide.choose(state, [], cu, cd, logp, targets=high) == 0
    assert picks == {"old": 0, "new": 1}
    for bad in ({"turn": 0.0}, {"turn:up": 0.0}, {"spin:high": 0.0}, {"turn:high": -1.0}, {"turn:high": False}):
        with pytest.raises(ValueError, match="text_side_logp"):
            GuidanceConfig.from_card({"candidates": 8, "text_side_logp": bad})


def test_a_side_target_steers_a_dance_short_of_it_and_leaves_one_past_it_alone() -> None:
    """``text_side_targets`` {"travel:high": [0.5, 0.2]}: "travel across the floor" steers with its whole weight
    while the last committed frames travel at least a band short of 0.5 m/s, with none once they reach it (the
    GPT's own pick, its likeliest draw here), in proportion between; before any frame is committed, fully. Without
    the key every dance is steered alike (the old rule, under which a dance already travelling far was pushed as hard
    as a standing one, and one that barely moved no harder). Bad keys are refused."""
    card = {"candidates": 2, "text_weight": 5.0, "text_logp": 1.0}
    old = GuidanceConfig.from_card(card)
    cfg = GuidanceConfig.from_card({**card, "text_side_targets": {"travel:high": [0.5, 0.2]},
                                    "text_target_frames": 40})
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and "text_side_targets" not in old.to_card()
    high, low = steer_targets({"travel": "high"}), steer_targets({"travel": "low"})
    assert cfg.side_target(*high[0]) == (0.5, 0.2) and cfg.side_target(*low[0]) is None
    cand = [_gliding(0.8, 0.0), _gliding(0.1, 0.0)]
    cu, cd = _stack(cand)
    logp = np.array([-2.0, 0.0])  # the travelling draw is the less likely one
    picks = {}
    for name, c in (("old", old), ("new", cfg)):
        guide = BeatGuide(c)
        for past in (None, 0.1, 0.8):
            state = guide.new_state(UPPER_DIM, LOWER_DIM)
            if past is not None:
                state.commit(*_frames(np.full(60, past)))
            picks[name, past] = guide.choose(state, [], cu, cd, logp, targets=high)
            if name == "new" and past is not None:
                assert len(state.target_window[0]) == 40  # the window the target reads
                assert guide.committed_attributes(state)[2] == pytest.approx(past, abs=1e-4)
            # the low side has no target: steered as before
            assert guide.choose(state, [], cu, cd, logp, targets=low) == 1
    assert picks == {("old", None): 0, ("old", 0.1): 0, ("old", 0.8): 0,
                     ("new", None): 0, ("new", 0.1): 0, ("new", 0.8): 1}
    assert BeatGuide.target_gap((0.5, 0.2), 1.0, 0.4) == pytest.approx(0.5)
    assert BeatGuide.target_gap((0.3, 0.1), -1.0, 0.35) == pytest.approx(0.5)  # a low side: steered while above
    for bad in ({"travel": [0.5, 0.2]}, {"travel:up": [0.5, 0.2]}, {"travel:high": [0.5, 0.0]},
                {"travel:high": 0.5}, {"travel:high": [0.5, True]}):
        with pytest.raises(ValueError, match="text_side_targets"):
            GuidanceConfig.from_card({"candidates": 8, "text_side_targets": bad})


def test_the_speed_ceiling_takes_the_calmer_draw_while_a_texted_dance_runs_over_its_genre_s_ceiling() -> None:
    """``text_speed_ceilings`` {"modern": 0.5} (session 14): a modern dance under "arms high" whose last committed
    frames move faster than 0.5 m/s takes the calmer of two draws that its text does not tell apart (the
    likelier one is the faster); within its ceiling, without the key, or in a genre the key does not name, the
    likelier draw as before. Texts that ask for speed themselves, no text, and texts that ``text_ceiling_attributes``
    does not name (when it names some) are left alone; bad keys are refused."""
    card = {"candidates": 2, "text_weight": 5.0, "text_logp": 1.0}
    old = GuidanceConfig.from_card(card)
    cfg = GuidanceConfig.from_card({**card, "text_speed_ceilings": {"modern": 0.5}, "text_ceiling_weight": 4.0,
                                    "text_ceiling_band": 0.2})
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and "text_speed_ceilings" not in old.to_card()
    assert cfg.speed_ceiling("modern") == 0.5 and cfg.speed_ceiling("salsa") == 0.0 and old.speed_ceiling("modern") == 0
    arms = steer_targets({"arm": "high"})
    assert cfg.ceiling_for(arms) and not cfg.ceiling_for(())
    assert not cfg.ceiling_for(steer_targets({"speed": "high", "arm": "high"}))
    cand = [_turning(0.2), _turning(0.02)]  # mean root-relative joint speed ~0.94 and ~0.09 m/s
    cu, cd = _stack(cand)
    logp = np.array([0.0, -2.0])  # the faster draw is the likelier
    picks = {}
    for name, c in (("old", old), ("new", cfg)):
        guide = BeatGuide(c)
        for genre in ("modern", "salsa"):
            for rate in (0.05, 0.2):  # committed frames at ~0.24 m/s (within) and ~0.94 m/s (over)
                state = guide.new_state(UPPER_DIM, LOWER_DIM)
                state.commit(*_turning(rate, 60))
                state.speed_ceiling = c.speed_ceiling(genre)
                picks[name, genre, rate] = guide.choose(state, [], cu, cd, logp, targets=arms)
                if name == "new" and genre == "modern":
                    assert guide.ceiling_gap(state) == (0.0 if rate == 0.05 else 1.0)
    assert picks == {("old", "modern", 0.05): 0, ("old", "modern", 0.2): 0, ("old", "salsa", 0.05): 0,
                     ("old", "salsa", 0.2): 0, ("new", "modern", 0.05): 0, ("new", "modern", 0.2): 1,
                     ("new", "salsa", 0.05): 0, ("new", "salsa", 0.2): 0}
    named = GuidanceConfig.from_card({**cfg.to_card(), "text_ceiling_attributes": ["travel", "turn:high"]})
    assert GuidanceConfig.from_card(named.to_card()) == named
    assert named.ceiling_for(steer_targets({"travel": "low"})) and named.ceiling_for(steer_targets({"turn": "high"}))
    assert not named.ceiling_for(arms) and not named.ceiling_for(steer_targets({"turn": "low"}))
    state = BeatGuide(named).new_state(UPPER_DIM, LOWER_DIM)
    state.commit(*_turning(0.2, 60))
    state.speed_ceiling = 0.5
    assert BeatGuide(named).choose(state, [], cu, cd, logp, targets=arms) == 0  # a text it does not name: as before
    for bad in ({"text_speed_ceilings": {"modern": 0.0}}, {"text_speed_ceilings": {"modern": True}},
                {"text_speed_ceilings": {"modern": 0.5}, "text_ceiling_attributes": ["hands"]},
                {"text_speed_ceilings": [0.5]}, {"text_ceiling_weight": -1.0},
                {"text_speed_ceilings": {"modern": 0.5}, "text_ceiling_band": 0.0}):
        with pytest.raises(ValueError, match=r"text_(speed_ceilings|ceiling)"):
            GuidanceConfig.from_card({"candidates": 8, **bad})


def _standing_at(height: float, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A standing pose whose lowest contact point is ``height`` m above the floor (the root raised or lowered)."""
    up, low = _frames(np.zeros(n))
    guide = BeatGuide(GuidanceConfig(candidates=2))
    ground = float(guide._positions(up[:1], low[:1])[0][guide.foot_points, 1].min())
    low[:, 1] += height - ground
    return up, low


def test_the_ground_term_takes_the_draw_nearer_the_floor_while_a_texted_dance_hovers() -> None:
    """``text_ground_weight`` (session 16): a dance under "travel across the floor" whose last committed frames hover
    (lowest contact point 10 cm up, ``text_ground_m`` 5 cm) takes the draw with its feet on the floor over a
    likelier hovering one; a dance standing on the floor, the card without the key, and a text the key does not name
    keep the likelier draw. Keys round-trip and bad ones are refused."""
    card = {"candidates": 2, "text_weight": 5.0, "text_logp": 1.0}
    old = GuidanceConfig.from_card(card)
    cfg = GuidanceConfig.from_card({**card, "text_ground_weight": 4.0, "text_ground_m": 0.05,
                                    "text_ground_attributes": ["travel:high"]})
    assert GuidanceConfig.from_card(cfg.to_card()) == cfg and "text_ground_weight" not in old.to_card()
    travel, arms = steer_targets({"travel": "high"}), steer_targets({"arm": "high"})
    assert cfg.ground_for(travel) and not cfg.ground_for(arms) and not cfg.ground_for(())
    assert not old.ground_for(travel)
    cand = [_standing_at(0.10), _standing_at(0.0)]
    cu, cd = _stack(cand)
    logp = np.array([0.0, -2.0])  # the hovering draw is the likelier
    picks = {}
    for name, c in (("old", old), ("new", cfg)):
        guide = BeatGuide(c)
        for h in (0.0, 0.10):
            for tname, targets in (("travel", travel), ("arms", arms)):
                state = guide.new_state(UPPER_DIM, LOWER_DIM)
                state.commit(*_standing_at(h, 60))
                picks[name, h, tname] = guide.choose(state, [], cu, cd, logp, targets=targets)
                win = guide._window_positions(state)
                assert win is not None and guide.hover_gap(win) == pytest.approx(0.0 if h == 0.0 else 1.0, abs=1e-4)
    assert picks == {("old", 0.0, "travel"): 0, ("old", 0.0, "arms"): 0, ("old", 0.1, "travel"): 0,
                     ("old", 0.1, "arms"): 0, ("new", 0.0, "travel"): 0, ("new", 0.0, "arms"): 0,
                     ("new", 0.1, "travel"): 1, ("new", 0.1, "arms"): 0}
    for bad in ({"text_ground_weight": -1.0}, {"text_ground_m": 0.0}, {"text_ground_attributes": ["feet"]}):
        with pytest.raises(ValueError, match="text_ground"):
            GuidanceConfig.from_card({**card, **bad})

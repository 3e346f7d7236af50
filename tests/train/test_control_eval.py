"""The controls evaluation: paired statistics and the report (the measures themselves run in eval --controls)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.train.control_eval import controls_markdown, paired_d, write_controls_report


def test_paired_effect_size() -> None:
    assert paired_d(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)
    assert paired_d(np.array([-1.0, -1.0, -1.0])) == float("-inf")
    assert paired_d(np.array([1.0, -1.0, 1.0, -1.0])) == pytest.approx(0.0)


def _result() -> dict:
    kf = {"blend": {"err_cm_p50": 1.0, "err_cm_p90": 2.0, "err_cm_mean": 1.2, "within_10cm": 1.0,
                    "peak_joint_speed_ms": 5.0, "peak_mean_speed_ms": 2.0, "share_joint_speed_over_p999": 0.0,
                    "speed_after_vs_uncontrolled": 1.0, "longest_freeze_after_s": 0.2, "fid_k": 50.0}}
    kf["slots_only"] = dict(kf["blend"], err_cm_p50=12.0)
    kf["no_keyframe"] = {"err_cm_p50": 15.0, "err_cm_p90": 20.0}
    kf["uncontrolled_peak_joint_speed_ms"] = 5.5
    return {
        "pairs": 4, "seconds": 12.0, "uncontrolled": {"fid_k": 40.0, "speed_ms": 0.5, "attributes": {}},
        "energy": {"levels": [0.0, 1.0], "speed_ms": [0.3, 0.7], "monotonic": True, "success": 1.0, "effect_d": 3.0,
                   "fid_k": {"0.0": 45.0, "1.0": 70.0}, "per_style_speed_ms": {"salsa": [0.3, 0.7]}},
        "text": {"arm": {"prompts": ["arms low", "arms high"], "low": -0.3, "high": -0.1, "success": 0.75,
                         "effect_d": 1.2, "fid_k": 55.0}},
        "keyframes": {"target_s": 6.0, "real_joint_speed_p999": 6.3, "real_mean_speed_p999": 3.08,
                      "all": kf, "upper": kf, "lower": kf},
        "genre_switch": {"switch_s": 8.0, "classifier_window_s": 1.0, "latency_s_p50": 0.6, "latency_s_p90": 1.5,
                         "switched": 0.75, "style_acc_before": 0.9, "style_acc_after_2s": 0.8,
                         "peak_mean_speed_ms": 2.5, "snap_bar_ms": 3.7},
    }


def test_the_report_has_a_row_per_control_and_judges_the_fid_bar(tmp_path: Path) -> None:
    md = controls_markdown(_result())
    assert "| 1.0 | 0.700 | 70.0 | no |" in md  # 70 > 1.5 x 40
    assert "| 0.0 | 0.300 | 45.0 | yes |" in md
    assert '| arm | "arms low" / "arms high" | -0.300 | -0.100 | 75 % | 1.20 | 55.0 | yes |' in md
    assert "| all | GPT slots only | 12.0 |" in md and "Genre switched live" in md
    write_controls_report(_result(), tmp_path)
    assert json.loads((tmp_path / "controls.json").read_text())["pairs"] == 4
    assert (tmp_path / "controls.png").stat().st_size > 1000


def test_energy_levels_ask_for_the_tercile_of_the_training_label() -> None:
    from engine.train.control_eval import energy_tercile

    assert [energy_tercile(e) for e in (0.0, 0.25, 0.5, 0.75, 1.0)] == ["low", "low", "mid", "high", "high"]


def _walk(scale: float, seed: int, frames: int = 360) -> np.ndarray:
    """A random walk of 23 points [T, 23, 3], its speed set by ``scale`` (the root, point 0, stays put)."""
    rng = np.random.default_rng(seed)
    pos = np.cumsum(rng.normal(scale=scale / 30.0, size=(frames, 23, 3)), axis=0)
    pos[:, 0] = 0.0
    return pos


def test_terciles_are_within_each_style_and_a_fast_dance_is_nearer_the_fast_third() -> None:
    from engine.train.control_eval import _reference, fid_k, mean_speed, tercile_pieces

    # salsa is slow, Indian fast: pooled terciles would put all of salsa low and all of Indian high
    pieces = [_walk(s, i) for i, s in enumerate([0.2, 0.5, 1.0] * 3)] + [_walk(2 * s, 10 + i)
                                                                          for i, s in enumerate([0.2, 0.5, 1.0] * 3)]
    styles = ["salsa"] * 9 + ["indian"] * 9
    terc = tercile_pieces(pieces, styles)
    assert [len(terc[k]) for k in ("low", "mid", "high", "all")] == [6, 6, 6, 18]
    for k, scale in (("low", 0.2), ("high", 1.0)):  # each style's own slowest / fastest third
        assert sorted(round(mean_speed(p) / mean_speed(_walk(scale, 99)), 0) for p in terc[k]) == [1, 1, 1, 2, 2, 2]
    assert tercile_pieces(pieces[:2], ["modern"] * 2)["low"] == []  # too few pieces to split: in "all" only
    fast = [_walk(1.0, 50 + i) for i in range(3)] + [_walk(2.0, 60 + i) for i in range(3)]
    ref_hi, ref_lo = _reference(terc["high"]), _reference(terc["low"])
    assert ref_hi is not None and ref_lo is not None
    assert fid_k(fast, ref_hi) < fid_k(fast, ref_lo)


def test_the_energy_table_adds_the_matching_tercile_columns() -> None:
    res = _result()
    terc = {k: {"segments": 5, "speed_ms": 0.4} for k in ("low", "mid", "high", "all")}
    res["energy"].update({"fid_k_train_tercile": {"0.0": 30.0, "1.0": 50.0},
                          "fid_k_held_out_tercile": {"0.0": 90.0, "1.0": 400.0},
                          "tercile_of_level": {"0.0": "low", "1.0": "high"}, "train_terciles": terc,
                          "held_out_terciles": terc, "held_out_noise_fid_k": {"low": 60.0, "mid": 70.0, "high": 80.0},
                          "train_noise_fid_k": {"low": 6.0, "mid": 7.0, "high": 8.0},
                          "uncontrolled_fid_k_held_out": 42.0})
    md = controls_markdown(res)
    assert "| 1.0 | 0.700 | 70.0 | no | 50.0 (high) | 400.0 |" in md  # the bar column is unchanged
    assert "| 0.0 | 0.300 | 45.0 | yes | 30.0 (low) | 90.0 |" in md
    assert "FID_k 60.0 / 70.0 / 80.0 apart" in md and "held-out segments: FID_k 42.0" in md
    assert "FID_k 6.0 / 7.0 / 8.0 apart" in md


def test_the_half_split_noise_floor_grows_as_the_segments_get_few() -> None:
    from engine.train.control_eval import half_split_fid

    alike = [_walk(0.5, i, frames=120) for i in range(300)]
    assert half_split_fid(alike) * 3 < half_split_fid(alike[:24])  # 69 features: 12 a side is far too few
    assert np.isnan(half_split_fid(alike[:4]))


def _styled(style: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Model vectors (upper [T, 72], lower [T, 61]) of a made-up style: noise around a mean set by ``style``."""
    rng = np.random.default_rng(seed)
    up = rng.normal(scale=0.1, size=(frames, 72)) + (0.5 if style else -0.5)
    lo = rng.normal(scale=0.1, size=(frames, 61)) + (0.3 if style else -0.3)
    return up.astype(np.float32), lo.astype(np.float32)


def test_the_switch_measure_sees_an_instant_cut_within_a_beat_and_a_late_one_not() -> None:
    """A real 0.5 s classifier (trained on two made-up styles) on a cut at frame 240: an instant cut is seen within
    one beat, the first window after it is new; a dance that changes 1.5 s after the switch is not within one beat."""
    from engine.train.control_eval import SWITCH_WINDOW, _switch_measure, _within_beat
    from engine.train.style_classifier import train_style_classifier

    clf = train_style_classifier([("indian", *_styled(0, 300, 1)), ("salsa", *_styled(1, 300, 2))],
                                 window=SWITCH_WINDOW)
    sf = 240

    def cut(at: int, seed: int) -> dict[str, float]:
        a, b = _styled(1, at, seed), _styled(0, 360 - at, seed + 1)
        return _switch_measure(clf, np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]), sf, "salsa",
                               "indian", SWITCH_WINDOW)

    now, late = cut(sf, 3), cut(sf + 45, 5)
    assert now["acc_before"] == 1.0 and now["acc_after"] == 1.0 and 0.0 < now["latency"] <= 0.5
    assert now["first"] == now["latency"] and late["latency"] > 1.5
    beats = np.array([0.5, 0.5])
    assert _within_beat(np.array([now["latency"], late["latency"]]), beats, SWITCH_WINDOW) == 0.5
    assert np.isnan(_switch_measure(clf, *_styled(0, 200, 7), sf, "salsa", "indian", SWITCH_WINDOW)["latency"])


def test_the_genre_section_shows_the_reference_rows() -> None:
    res = _result()
    g = res["genre_switch"]
    ref = {"switched": 1.0, "latency_s_p50": 0.43, "latency_s_p90": 0.5, "within_one_beat": 1.0,
           "first_within_one_beat": 1.0, "style_acc_before": 1.0, "style_acc_after_1s": 1.0}
    g.update({"within_one_beat": 0.5, "first_within_one_beat": 0.6, "style_acc_after_1s": 0.8,
              "new_all_along": dict(ref, within_one_beat=0.7), "real_cut": ref})
    md = controls_markdown(res)
    assert "| switched at 8 s | 75 % | 0.60 | 1.50 | 50 % | 60 % | 90 % | 80 % |" in md
    assert "| new style all along | 100 % | 0.43 | 0.50 | 70 % |" in md and "| real takes cut at 8 s |" in md


def test_the_independent_style_check_reads_the_new_style_and_is_nearer_its_own_segments() -> None:
    """The 4 s after a switch of a made-up style: read as it by a 4 s classifier (trained on the two styles) and
    nearer (FID_k) the real segments of its own style than of the other."""
    from engine.train import metrics as M
    from engine.train.control_eval import _style_check
    from engine.train.evaluate import points
    from engine.train.style_classifier import train_style_classifier

    clf4 = train_style_classifier([("indian", *_styled(0, 600, 1)), ("salsa", *_styled(1, 600, 2))])
    ref = {st: M.segment_features([points(*_styled(k, 900, 10 + k))], 30.0)[0] for k, st in enumerate(("indian",
                                                                                                       "salsa"))}
    after = []
    for seed in range(6):
        up, lo = _styled(0, 120, 20 + seed)
        after.append(("indian", up, lo, points(up, lo)))
    chk = _style_check(clf4, after, ref)
    assert chk["style_acc_4s"] == {"indian": 1.0} and chk["style_acc_4s_mean"] == 1.0
    assert chk["fid_k_own_style"]["indian"] < chk["fid_k_other_styles"]["indian"]


def test_the_switch_fid_bar_is_the_uncontrolled_dances_fid_over_the_same_4_s() -> None:
    """The bar of the 4 s after a switch is 1.5 x the uncontrolled dances' FID_k over those same 4 s (one segment per
    dance, as the switched figure), not over all their segments (the bar before session 13, kept beside it): the
    same dances measured on fewer segments read higher by FID's small-sample bias alone, so the old bar was stricter
    than the uncontrolled dances themselves meet."""
    from engine.train import metrics as M
    from engine.train.control_eval import FID_BAR, fid_k, switch_fid_bar

    ref = M.segment_features([_walk(0.5, 100 + i) for i in range(100)], 30.0)[0]
    base = [_walk(0.5, i) for i in range(24)]
    bar = switch_fid_bar(base, 240, 120, (ref, ref))
    same = fid_k([p[240:360] for p in base], (ref, ref))
    assert bar["uncontrolled_fid_k_4s"] == same and bar["fid_bar_4s"] == FID_BAR * same
    assert bar["fid_bar_4s_all_segments"] == FID_BAR * fid_k(base, (ref, ref))
    assert bar["fid_bar_4s_all_segments"] < bar["fid_bar_4s"]  # 72 segments against 24 of the same walks


def test_seed_offset_gives_other_dances_on_the_same_music() -> None:
    """``eval --controls --seed-offset N``: pair i dances on the same clip with seed i + N."""
    from types import SimpleNamespace

    from engine.train.control_eval import _clips

    n = 400
    music = SimpleNamespace(features=np.zeros((n, 40), np.float32), period_s=np.full(n, 0.5),
                            next_beat_s=np.full(n, 0.1) + 0.5 * np.ceil(np.arange(n) / 15.0))
    val = [SimpleNamespace(music=music, n_frames=n, genre=g, name=f"take{g}") for g in (1, 11)]
    a, b = _clips(val, 3, 12.0), _clips(val, 3, 12.0, seed_offset=48)  # type: ignore[arg-type]
    assert [c[3] for c in a] == [0, 1, 2] and [c[3] for c in b] == [48, 49, 50]
    assert [c[2] for c in a] == [c[2] for c in b] == ["salsa", "indian", "salsa"]
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))


def test_the_genre_section_shows_the_diagnostic_and_the_independent_checks() -> None:
    res = _result()
    g = res["genre_switch"]
    ref = {"switched": 1.0, "latency_s_p50": 0.43, "latency_s_p90": 0.5, "within_one_beat": 1.0,
           "first_within_one_beat": 1.0, "style_acc_before": 1.0, "style_acc_after_1s": 1.0}
    chk = {"style_acc_4s": {"indian": 0.5, "modern": 1.0, "salsa": 0.25}, "fid_k_own_style": {"indian": 40.0},
           "fid_k_other_styles": {"indian": 60.0}}
    g.update({"within_one_beat": 0.5, "first_within_one_beat": 0.6, "style_acc_after_1s": 0.8,
              "new_all_along": dict(ref, within_one_beat=0.7), "real_cut": ref,
              "switch_no_stage_pull": dict(ref, **chk), "uncontrolled_style_acc_4s": {"salsa": 0.86},
              "uncontrolled_fid_k_4s": 22.0, "fid_bar_4s": 33.0, "fid_bar_4s_all_segments": 28.5})
    md = controls_markdown(res)
    assert ("bar 33.0 = 1.5 x the uncontrolled dances' FID_k over the same 4 s, 22.0; over all their 4 s segments, "
            "the bar before session 13: 28.5" in md)
    assert "| switched at 8 s, stage correction off (diagnostic) | 100 % |" in md
    assert ("| switched at 8 s, stage correction off (diagnostic) | 50 % / 100 % / 25 % | 40.0 / nan / nan | 60.0 /"
            in md)
    assert "salsa 86 %" in md


def test_a_negative_seed_offset_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    assert main(["eval", "--controls", "--seed-offset", "-1"]) == 2
    assert "--seed-offset must be >= 0, got -1" in capsys.readouterr().err


def _dancing(speeds: list[float], seed: int = 0) -> np.ndarray:
    """A dance [60 x len(speeds), 23, 3] whose 2 s windows move at these mean joint speeds (m/s): each point steps
    a random direction every frame, the root at the origin."""
    rng = np.random.default_rng(seed)
    steps = []
    for v in speeds:
        d = rng.normal(size=(60, 23, 3))
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        steps.append(d * v / 30.0 * 23 / 22)  # the root (point 0) does not move
    step = np.concatenate(steps)
    step[:, 0] = 0.0
    return np.concatenate([np.zeros((1, 23, 3)), np.cumsum(step, axis=0)])[:-1]


def test_the_stall_measure_catches_a_prompt_that_stops_the_dance() -> None:
    """The watched stall ("spinning", seed 0: 0.15 / 0.14 / 0.11 m/s in the first three 2 s windows where the dance
    without text moved 0.7-1.4 m/s; the first window here 0.16) stalls; the same dance slower but moving does not;
    a calm prompt is not judged."""
    from engine.train.control_eval import FREEZE_MS, stall_measures, window_speeds

    base = [_dancing([0.76, 1.39, 1.04, 0.70, 0.47, 0.75], s) for s in range(4)]
    np.testing.assert_allclose(window_speeds(base[0]), [0.76, 1.39, 1.04, 0.70, 0.47, 0.75], rtol=0.05)
    stalled = [_dancing([0.16, 0.14, 0.11, 1.13, 0.44, 0.35], 10), *base[1:]]
    m = stall_measures(stalled, base)
    assert m["stalls"] is True and m["frozen_windows"] == pytest.approx(2 / 24)  # 0.14, 0.11 < 0.15
    assert m["frozen_dances"] == 0.25 and m["uncontrolled_frozen_windows"] == 0.0
    assert m["slowest_window_ms"] < m["uncontrolled_slowest_window_ms"]
    slower = [_dancing([0.5, 0.6, 0.4, 0.7, 0.3, 0.5], 20 + s) for s in range(4)]  # half the speed, never frozen
    m2 = stall_measures(slower, base)
    assert m2["stalls"] is False and m2["frozen_windows"] == 0.0 and m2["speed_ratio"] < 0.7
    assert stall_measures(stalled, base, calm=True)["stalls"] is None
    assert FREEZE_MS == 0.15


def test_the_text_section_says_which_prompt_stalls_the_dance() -> None:
    res = _result()
    stall = {"speed_ms": 0.2, "speed_ratio": 0.4, "slowest_window_ms": 0.11, "slowest_window_ratio": 0.3,
             "frozen_windows": 0.25, "frozen_dances": 0.5, "uncontrolled_frozen_windows": 0.02,
             "uncontrolled_slowest_window_ms": 0.3, "stalls": True}
    res["text"]["arm"]["stall"] = {"arms low": stall, "arms high": dict(stall, frozen_windows=0.0, stalls=False)}
    md = controls_markdown(res)
    assert '| "arms low" | 0.200 (x0.40) | 0.110 (x0.30) | 25.0 % (2.0 %) | 50 % | **yes** |' in md
    assert '| "arms high" | 0.200 (x0.40) | 0.110 (x0.30) | 0.0 % (2.0 %) | 50 % | no |' in md


def test_the_blends_own_speed_counts_what_it_adds_over_the_dance_it_ran_on() -> None:
    """From an in-betweening trace: a frame where the output jumps while the dance underneath is still counts; a
    frame where the dance underneath is itself that fast does not; outside the window nothing counts."""
    from types import SimpleNamespace

    from engine.models.pose_repr import metric_cmu_skeleton
    from engine.skeleton import rotations as R
    from engine.train.control_eval import blend_own_speed

    skel = metric_cmu_skeleton()
    n_j = skel.num_joints
    rest = np.tile([1.0, 0.0, 0.0, 0.0], (n_j, 1))
    swung = rest.copy()
    swung[skel.index("rShldr")] = R.axis_angle_to_quat(np.array([0.0, 0.0, 2.0]))  # the right hand ~1 m away
    root = np.array([0.0, 1.0, 0.0])
    trace = []
    for f in range(40):
        gen = swung if 20 <= f < 30 else rest  # the dance underneath swings the arm at frame 20 and back at 30
        out = swung if 10 <= f < 30 else rest  # the output jumps at frame 10 (its own), then moves with the dance
        trace.append((f, root, gen, root, out, 1.0))
    r = SimpleNamespace(skel=skel)
    got = blend_own_speed(r, trace, slice(0, 40))
    assert got["own_joint_frames_over_p999"] >= 1 and got["own_added_peak_ms"] > 20.0
    assert got["own_frames_mean_over_p999"] == 0  # one arm: the mean over 23 points stays low
    # the frame-20 swing is the dance's (the output does not move there) and frame 30 moves both: not counted
    only_dance = blend_own_speed(r, trace, slice(15, 40))
    assert only_dance["own_joint_frames_over_p999"] == 0 and only_dance["own_added_peak_ms"] < 1e-9


def test_the_keyframe_table_reports_the_new_over_frames_and_the_blends_own() -> None:
    res = _result()
    kf = dict(res["keyframes"]["all"])
    kf["blend"] = dict(kf["blend"], blend_added_speed_peak_ms=4.0, blend_added_speed_p50_ms=2.0,
                       share_new_joint_speed_over_p999=0.0001, frames_new_mean_speed_over_p999=2.0,
                       own_joint_frames_over_p999=0.0, own_frames_mean_over_p999=0.0, own_added_peak_ms=3.5)
    res["keyframes"] = dict(res["keyframes"], all=kf)
    md = controls_markdown(res)
    assert "| all | slots + blend | 1.0 | 2.0 | 100 % | 5.00 | 2.00 | 4.00 (2.00) | 0.010 % | 2 | 0 / 0 / 3.50 |" in md
    assert "blend's own" in md

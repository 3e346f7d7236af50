"""Couple measures (``engine/train/couple_eval.py``): the pair on stage, the measures end to end on a small model,
and ``groovecast eval --couple``'s errors and report section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.models.follower import save_follower
from engine.models.pose_repr import Motion, metric_cmu_skeleton
from engine.train.couple_eval import MEASURES, PER_SEED, couple_table, dance_window, evaluate_couples, pair_on_stage
from tests.models.test_follower import tiny_follower


def _standing(xz: list[tuple[float, float]]) -> Motion:
    sk = metric_cmu_skeleton()
    root = np.array([[x, 1.0, z] for x, z in xz])
    rot = np.tile(np.eye(3), (len(xz), sk.num_joints, 1, 1))
    return Motion(sk, root, rot, 30.0)


def test_pair_on_stage_sees_the_pair_from_the_front() -> None:
    lead = _standing([(0.0, 0.0), (0.0, 0.0), (1.0, 2.0)])
    follow = _standing([(0.7, 0.0), (0.0, 0.7), (1.5, 2.5)])  # side by side; one behind the other; 45 deg off
    d = pair_on_stage(lead, follow)
    assert d["visible"].tolist() == [1.0, 0.0, 1.0]
    assert np.allclose(d["far"], [0.7, 0.7, np.hypot(1.5, 2.5)])
    assert np.allclose(d["mid"], [0.35, 0.35, np.hypot(1.25, 2.25)])


def test_the_real_dance_runs_from_the_first_hold_to_the_last() -> None:
    """The partners walking into and out of the dance (apart, no hold) are left out of the real reference's dance
    window; a take with no hold at all keeps every frame."""
    hands = np.array([1.9, 1.5, 0.2, 0.6, 0.1, 0.9, 2.0])
    assert dance_window(hands) == slice(2, 5)
    assert dance_window(np.full(4, 1.0)) == slice(0, 4)


def test_couple_measures_end_to_end_on_a_small_model(small_model: Path) -> None:
    save_follower(tiny_follower(), small_model)
    res = evaluate_couples(small_model, seeds=1, seconds=2.0, progress=False)
    s = res["summary"]
    assert list(s) == ["real", "couple", "couple, unstaged", "couple, no pull/floor", "untrained follower",
                       "independent solos"]
    assert "w1_root_m" not in s["real"] and s["real"]["below_real_min_share"] == 0.0
    for row in ("couple", "couple, unstaged"):
        assert s[row]["root_min_m"] >= res["train_min_root_m"] - 1e-6  # the floor holds, staged or not
        assert {"w1_root_m", "w1_root_dance_m", "w1_hands_dance_m", "visible_share", "stage_max_m", "leader_skate_ms",
                "follower_skate_ms"} <= set(s[row])
    assert "root_dance_p95_m" in s["real"] and s["real"]["root_dance_p95_m"] <= s["real"]["root_p95_m"] + 1e-9
    assert list(res["per_seed"]["couple"]) == ["0"] and set(res["per_seed"]["couple"]["0"]) == set(PER_SEED)
    # one seed: its couples are the row's
    assert np.isclose(res["per_seed"]["couple"]["0"]["w1_root_m"], s["couple"]["w1_root_m"])
    md = "\n".join(couple_table(res))
    assert all(f"| {m} |" in md for m in MEASURES)


def test_couple_measures_of_some_rows_and_seeds(small_model: Path) -> None:
    """``rows`` and ``first_seed`` (``couple_bench --rows couple --first-seed 4``: tune on some seeds, check on
    others): only the rows asked for, from the seeds asked for (a couple of seed 1 alone is the second of seeds 0-1)."""
    save_follower(tiny_follower(), small_model)
    one = evaluate_couples(small_model, seeds=1, seconds=2.0, progress=False, rows=("couple",), first_seed=1)
    assert list(one["summary"]) == ["real", "couple"] and one["first_seed"] == 1
    two = evaluate_couples(small_model, seeds=2, seconds=2.0, progress=False, rows=("couple",))
    a, b = np.asarray(one["samples"]["couple"]["root"]), np.asarray(two["samples"]["couple"]["root"])
    k = len(a) // len(one["takes"])  # frames per take (2 s each); takes in order, each take's seeds in order
    assert len(b) == 2 * len(a) and np.array_equal(b[k : 2 * k], a[:k]) and np.array_equal(b[3 * k :], a[k:])
    assert "(seeds 1-1)" in couple_table(one)[0]
    with pytest.raises(ValueError, match="unknown couple rows"):
        evaluate_couples(small_model, seeds=1, seconds=2.0, progress=False, rows=("couples",))


def test_eval_couple_needs_a_follower(small_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--couple", "--model", str(small_model)]) == 2
    assert "no follower" in capsys.readouterr().err

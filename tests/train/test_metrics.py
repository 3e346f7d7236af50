"""Dance metrics on motions with known properties."""

from __future__ import annotations

import numpy as np
import pytest
from dance_helpers import stepping_motion

from engine.models.pose_repr import motion_to_vectors
from engine.train import metrics as M
from engine.train.evaluate import points


def _pos(bpm: float = 100.0, seconds: float = 8.0, seed: int = 0) -> np.ndarray:
    up, low = motion_to_vectors(stepping_motion(seconds, 30.0, bpm, seed=seed))
    return points(up, low)


def test_beat_align_score_prefers_motion_on_the_beat() -> None:
    pos = _pos(100.0)
    beats = np.arange(0, 8.0, 0.6)
    on = M.beat_align_score(pos, 30.0, beats)
    off = M.beat_align_score(pos, 30.0, beats + 0.3)  # music beats half-way between motion beats
    assert on > 0.8 and off < 0.3


def test_motion_beats_are_speed_minima() -> None:
    mb, _ = M.motion_beats(M.upsample(_pos(100.0), 2), 60.0)
    truth = np.arange(0.6, 7.5, 0.6) * 60.0
    d = np.abs(truth[:, None] - mb[None]).min(1)
    assert np.all(d <= 3)


def test_fid_zero_for_same_and_large_for_different() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 5))
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-5)
    assert M.frechet_distance(a, a + 3.0) == pytest.approx(45.0, rel=0.05)


def test_features_and_diversity_shapes() -> None:
    clips = [_pos(90.0, seed=1), _pos(120.0, seed=2)]
    k, g = M.segment_features(clips, 30.0)
    assert k.shape[1] == 3 * 23 and g.shape[1] == 16 and len(k) == len(g) >= 4
    assert ((g >= 0) & (g <= 1)).all()
    assert M.diversity(k) > 0.0 and M.diversity(k[:1]) == 0.0


def test_freeze_detection() -> None:
    pos = _pos(100.0, seconds=10.0)
    assert M.longest_freeze_s(pos, 30.0) < 0.5
    frozen = pos.copy()
    frozen[90:180] = frozen[90]
    assert M.longest_freeze_s(frozen, 30.0) == pytest.approx(3.0, abs=0.1)


def test_foot_skating_and_pfc_rise_when_planted_feet_slide() -> None:
    pos = _pos(100.0)
    slid = pos.copy()
    drift = np.linspace(0, 4.0, len(pos))  # the whole body glides 4 m while the legs swing in place
    slid[:, :, 0] += drift[:, None]
    assert M.foot_skating(slid, 30.0) > M.foot_skating(pos, 30.0) + 0.2
    jerky = slid.copy()
    jerky[:, :, 2] += 0.05 * np.sin(np.arange(len(pos)) * 1.3)[:, None]  # root shakes while feet move
    assert M.physical_foot_contact(jerky, 30.0) > M.physical_foot_contact(pos, 30.0)


def test_staging_measures_on_known_motion() -> None:
    """Facing from the hip joints, spin rate, stage distance and the joint speed ratio on a turning, walking body."""
    from engine.models.staging import PointFK, speed_limits, yaw_quat
    from engine.skeleton.skeleton import get_skeleton

    skel = get_skeleton("cmu")
    t = np.arange(90) / 30.0
    quat = np.zeros((90, skel.num_joints, 4))
    quat[..., 0] = 1.0
    quat[:, 0] = yaw_quat(2 * np.pi * 0.5 * t)  # half a turn per second
    root = np.zeros((90, 3))
    root[:, 0] = 0.4 * t  # 0.4 m/s along +x
    root[:, 1] = 0.9
    pos, _ = PointFK()(root, quat)
    yaw = M.facing_yaw(pos)
    assert abs(yaw[0]) < 1e-6 and abs(((yaw[15] - np.pi / 2 + np.pi) % (2 * np.pi)) - np.pi) < 1e-6
    assert np.allclose(M.spin_rates(pos, 30.0), 0.5, atol=1e-6)
    assert M.facing_share(pos) == pytest.approx(np.mean(np.abs(((np.pi * t + np.pi) % (2 * np.pi)) - np.pi)
                                                        <= np.pi / 4))
    far, p95 = M.stage_distance(pos)
    assert far == pytest.approx(0.4 * t[-1]) and p95 < far
    ratio = M.joint_speed_ratio(pos, 30.0, speed_limits("salsa"))
    assert ratio.shape == (89,) and 0.0 < ratio.max() < 1.0
    jump = pos.copy()
    jump[45:, :, 0] += 1.0  # a 1 m snap: 30 m/s for one frame
    assert M.joint_speed_ratio(jump, 30.0, speed_limits("salsa")).max() > 2.0


def test_staging_metrics_of_a_dance_as_generate_outputs_it() -> None:
    from engine.train.evaluate import staging_metrics

    up, low = motion_to_vectors(stepping_motion(6.0, 30.0, 100.0))
    m = staging_metrics(up, low, "salsa")
    assert set(m) == {"facing", "stage_max_m", "stage_p95_m", "speed_ratio_max", "speed_capped"}
    assert 0.0 <= m["facing"] <= 1.0 and m["speed_ratio_max"] <= 1.2 / 1.08 + 1e-3
    assert 0.0 <= m["speed_capped"] < 0.2  # a stepping dance at an ordinary speed is rarely held back
    jump = low.copy()
    jump[45:, 1] += 1.0  # the root 1 m higher from frame 45: a snap the cap must catch
    assert staging_metrics(up, jump, "salsa")["speed_capped"] > m["speed_capped"]

"""Salsa couples from the real takes: both dancers aligned, placement features from their real roots and headings."""

from __future__ import annotations

import numpy as np
import pytest

from engine.train.cmu_data import load_split
from engine.train.couple_data import _dancer, min_root_distance, step_placement
from tests.conftest import SHARED

SALSA = SHARED / "data" / "cmu_salsa"
pytestmark = pytest.mark.skipif(not SALSA.is_dir(), reason="shared salsa data not found")


def test_validation_couple_is_aligned_and_its_placement_is_plausible() -> None:
    take = next(t for t in load_split(SALSA, "val") if t.take == "12")
    assert take.dancer_ids == ("60", "61")  # subject 60 leads, 61 follows
    lead, follow = _dancer(take.dancers[0], False), _dancer(take.dancers[1], False)
    assert len(lead.xz) == len(follow.xz) == take.n_frames
    n = take.n_frames // 4
    feats, targ = step_placement(lead, follow, n)
    assert feats.shape == (n, 5) and targ.shape == (n, 5)
    assert np.allclose(targ[:, 0], np.linalg.norm(lead.xz - follow.xz, axis=1)[np.arange(n) * 4 + 3], atol=1e-5)
    assert np.allclose(np.linalg.norm(feats[:, :2], axis=1), feats[:, 4], atol=1e-5)
    dist = np.linalg.norm(lead.xz - follow.xz, axis=1)
    assert dist.min() > 0.2 and np.median(dist) < 1.2 and dist.max() < 3.0  # partners, not strangers
    assert np.median(targ[:, 3]) < 0.0  # mostly facing each other (relative heading beyond 90 deg)
    ml, mf = _dancer(take.dancers[0], True), _dancer(take.dancers[1], True)
    mfeats, mtarg = step_placement(ml, mf, n)
    assert np.allclose(mfeats, feats * [1, -1, 1, -1, 1], atol=1e-4)  # mirroring swaps sides, not roles
    assert np.allclose(mtarg, targ * [1, 1, -1, 1, -1], atol=1e-4)


def test_min_root_distance_is_over_every_frame() -> None:
    from engine.train.couple_data import CouplePair, Dancer
    from engine.train.dataset import MusicTrack

    def d(xz: np.ndarray) -> Dancer:
        return Dancer(upper=np.zeros((len(xz), 72)), lower=np.zeros((len(xz), 61)), xz=xz, yaw=np.zeros(len(xz)))

    z = np.zeros(0)
    music = MusicTrack(audio=z, features=z, period_s=z, next_beat_s=z, bpm=z, beats_s=z)
    a = CouplePair("a", d(np.zeros((3, 2))), d(np.array([[1.0, 0.0], [0.4, 0.0], [2.0, 0.0]])), music)
    assert min_root_distance([a]) == pytest.approx(0.4)

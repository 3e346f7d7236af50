"""The shipped couple: on a short clip the partners stand as close and as apart as the real salsa couples do."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio.source import demo_path, read_wav
from engine.models.couple import FLOOR_SIDE_M, FLOOR_TURN_DEG
from engine.models.dance_model import DEFAULT_MODEL_DIR
from engine.models.follower import has_follower
from engine.runtime.assemble import ModelSpec, build_model
from engine.runtime.offline import render
from engine.train.couple_eval import couple_distances

pytestmark = pytest.mark.skipif(not has_follower(DEFAULT_MODEL_DIR), reason="no shipped follower")

#: The smallest root distance of the real held-out couples (takes 12, 13; bench/reports/couple.md).
REAL_MIN_M = 0.254


def test_shipped_couple_keeps_a_real_partner_distance() -> None:
    audio, sr = read_wav(demo_path())
    model = build_model(ModelSpec(couple=True, performers=2, backend="torch", decode="torch", seed=0))
    r = render(model, audio, sr, seconds=12.0)
    lead, follow = (r.motions[p] for p in model.performer_ids())
    d = couple_distances(lead, follow)
    root = d["root"]
    # Real held-out couples (takes 12, 13): root distance p5 0.38 m, median 0.71 m, p95 1.98 m, max 2.1 m. Two
    # independent solo dancers drift to a median 1.7 m (p95 5 m); an untrained follower sits on the floor.
    # Facing is not asserted: the shipped couple faces each other in about 70 % of the held-out frames (real 72 %,
    # random headings 50 %), too close to chance for 12 s to decide (bench/reports/couple.md).
    # No interpenetration: never nearer than the held-out real couples' minimum (0.254 m; the floor in front of him is
    # FLOOR_FRONT_M 0.26), and beside or behind him never nearer than FLOOR_SIDE_M (0.34; real: 0.345 at least)
    assert root.min() >= REAL_MIN_M
    beside = np.abs(d["bearing"]) >= np.deg2rad(FLOOR_TURN_DEG[1])
    assert np.all(root[beside] >= FLOOR_SIDE_M - 1e-3)
    assert 0.4 <= float(np.median(root)) <= 1.2
    assert float(np.percentile(root, 95)) <= 2.5
    assert float(np.mean(d["hands"] < 0.25)) > 0.0  # the hands meet at some point of 12 s

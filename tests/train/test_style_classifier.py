"""The style classifier tells the three real styles apart on held-out takes (>= 90 % of 4 s windows)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.train.dataset import build_motion
from engine.train.sources import DEFAULT_DATA_ROOT, SOURCES, style_of
from engine.train.style_classifier import WINDOW, train_style_classifier, window_features, windows


@pytest.fixture(scope="module")
def data() -> tuple[list, list]:
    for src in SOURCES.values():
        if not (DEFAULT_DATA_ROOT / src.folder).is_dir():
            pytest.skip("shared motion data missing")
    train = [(style_of(n), u, lo) for n, u, lo in build_motion(None, "train", (1.0,), mirror=False)]
    val = [(style_of(n), u, lo) for n, u, lo in build_motion(None, "val", (1.0,), mirror=False)]
    return train, val


def test_held_out_takes_are_classified(data: tuple[list, list]) -> None:
    train, val = data
    clf = train_style_classifier(train)
    assert clf.styles == ("indian", "modern", "salsa")
    per_style = {st: clf.accuracy([(u, lo) for s, u, lo in val if s == st], st) for st in clf.styles}
    assert min(per_style.values()) >= 0.9, per_style  # every style, so the majority class cannot carry it


def test_features_ignore_facing_and_place(data: tuple[list, list]) -> None:
    """Turning the whole dance about the vertical axis and moving it does not change the features."""
    from engine.skeleton import rotations as R

    _, up, lo = data[1][0]
    up, lo = up[:WINDOW], lo[:WINDOW].copy()
    turned = lo.copy()
    turn = R.axis_rotation_matrix("Y", np.array(1.1))
    hip = R.rot6d_to_matrix(lo[:, 3:9].astype(np.float64))
    turned[:, 3:9] = R.matrix_to_rot6d(turn @ hip)
    v = lo[:, [0, 2]].astype(np.float64) @ turn[[0, 2]][:, [0, 2]].T
    turned[:, 0], turned[:, 2] = v[:, 0], v[:, 1]
    np.testing.assert_allclose(window_features(up, turned), window_features(up, lo), atol=1e-4)
    assert windows(up, lo).shape == (1, 272)

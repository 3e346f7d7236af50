"""Every training source is humanly plausible at its stated rate, and a wrong rate is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.models.pose_repr import Motion
from engine.skeleton.bvh import read_bvh
from engine.train.cmu_data import load_source_motion
from engine.train.plausibility import MotionStats, motion_stats, source_violations
from engine.train.sources import DEFAULT_DATA_ROOT, SOURCES

# Every 2nd take of each source keeps this test to a few seconds (both salsa dancers of each).
_STRIDE = 2


@pytest.fixture(scope="module")
def clips() -> dict[str, list[Motion]]:
    out: dict[str, list[Motion]] = {}
    for style, src in SOURCES.items():
        folder = DEFAULT_DATA_ROOT / src.folder
        if not folder.is_dir():
            pytest.skip(f"shared data not found at {folder}")
        takes = src.list_takes(folder)
        files = [f for t in sorted(takes)[::_STRIDE] for f in takes[t]]  # every dancer of every 2nd take
        out[style] = [load_source_motion(f, src) for f in files]
    return out


def _at(ms: list[Motion], factor: float) -> list[MotionStats]:
    return [motion_stats(Motion(m.skeleton, m.root_pos, m.rot, m.fps * factor)) for m in ms]


def test_every_source_is_plausible_at_its_true_rate(clips: dict[str, list[Motion]]) -> None:
    for style, ms in clips.items():
        assert source_violations(_at(ms, 1.0)) == [], style


def test_salsa_read_at_the_header_rate_is_caught(clips: dict[str, list[Motion]]) -> None:
    """The error this project shipped: the salsa headers say 120 fps; read so, the dance is implausible."""
    src = SOURCES["salsa"]
    f = DEFAULT_DATA_ROOT / src.folder / "61_01_scaled.bvh"
    assert read_bvh(f).fps == pytest.approx(src.header_fps, rel=1e-3)  # the header really says 120
    assert src.fps == 60.0
    wrong = [Motion(m.skeleton, m.root_pos, m.rot, src.header_fps) for m in clips["salsa"]]
    v = source_violations([motion_stats(m) for m in wrong])
    assert any("root_speed" in x for x in v) and any("spin" in x for x in v), v


@pytest.mark.parametrize(("style", "factor"), [("indian", 2.0), ("modern", 2.0), ("salsa", 0.5), ("indian", 0.5)])
def test_other_wrong_rates_are_caught(clips: dict[str, list[Motion]], style: str, factor: float) -> None:
    assert source_violations(_at(clips[style], factor)) != []


def test_sources_state_rate_and_evidence() -> None:
    for src in SOURCES.values():
        assert src.fps > 0 and src.why
        assert not set(src.train_takes) & set(src.val_takes)


def test_loaders_use_the_true_rate_not_the_header() -> None:
    src = SOURCES["salsa"]
    f = DEFAULT_DATA_ROOT / src.folder / "60_12_scaled.bvh"
    if not f.is_file():
        pytest.skip("shared salsa data missing")
    m = load_source_motion(f, src)
    assert m.fps == 60.0
    assert m.n_frames == read_bvh(f).num_frames


def test_indian_drops_its_tpose_and_is_metric(tmp_path: Path) -> None:
    src = SOURCES["indian"]
    f = DEFAULT_DATA_ROOT / src.folder / "indian_07.bvh"
    if not f.is_file():
        pytest.skip("shared Indian data missing")
    m = load_source_motion(f, src)
    assert m.n_frames == read_bvh(f).num_frames - 1
    assert 0.6 < float(m.root_pos[:, 1].mean()) < 1.1  # hip height in metres, floor at 0

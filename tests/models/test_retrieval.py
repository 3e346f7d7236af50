"""The retrieval motion model over real capture: the index, beat-locked playback, cuts, many performers."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from engine.models.capture import capture_files, load_take
from engine.models.capture_sources import SOURCES
from engine.models.conditioning import GENRES, token_condition
from engine.models.protocol import Controls
from engine.models.retrieval import MotionIndex, RetrievalDancer, index_for, motion_beats
from engine.skeleton import rotations as R
from engine.skeleton.skeleton import forward_kinematics
from tests.conftest import SHARED

DATA = SHARED / "data"
TAKES = ("01", "02")

pytestmark = pytest.mark.skipif(not (DATA / "cmu_salsa").is_dir(), reason="shared CMU data not found")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> MotionIndex:
    return index_for(DATA, tmp_path_factory.mktemp("retrieval"), takes={"salsa": TAKES})


def _cond(t: int, bpm: float = 120.0, first_beat_s: float = 0.25) -> np.ndarray:
    """Conditioning of step ``t`` for a steady beat grid (the live music window's layout)."""
    period = 60.0 / bpm
    f0_s = 4 * t / 30.0
    nxt = first_beat_s + np.ceil(max(0.0, f0_s - first_beat_s) / period) * period  # next beat from the step
    return token_condition(np.zeros((4, 40), np.float32), np.full(4, period), np.full(4, nxt - f0_s + 4 / 30.0), 1)


def _header_frames(path: Path) -> int:
    with path.open() as f:
        return int(next(ln for ln in f if ln.startswith("Frames:")).split()[1])


@pytest.mark.parametrize(("style", "take", "per_out_frame"), [("salsa", "01", 2), ("indian", "04", 4),
                                                              ("modern", "02", 2)])
def test_every_style_is_read_at_its_true_rate(style: str, take: str, per_out_frame: int) -> None:
    if not (DATA / SOURCES[style].folder).is_dir():
        pytest.skip(f"no {style} capture")
    path = capture_files(DATA, style, takes=(take,))[0]
    tk = load_take(path, style)
    assert tk.style == style
    # salsa: 60 fps (header 120) -> 30 fps keeps every 2nd frame; Indian: 120 -> every 4th; modern: 60 -> 2nd
    assert tk.motion.n_frames == pytest.approx(_header_frames(path) / per_out_frame, abs=2)
    speed = np.linalg.norm(np.diff(tk.motion.root_pos[:, [0, 2]], axis=0), axis=1) * 30
    assert 0.02 < float(np.median(speed)) < 1.0  # plausible travel (m/s); a wrong rate doubles or halves it


def test_index_is_cached_without_pickle(tmp_path: Path) -> None:
    a = index_for(DATA, tmp_path, takes={"salsa": ("01",)})
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as z:
        assert z["quat"].shape == a.quat.shape
    b = index_for(DATA, tmp_path, takes={"salsa": ("01",)})  # loaded from the cache
    np.testing.assert_array_equal(a.beats, b.beats)
    assert len(a.beats) > 20 and a.quat.shape[1] == 43


@pytest.mark.skipif(not all((DATA / SOURCES[s].folder).is_dir() for s in SOURCES), reason="not every style")
def test_each_performer_dances_the_capture_of_its_genre(tmp_path: Path) -> None:
    ix = index_for(DATA, tmp_path, takes={"salsa": ("01",), "indian": ("04",), "modern": ("02",)})
    model = RetrievalDancer(ix, capacity=3, seed=1)
    assert model.genres() == ["salsa", "indian", "modern"]
    styles = ("salsa", "indian", "modern")
    for s in styles:
        model.add_performer(Controls(genre=GENRES.index(s)))

    def playing() -> list[str]:
        return [GENRES[int(ix.styles[ix.take[int(c)]])] for c in model.cur[:3]]

    for t in range(60):  # 8 s at 120 BPM: several cuts each
        model.step(_cond(t))
        assert playing() == list(styles)
    assert model.cuts >= 3
    model.controls(model.performer_ids()[0]).genre = GENRES.index("modern")  # a genre control: next cut
    for t in range(60, 150):
        model.step(_cond(t))
    assert playing() == ["modern", "indian", "modern"]


def _dance(model: RetrievalDancer, steps: int, bpm: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    roots, quats = [], []
    for t in range(steps):
        out = model.step(_cond(t, bpm))
        roots.append(np.stack([o.root for o in out], axis=1))
        quats.append(np.stack([o.quat for o in out], axis=1))
    return np.concatenate(roots), np.concatenate(quats)  # [T, B, 3], [T, B, J, 4]


@pytest.mark.parametrize("bpm", [100.0, 124.0])
def test_motion_beats_land_on_music_beats_without_freezes_or_jumps(index: MotionIndex, bpm: float) -> None:
    model = RetrievalDancer(index, capacity=2, seed=3)
    model.add_performer()
    model.add_performer()
    root, quat = _dance(model, 225, bpm)  # 30 s
    assert model.cuts >= 3
    music = 0.25 + np.arange(0, 30, 60.0 / bpm)
    for b in range(2):
        pos = forward_kinematics(model.skeleton, root[:, b].astype(np.float64), R.quat_to_matrix(quat[:, b]))
        mb = motion_beats(pos) / 30.0
        mb = mb[mb > 2.0]
        dist = np.array([np.min(np.abs(music - t)) for t in mb])
        # motion beats sit on music beats: far closer than chance (a quarter period on average)
        assert np.median(dist) < 0.25 * 60.0 / bpm / 2, (np.median(dist), len(mb))
        speed = np.linalg.norm(np.diff(pos, axis=0), axis=-1).mean(axis=-1) * 30
        still = speed < 0.05
        run = max((len(s) for s in "".join("1" if x else "0" for x in still).split("0")), default=0)
        assert run < 15  # never frozen for half a second
        step = np.linalg.norm(np.diff(root[:, b, [0, 2]], axis=0), axis=1)
        assert step.max() < 0.15  # no teleport at cuts (4.5 m/s at most)
        dq = np.abs(np.sum(quat[1:, b] * quat[:-1, b], axis=-1)).clip(0, 1)
        assert np.degrees(2 * np.arccos(dq)).max() < 60  # no joint snaps between frames


def test_many_performers_differ_and_remove_and_rewind_work(index: MotionIndex) -> None:
    model = RetrievalDancer(index, capacity=64, seed=0)
    pids = [model.add_performer() for _ in range(64)]
    out = model.step(_cond(0))
    assert [o.pid for o in out] == pids and out[0].quat.shape == (4, 43, 4) and out[0].root.shape == (4, 3)
    assert len({round(float(np.abs(o.quat[0]).sum()), 3) for o in out}) > 16  # performers start in different places
    for t in range(1, 6):
        model.step(_cond(t))
    r = model.performer_ids().index(7)
    before = (model.cur[r], model.yaw_off[r])
    model.step(_cond(6))
    model.step(_cond(7))
    model.rewind(7, 2)
    assert (model.cur[r], model.yaw_off[r]) == before and model.n_steps[r] == 6
    model.remove_performer(3)
    assert 3 not in model.performer_ids() and len(model.step(_cond(8))) == 63
    with pytest.raises(ValueError, match="no keyframe"):
        model.set_keyframe(0, 8, np.zeros(3), np.zeros((43, 4)))


def test_a_rewind_continues_exactly_and_each_performer_keeps_its_own_streams(index: MotionIndex) -> None:
    """Rewound by 4 steps (across cuts) and given the same random streams, a performer's next frames are exactly
    those of a performer that never made the discarded steps; a step of some performers (a re-plan) leaves the
    others alone, and what one performer draws never changes another's dance (each has its own streams)."""
    def build() -> RetrievalDancer:
        m = RetrievalDancer(index, capacity=3, seed=2, segment_beats=(1, 2))  # a cut every beat or two
        for _ in range(3):
            m.add_performer()
        return m

    a, b, c = build(), build(), build()
    cuts = []
    for t in range(24):
        a.step(_cond(t))
        cuts.append(a.cuts)
        c.step(_cond(t))
    for t in range(20):
        b.step(_cond(t))
    assert cuts[-1] > cuts[-5]  # the discarded steps held cuts
    a.rewind(1, 4)
    a._rng[1] = copy.deepcopy(b._rng[1])
    a._noise[1] = copy.deepcopy(b._noise[1])
    assert a.step_group([2, 1]) == [1, 2]
    for t in range(20, 24):
        (fa,), (fb,) = a.step(_cond(t), [1]), b.step(_cond(t), [1])
        assert fa.pid == 1 and fa.step == t
        np.testing.assert_array_equal(fa.root, fb.root)
        np.testing.assert_array_equal(fa.quat, fb.quat)
    # performers 0 and 2 were not stepped by those; from here on they dance exactly as in a run without the re-plan
    for t in range(24, 40):
        for fa, fc in zip(a.step(_cond(t)), c.step(_cond(t)), strict=True):
            if fa.pid != 1:
                np.testing.assert_array_equal(fa.root, fc.root)
                np.testing.assert_array_equal(fa.quat, fc.quat)

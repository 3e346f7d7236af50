"""The snapshot ring every kind keeps for exact rewinds: keyed by step, per row, numpy and torch alike."""

from __future__ import annotations

import numpy as np
import torch

from engine.models.snapshots import SnapshotRing


def _values(rows: list[int], step: int) -> dict[str, np.ndarray | torch.Tensor]:
    r = np.asarray(rows, dtype=np.float64)
    hist = torch.full((len(rows), 2, 3), float(step)) + torch.tensor(r)[:, None, None]
    return {"xz": np.stack([r + step, r - step], axis=1), "hist": hist}


def test_the_newest_steps_of_each_row_come_back_and_older_ones_do_not() -> None:
    ring = SnapshotRing(depth=3, rows=2)
    for step in range(5):
        ring.save([0, 1], [step, step], _values([0, 1], step))
    ring.save([1], [5], _values([1], 5))  # row 1 stepped once more alone (a re-plan steps some rows)
    assert ring.load(0, 1) is None and ring.load(0, 5) is None  # too old; never saved for row 0
    snap = ring.load(0, 3)
    assert snap is not None and np.array_equal(snap["xz"], [3.0, -3.0])
    assert torch.equal(snap["hist"], torch.full((2, 3), 3.0, dtype=torch.float64))
    snap = ring.load(1, 5)
    assert snap is not None and np.array_equal(snap["xz"], [6.0, -4.0]) and float(snap["hist"][0, 0]) == 6.0
    assert ring.load(1, 2) is None  # overwritten by step 5 (a ring of 3)
    ring.save([0], [-1], _values([0], -1))  # "before the first step" is a key too
    assert ring.load(0, -1) is not None


def test_rows_move_grow_shrink_and_forget() -> None:
    ring = SnapshotRing(depth=2, rows=2)
    ring.save([0, 1], [0, 0], _values([0, 1], 0))
    ring.move_row(1, 0)  # the last row moves into a freed one
    snap = ring.load(0, 0)
    assert snap is not None and np.array_equal(snap["xz"], [1.0, 1.0])
    ring.resize(1)
    ring.resize(3)
    assert ring.load(2, 0) is None and ring.load(0, 0) is not None  # new rows hold nothing
    ring.forget(0)
    assert ring.load(0, 0) is None


def test_depth_zero_keeps_nothing_and_a_new_depth_drops_what_was_kept() -> None:
    ring = SnapshotRing(depth=0, rows=1)
    ring.save([0], [0], _values([0], 0))
    assert ring.load(0, 0) is None and not ring._store  # nothing stored, nothing allocated
    ring.set_depth(2)
    ring.save([0], [0], _values([0], 0))
    assert ring.load(0, 0) is not None
    ring.set_depth(4)
    assert ring.load(0, 0) is None


def test_torch_snapshots_written_in_inference_mode_restore_outside_it() -> None:
    ring = SnapshotRing(depth=2, rows=1)
    with torch.inference_mode():
        ring.save([0], [0], {"h": torch.ones(1, 4)})
    target = torch.zeros(1, 4)
    snap = ring.load(0, 0)
    assert snap is not None
    target[0] = snap["h"]  # a normal tensor: usable outside inference mode
    assert float(target.sum()) == 4.0
    ring.save([0], [1], {"h": torch.full((1, 4), 2.0)})  # and written again outside it


def test_a_ring_for_rewinds_keeps_one_state_more_than_the_steps_it_rewinds() -> None:
    ring = SnapshotRing.for_rewinds(2, rows=1)  # rewinding 2 steps needs the state after the 3rd newest
    for step in range(5):
        ring.save([0], [step], {"x": np.array([float(step)])})
    assert ring.load(0, 4 - 2) is not None and ring.load(0, 4 - 3) is None  # newest 4: rewinds of 2, not of 3
    ring.keep_rewinds(0)
    assert ring.depth == 0


def test_lists_of_objects_are_kept_by_reference_per_row_and_step() -> None:
    ring = SnapshotRing(depth=2, rows=2)
    marks = [("a", 0), ("b", 0)]
    ring.save([0, 1], [0, 0], {"marks": marks, "xz": np.zeros((2, 2))})
    ring.save([1], [1], {"marks": [("b", 1)], "xz": np.ones((1, 2))})
    s0, s1 = ring.load(0, 0), ring.load(1, 1)
    assert s0 is not None and s0["marks"] is marks[0]
    assert s1 is not None and s1["marks"] == ("b", 1)
    ring.resize(3)
    assert ring.load(1, 0) is not None and ring.load(1, 0)["marks"] == ("b", 0)  # type: ignore[index]

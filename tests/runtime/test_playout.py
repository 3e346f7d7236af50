"""Playout buffers and the playhead: interpolation, hold-and-blend, gentle warping, idle blend."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.playout import MotionBuffer, Playhead, wrap_phase
from engine.skeleton import rotations as R


def _quat_about_y(deg: float, joints: int = 3) -> np.ndarray:
    q = R.axis_angle_to_quat(np.array([0.0, np.radians(deg), 0.0]))
    return np.tile(q, (joints, 1)).astype(np.float32)


def _angle_deg(q: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(R.quat_to_axis_angle(q[0]))))


def _filled(n: int, deg_per_frame: float = 1.0) -> MotionBuffer:
    buf = MotionBuffer(n_joints=3, capacity=32)
    for f in range(n):
        buf.put(f, np.array([f * 0.1, 1.0, 0.0]), _quat_about_y(f * deg_per_frame), phase=(f / 15.0) % 1.0)
    return buf


def test_buffer_interpolates_between_frames_and_refuses_gaps() -> None:
    buf = _filled(5, deg_per_frame=10.0)
    root, quat, phase = buf.sample(2.5)  # type: ignore[misc]
    assert root[0] == pytest.approx(0.25)
    assert _angle_deg(quat) == pytest.approx(25.0, abs=1e-3)
    assert phase == pytest.approx(2.5 / 15.0)
    assert buf.sample(4.5) is None  # frame 5 does not exist
    assert buf.sample(7.0) is None
    buf.discard_after(2)
    assert buf.has(2) and not buf.has(3)


def test_ring_forgets_old_frames() -> None:
    buf = _filled(40)
    assert not buf.has(3)  # overwritten by frame 35
    assert buf.has(35)


def test_playhead_holds_then_blends_back_without_a_jump() -> None:
    buf = _filled(6, deg_per_frame=5.0)
    ph = Playhead(buf, np.zeros(3, np.float32), _quat_about_y(0.0), blend_frames=4.0)
    ph.set_idle(False)
    ph.idle = 0.0
    for f in range(6):
        ph.tick(float(f), None)
    held_angle = _angle_deg(ph.last_quat)
    # frames 6, 7 are late: the pose holds and each is counted
    _, q6 = ph.tick(6.0, None)
    _, q7 = ph.tick(7.0, None)
    assert ph.stats.missed == 2
    assert _angle_deg(q6) == pytest.approx(held_angle, abs=1e-4)
    assert _angle_deg(q7) == pytest.approx(held_angle, abs=1e-4)
    # the late token arrives (frames 8..11 far from the held pose): blend, not jump
    for f in range(8, 12):
        buf.put(f, np.zeros(3), _quat_about_y(60.0), phase=0.0)
    angles = [_angle_deg(ph.tick(float(f), None)[1]) for f in range(8, 12)]
    steps = np.diff([held_angle, *angles])
    assert np.all(steps > 0)  # monotone approach
    assert np.max(steps) < 60.0 - held_angle  # never the whole way in one frame
    assert angles[-1] == pytest.approx(60.0, abs=1e-3)  # fully recovered after blend_frames


def test_warp_is_gentle_and_bounded() -> None:
    buf = _filled(30)
    ph = Playhead(buf, np.zeros(3, np.float32), _quat_about_y(0.0), max_warp_rate=0.05, max_warp_frames=2.0)
    ph.idle = ph.idle_target = 0.0
    ph.set_period_frames(15.0)
    deltas = []
    for f in range(20):
        gen_phase = (f / 15.0) % 1.0
        ph.tick(float(f), tracker_phase=(gen_phase + 0.1) % 1.0)  # the music is 0.1 beat ahead
        deltas.append(ph.delta)
    steps = np.abs(np.diff([0.0, *deltas]))
    assert np.all(steps <= 0.05 + 1e-9)  # at most a 5 % speed change
    assert deltas[-1] > 0.5  # it moved toward +1.5 frames (0.1 beat of 15 frames)
    assert max(deltas) <= 2.0


def test_idle_blend_settles_and_wakes_fast() -> None:
    buf = _filled(60, deg_per_frame=1.0)
    idle_q = _quat_about_y(-40.0)
    ph = Playhead(buf, np.array([0.0, 0.9, 0.0], np.float32), idle_q)
    ph.set_idle(False)
    ph.idle = 0.0
    ph.tick(0.0, None)
    ph.set_idle(True)
    for f in range(1, 30):
        root, quat = ph.tick(float(f), None)
    assert ph.idle == pytest.approx(1.0)
    assert _angle_deg(quat) == pytest.approx(40.0, abs=1e-3)  # fully in the idle pose
    assert root[1] == pytest.approx(0.9)
    ph.set_idle(False)
    ph.tick(30.0, None)
    _, q = ph.tick(31.0, None)
    assert _angle_deg(q) == pytest.approx(31.0, abs=1e-3)  # out of idle within two frames


def test_wrap_phase() -> None:
    assert wrap_phase(0.9) == pytest.approx(-0.1)
    assert wrap_phase(-0.7) == pytest.approx(0.3)
    assert wrap_phase(0.25) == pytest.approx(0.25)


def test_bank_rows_are_independent() -> None:
    """All performers in one pass: a row whose frames are missing holds alone; intensity is per row."""
    from engine.runtime.playout import FrameRing, PlayheadBank

    ring = FrameRing(rows=3, n_joints=3, capacity=32)
    roots = np.zeros((3, 4, 3), np.float32)
    quats = np.stack([np.stack([_quat_about_y(10.0 * (r + 1) + f) for f in range(4)]) for r in range(3)])
    ring.put(np.array([0, 1, 2]), 0, roots, quats, np.zeros(4))
    ring.put(np.array([0, 2]), 4, roots[[0, 2]], quats[[0, 2]], np.zeros(4))  # row 1 misses frames 4..7
    bank = PlayheadBank(ring, np.zeros(3, np.float32), _quat_about_y(0.0))
    bank.set_idle(False)
    bank.idle[:] = 0.0
    bank.intensity[2] = 0.0  # row 2 shows the idle pose
    for f in range(4):
        _, q, missed = bank.tick(float(f), None)
        assert not missed.any()
    held = bank.last_quat[1].copy()
    _, q, missed = bank.tick(4.0, None)
    assert missed.tolist() == [False, True, False]
    assert np.allclose(q[1], held)  # row 1 holds
    assert _angle_deg(q[0]) == pytest.approx(10.0, abs=1e-3)  # row 0 plays its frame 4 (= its frame 0 pose)
    assert _angle_deg(q[2]) == pytest.approx(0.0, abs=1e-3)  # row 2 at intensity 0: idle pose
    assert bank.missed.tolist() == [0, 1, 0]

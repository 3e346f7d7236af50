"""Motion playback paced by the injected clock (FakeClock: no real waiting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.clock import FakeClock
from engine.frames import ENGINE_SAMPLE_RATE
from engine.skeleton import rotations as R
from engine.skeleton.motion import Motion, load_motion
from engine.skeleton.skeleton import CMU_SKELETON
from streams.player import MotionPlayer


def _motion(n: int = 5, fps: float = 30.0) -> Motion:
    rot = np.zeros((n, 43, 4))
    rot[..., 0] = 1
    rot[:, 0] = R.axis_angle_to_quat(np.array([[0, 0.1 * i, 0] for i in range(n)]))
    root = np.array([[0.1 * i, 0.6, 0] for i in range(n)])
    return Motion(CMU_SKELETON, fps, root, rot)


def test_paced_by_clock_and_stamped() -> None:
    clock = FakeClock(start_ns=1_000_000_000)
    player = MotionPlayer(_motion(), 30.0, clock=clock, height_m=0)
    frames = list(player.frames())
    assert [f.frame_index for f in frames] == [0, 1, 2, 3, 4]
    period = round(1e9 / 30)
    assert [f.capture_ns - 1_000_000_000 for f in frames] == [i * period for i in range(5)]
    assert frames[3].sample_index == round(3 / 30 * ENGINE_SAMPLE_RATE)
    assert frames[2].time_s == pytest.approx(2 / 30)
    np.testing.assert_allclose(frames[4].root_position, [0.4, 0.6, 0], atol=1e-6)
    assert frames[0].positions is not None and frames[0].positions.shape == (43, 3)
    assert player.stats.frames == 5 and player.stats.late_frames == 0


def test_sixty_fps_interpolates_and_loop_with_seconds() -> None:
    player = MotionPlayer(_motion(), 60.0, clock=FakeClock(), loop=True, height_m=0)
    frames = list(player.frames(seconds=0.5))
    assert len(frames) == 30  # looped past the 9-frame clip
    np.testing.assert_allclose(frames[1].root_position, [0.05, 0.6, 0], atol=1e-6)  # halfway, lerped
    yaw = R.quat_to_axis_angle(frames[1].rotations[0].astype(np.float64))[1]
    assert yaw == pytest.approx(0.05, abs=1e-6)  # slerped
    assert frames[9].frame_index == 9
    np.testing.assert_allclose(frames[9].root_position, frames[0].root_position)  # wrapped


def test_scaled_to_height_and_beat_grid(cmu_take: Path) -> None:
    player = MotionPlayer(load_motion(cmu_take), 30.0, clock=FakeClock(), bpm=120.0)
    assert player.motion.skeleton.height() == pytest.approx(1.70)
    frames = list(player.frames(seconds=2.0))
    beats = [f.frame_index for f in frames if f.beat]
    assert beats == [0, 15, 30, 45]  # 120 BPM at 30 fps: every 15 frames
    assert frames[15].beat_phase == pytest.approx(0.0, abs=1e-9) and frames[20].beat_phase == pytest.approx(1 / 3)
    assert all(0.0 <= f.energy <= 1.0 for f in frames) and max(f.energy for f in frames) > 0

"""BVH and NPZ recorders: what is written reads back as what was streamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.clock import FakeClock
from engine.frames import PoseFrame
from engine.skeleton.bvh import read_bvh
from engine.skeleton.motion import load_motion
from engine.skeleton.skeleton import forward_kinematics
from streams.player import MotionPlayer
from streams.recorders import BvhRecorder, NpzRecorder, recorder_for


def test_bvh_and_npz_round_trip(tmp_path: Path, cmu_take: Path) -> None:
    player = MotionPlayer(load_motion(cmu_take), 30.0, clock=FakeClock())
    bvh = BvhRecorder(tmp_path / "out.bvh", player.motion.skeleton)
    npz = NpzRecorder(tmp_path / "out.npz", player.motion.skeleton)
    stats = player.run([bvh, npz], seconds=1.0)
    assert stats.frames == 30
    assert bvh.close() == tmp_path / "out.bvh" and npz.close() == tmp_path / "out.npz"

    back = read_bvh(tmp_path / "out.bvh")
    assert back.num_frames == 30 and back.fps == pytest.approx(30.0, rel=1e-4)
    assert back.skeleton.joint_names == player.motion.skeleton.joint_names
    pos = forward_kinematics(back.skeleton, back.root_positions, back.local_rot_mats)
    np.testing.assert_allclose(pos, player.positions[:30], atol=2e-5)  # 6-decimal text, metres

    d = np.load(tmp_path / "out.npz")
    assert d["rotations"].shape == (30, 43, 4) and str(d["skeleton"]) == "cmu"
    np.testing.assert_array_equal(d["frame_index"], np.arange(30))
    np.testing.assert_allclose(d["positions"], player.positions[:30])
    assert list(d["parents"][:3]) == [-1, 0, 1]


def test_recorder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"use a \.bvh or \.npz"):
        recorder_for(tmp_path / "x.fbx")
    assert NpzRecorder(tmp_path / "empty.npz").close() is None
    rec = NpzRecorder(tmp_path / "bad.npz")
    rot = np.zeros((5, 4), np.float32)
    rot[:, 0] = 1
    rec(PoseFrame(0, 0, frame_index=0, performer=0, skeleton="cmu", root_position=np.zeros(3, np.float32),
                  rotations=rot))
    assert rec.skipped == 1 and rec.close() is None

"""BVH and NPZ recorders: what is written reads back as what was streamed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.clock import FakeClock
from engine.frames import PoseFrame
from engine.skeleton.bvh import read_bvh
from engine.skeleton.motion import load_motion
from engine.skeleton.skeleton import forward_kinematics
from streams.player import MotionPlayer
from streams.recorders import BvhRecorder, NpzRecorder, RecorderError, load_recording, recorder_for


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


# ------------------------------------------------------------------ streaming, crashes, full disks (issue 13 item 6)

_CHILD = r"""
import os, resource, signal, sys
import numpy as np
from engine.frames import PoseFrame
from streams.recorders import BvhRecorder, NpzRecorder
mode, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
recs = [BvhRecorder(out + "/take.bvh"), NpzRecorder(out + "/take.npz")]
if mode == "full":  # files may not grow past 200 kB: what a full disk looks like to the writer
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
rot = np.zeros((43, 4), np.float32)
rot[:, 0] = 1
for i in range(n):
    f = PoseFrame(735 * i, i, frame_index=i, performer=0, skeleton="cmu", root_position=np.array([0, 0.9, i / 100],
                  np.float32), rotations=rot, time_s=i / 30, fps=30.0)
    for r in recs:
        r(f)
if mode == "crash":
    os.kill(os.getpid(), signal.SIGKILL)
for r in recs:
    print(r.close(), r.count, r.error, flush=True)
"""


def _child(tmp_path: Path, mode: str, n: int) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-c", _CHILD, mode, str(tmp_path), str(n)], capture_output=True,
                          text=True, timeout=120, cwd=root)


def test_recordings_survive_a_crash(tmp_path: Path) -> None:
    """Issue 13 item 6: recorders wrote only at exit, so a crash lost everything."""
    r = _child(tmp_path, "crash", 75)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    back = read_bvh(tmp_path / "take.bvh")
    assert back.num_frames == 60  # two whole seconds were flushed before the kill
    np.testing.assert_allclose(back.root_positions[59], [0, 0.9, 0.59], atol=1e-6)
    assert not (tmp_path / "take.npz").exists()
    d = load_recording(tmp_path / "take.npz")  # read straight from the partial stream
    assert list(d["frame_index"]) == list(range(60)) and d["rotations"].shape == (60, 43, 4)
    out = main(["recover", str(tmp_path / "take.npz.partial")])
    assert out == 0 and not (tmp_path / "take.npz.partial").exists()
    assert len(np.load(tmp_path / "take.npz")["frame_index"]) == 60


def test_recordings_stay_readable_when_the_disk_fills(tmp_path: Path) -> None:
    """Issue 13 item 6: a full disk gave a traceback, exit 1 and a BVH that could not be read back."""
    r = _child(tmp_path, "full", 600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "cannot write" in r.stderr
    back = read_bvh(tmp_path / "take.bvh")
    assert 30 <= back.num_frames < 600 and back.num_frames % 30 == 0
    d = load_recording(tmp_path / "take.npz")  # the archive could not be written: the partial is kept
    assert 30 <= len(d["frame_index"]) < 600
    assert list(d["frame_index"]) == list(range(len(d["frame_index"])))


def test_unwritable_path_fails_before_the_show(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(RecorderError, match="cannot record to"):
        recorder_for(tmp_path / "a_file" / "take.bvh")
    with pytest.raises(RecorderError, match="cannot record to"):
        recorder_for(tmp_path / "a_file" / "take.npz")


@pytest.mark.parametrize("ignore_sigint", [False, True])
def test_sigterm_finishes_every_recording(tmp_path: Path, cmu_take: Path, ignore_sigint: bool) -> None:
    """Issue 13 item 6: SIGTERM wrote nothing; a second NPZ target was never written.

    Also when Ctrl-C is ignored, as in a background job started by a shell.
    """
    outs = [tmp_path / "a.bvh", tmp_path / "b.npz", tmp_path / "c.npz"]
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "engine", "replay", str(cmu_take)]
    for o in outs:
        cmd += ["--record", str(o)]
    pre = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=pre)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("replaying")
    time.sleep(1.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == 0, err[-2000:]
    n = read_bvh(outs[0]).num_frames
    assert n >= 30 and f"recorded {n} frames to {outs[0]}" in out
    for o in outs[1:]:
        assert len(np.load(o)["frame_index"]) == n

"""The replay and serve commands, run as real processes."""

from __future__ import annotations

import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from engine.clock import SYSTEM_CLOCK
from streams.osc import decode_packet

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))
CLI = [sys.executable, "-m", "engine"]


def test_replay_errors_are_one_clear_line(tmp_path: Path) -> None:
    r = subprocess.run([*CLI, "replay", str(tmp_path / "none.bvh")], capture_output=True, text=True,
                       timeout=30 * SCALE)
    assert r.returncode == 2 and "BVH file not found" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT hip\n{\n OFFSET 0 0\n")
    r = subprocess.run([*CLI, "replay", str(bad)], capture_output=True, text=True, timeout=30 * SCALE)
    assert r.returncode == 2 and "bad.bvh:4: OFFSET needs 3 numbers" in r.stderr


def test_replay_sends_osc_bundles_in_real_time(cmu_take: Path) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(10 * SCALE)
    port = rx.getsockname()[1]
    t0 = SYSTEM_CLOCK.monotonic_ns()
    proc = subprocess.Popen([*CLI, "replay", str(cmu_take), "--osc", f"127.0.0.1:{port}", "--profile", "vj",
                             "--seconds", "1", "--fps", "60"], stdout=subprocess.PIPE, text=True)
    frames = []
    try:
        while len(frames) < 60:
            _, msgs = decode_packet(rx.recv(65536))
            frames.append(int(msgs[0].args[0]))
        out, _ = proc.communicate(timeout=20 * SCALE)
    finally:
        proc.kill()
        rx.close()
    assert frames == list(range(60))
    assert SYSTEM_CLOCK.monotonic_ns() - t0 >= 0.95e9  # paced: one second of motion takes about a second
    assert re.search(r"done: 60 frames", out)


def test_serve_serves_viewer_until_interrupted() -> None:
    # Ctrl-C at a terminal reaches a foreground process whose SIGINT is at its default; restore that, since
    # a shell's background job (pytest started with &) would otherwise pass SIGINT ignored to the child.
    proc = subprocess.Popen([*CLI, "serve", "--ws", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/", timeout=10 * SCALE) as r:
            assert b"groovecast viewer" in r.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10 * SCALE) == 0
    finally:
        proc.kill()


def test_replay_of_an_aistpp_motion(tmp_path: Path) -> None:
    motion = tmp_path / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    poses = np.zeros((12, 72), np.float32)
    poses[:, 3 * 16 + 2] = -1.2  # left shoulder down from the T-pose
    motion.write_bytes(pickle.dumps({"smpl_poses": poses, "smpl_trans": np.tile([0, 85.0, 0], (12, 1)),
                                     "smpl_scaling": np.array([90.0])}))
    out = tmp_path / "rec.npz"
    r = subprocess.run([*CLI, "replay", str(motion), "--record", str(out), "--fps", "60", "--height", "0"],
                       capture_output=True, text=True, timeout=30 * SCALE)
    assert r.returncode == 0, r.stderr
    assert "skeleton smpl" in r.stdout
    d = np.load(out)
    assert str(d["skeleton"]) == "smpl" and d["rotations"].shape == (12, 24, 4)  # 60 fps in, 60 fps out
    np.testing.assert_allclose(d["root_position"][:, 1], 85.0 / 90.0, atol=1e-6)


def test_replay_retargets_an_iclone_file_onto_cmu(tmp_path: Path) -> None:
    """A user's BVH in another skeleton (the iClone CMU conversion) streams as the CMU skeleton, at --source-fps."""
    src = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cmu_modern" / "05_03.bvh"
    if not src.is_file():
        pytest.skip(f"shared data not found at {src}")
    out = tmp_path / "rec.npz"
    r = subprocess.run([*CLI, "replay", str(src), "--record", str(out), "--fps", "30", "--source-fps", "30"],
                       capture_output=True, text=True, timeout=60 * SCALE)
    assert r.returncode == 0, r.stderr
    assert "retargeted onto the CMU skeleton" in r.stdout and "skeleton cmu" in r.stdout
    d = np.load(out)
    assert str(d["skeleton"]) == "cmu" and d["rotations"].shape[1] == 43
    assert len(d["rotations"]) == 216  # 216 frames read at 30 fps and streamed at 30 fps (not the header's 60)
    np.testing.assert_allclose(np.linalg.norm(d["rotations"], axis=-1), 1.0, atol=1e-5)

"""liblo's oscdump (an OSC implementation we did not write) receives `groovecast replay`'s VMC stream."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.clock import SYSTEM_CLOCK, FakeClock
from engine.skeleton.motion import load_motion
from streams.osc import decode_packet, encode_message
from streams.player import MotionPlayer
from streams.prepare import bone_map
from streams.vmc import STAMP_ADDRESS, encode_vmc

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))

pytestmark = pytest.mark.skipif(shutil.which("oscdump") is None,
                                reason="oscdump not installed (Debian package liblo-tools)")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parse(line: str) -> tuple[str, str, list[str]]:
    """oscdump prints ``<timetag> <address> <typetags> <args...>`` (strings in double quotes)."""
    parts = line.split()
    return parts[1], parts[2], [p.strip('"') for p in parts[3:]]


def test_oscdump_receives_vmc_from_replay(cmu_take: Path, tmp_path: Path) -> None:
    port = _free_udp_port()
    out_path = tmp_path / "oscdump.txt"
    with open(out_path, "w") as out:
        dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        # wait until oscdump is listening: probe until it prints the probe
        probe = encode_message("/probe", (1,))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            deadline = SYSTEM_CLOCK.monotonic_ns() + int(10e9 * SCALE)
            while "/probe" not in out_path.read_text():
                assert SYSTEM_CLOCK.monotonic_ns() < deadline, "oscdump did not start"
                s.sendto(probe, ("127.0.0.1", port))
                SYSTEM_CLOCK.sleep_until_ns(SYSTEM_CLOCK.monotonic_ns() + 50_000_000)
        r = subprocess.run(
            [sys.executable, "-m", "engine", "replay", str(cmu_take), "--osc", str(port), "--vmc-stamp",
             "--seconds", "1"],
            capture_output=True, text=True, timeout=60 * SCALE,
        )
        assert r.returncode == 0, r.stderr
        SYSTEM_CLOCK.sleep_until_ns(SYSTEM_CLOCK.monotonic_ns() + int(0.3e9 * SCALE))  # oscdump prints the rest
    finally:
        dump.terminate()
        dump.wait(timeout=10 * SCALE)

    lines = [ln for ln in out_path.read_text().splitlines() if "/probe" not in ln and ln.strip()]
    msgs = [_parse(ln) for ln in lines]
    assert {c for _, tags, _ in msgs for c in tags} <= set("ifs")  # what uOSC (EVMC4U) can parse
    names = bone_map(load_motion(cmu_take).skeleton).names
    per_frame = 4 + len(names)
    assert len(msgs) == 30 * per_frame, f"expected 30 bundles of {per_frame} messages, got {len(msgs)} messages"

    # what the same replay encodes, computed here independently of the socket path
    expect_player = MotionPlayer(load_motion(cmu_take), 30.0, clock=FakeClock())
    for k in range(30):
        frame = msgs[k * per_frame : (k + 1) * per_frame]
        assert [(a, t) for a, t, _ in frame[:4]] == [
            ("/VMC/Ext/OK", "iiii"), ("/VMC/Ext/T", "f"), (STAMP_ADDRESS, "iiss"), ("/VMC/Ext/Root/Pos", "sfffffff")
        ]
        assert frame[0][2] == ["1", "3", "0", "1"]
        assert float(frame[1][2][0]) == pytest.approx(k / 30, abs=1e-5)
        assert frame[2][2][:2] == ["0", str(k)]  # performer, frame index
        assert int(frame[2][2][2]) == round(k / 30 * 22050)  # audio sample index
        assert int(frame[2][2][3]) > 0  # src_monotonic_ns
        bones = frame[4:]
        assert all(a == "/VMC/Ext/Bone/Pos" and t == "sfffffff" for a, t, _ in bones)
        assert tuple(b[2][0] for b in bones) == names
        vals = np.array([[float(x) for x in b[2][1:]] for b in bones])  # [B, 7]: pos xyz, quat xyzw
        np.testing.assert_allclose(np.linalg.norm(vals[:, 3:], axis=1), 1.0, atol=1e-5)
        if k in (0, 17, 29):
            _, ours = decode_packet(encode_vmc(expect_player.frame_at(k, 1), expect_player.motion.skeleton, stamp=True))
            want = np.array([[float(x) for x in m.args[1:]] for m in ours[4:]])
            np.testing.assert_allclose(vals, want, atol=2e-6)  # oscdump prints 6 decimals
            root = [float(x) for x in frame[3][2][1:]]
            np.testing.assert_allclose(root, [float(x) for x in ours[3].args[1:]], atol=2e-6)
    # the hips bob at a plausible standing height for a body scaled to 1.70 m
    hips_y = [float(msgs[k * per_frame + 4][2][2]) for k in range(30)]
    assert all(0.7 < y < 1.1 for y in hips_y)

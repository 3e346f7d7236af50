"""The documented Python client command runs against a live replay (README example, run for real)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))
SCRIPT = Path(__file__).resolve().parents[2] / "clients" / "python" / "groovecast_client.py"


def test_client_script_prints_frames_and_control_reply(cmu_take: Path) -> None:
    replay = subprocess.Popen(
        [sys.executable, "-m", "engine", "replay", str(cmu_take), "--ws", "127.0.0.1:0", "--loop",
         "--seconds", str(30 * SCALE)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert replay.stdout is not None
        url = None
        for _ in range(5):
            m = re.search(r"websocket: (ws://127\.0\.0\.1:\d+/ws)", replay.stdout.readline())
            if m:
                url = m.group(1)
                break
        assert url
        r = subprocess.run(
            [sys.executable, str(SCRIPT), url, "--format", "binary", "--frames", "5",
             "--control", '{"kind": "genre", "value": "salsa"}'],
            capture_output=True, text=True, timeout=30 * SCALE,
        )
    finally:
        replay.kill()
        replay.wait(timeout=10)
    assert r.returncode == 0, r.stderr
    assert "'type': 'ack'" in r.stdout and "'kind': 'genre'" in r.stdout
    frames = [int(m) for m in re.findall(r"frame\s+(\d+)", r.stdout)]
    assert len(frames) == 5 and frames == sorted(frames)
    assert "delivery median" in r.stdout

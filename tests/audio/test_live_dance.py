"""`groovecast live` through a real audio server: JACK's dummy driver with a metronome into our input."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from jackutil import SCALE, jack_ports, start_metronome, stop_process

pytestmark = [pytest.mark.live, pytest.mark.slow]


def test_live_command_dances_to_a_jack_input(jack_server: str, small_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.npz"
    bpm = 120
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "live", "--hostapi", "JACK", "--samplerate", "48000", "--seconds", "10",
         "--model", str(small_model), "--backend", "torch", "--record", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ),
    )
    metro = None
    try:
        deadline = time.monotonic() + 60 * SCALE
        while not (ours := [p for p in jack_ports() if p.startswith("PortAudio") and ":in" in p]):
            if proc.poll() is not None:
                out_text = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"groovecast live exited early ({proc.returncode}): {out_text[-3000:]}")
            assert time.monotonic() < deadline, "groovecast live never opened its JACK input"
            time.sleep(0.2)
        metro = start_metronome(bpm, ours[0])
        stdout, _ = proc.communicate(timeout=60 * SCALE)
    finally:
        if metro is not None:
            stop_process(metro)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stdout.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "listening to" in text and "done:" in text
    rec = np.load(out)
    n = len(rec["frame_index"])
    assert 270 <= n <= 310, n  # about 10 s at 30 fps
    assert np.all(np.diff(rec["frame_index"]) == 1)
    late_bpm = rec["bpm"][rec["time_s"] > 6.0]
    assert abs(float(np.median(late_bpm)) - bpm) < 1.5  # the runtime's tracker follows the live metronome
    q = rec["rotations"]
    assert np.allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-3)
    # it danced: the pose keeps changing once the metronome plays
    moving = np.abs(np.diff(q[-90:], axis=0)).max(axis=(1, 2))
    assert np.mean(moving > 1e-4) > 0.5
    # Frames carry the capture time of the audio they were generated from. A token later than the playout's
    # wait is held and counted as missed (it has no source yet): rare, but a 2-core CI box under load can
    # produce one, so allow a few rather than none.
    assert np.mean(rec["capture_ns"][-90:] > 0) >= 0.9

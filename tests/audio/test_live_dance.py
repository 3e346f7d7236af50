"""`groovecast live` through a real audio server: JACK's dummy driver with a metronome into our input."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from jackutil import SCALE, jack_ports, launch_metronome, plug, stop_process

from engine.frames import ENGINE_SAMPLE_RATE

pytestmark = [pytest.mark.live, pytest.mark.slow]

#: Seconds of input `live` dances to (counted in audio samples, so a dummy driver that runs slow under load still
#: delivers all of them). The metronome is plugged in as soon as the input exists, and the dance is judged from
#: its first click heard, not from the start of the input: plugging in takes a while on a loaded machine.
AUDIO_SECONDS = 16


def test_live_command_dances_to_a_jack_input(jack_server: str, small_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.npz"
    bpm = 120
    metro, metro_port = launch_metronome(bpm)  # started first: its start-up is not on the clock
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "live", "--hostapi", "JACK", "--samplerate", "48000",
         "--seconds", str(AUDIO_SECONDS),
         "--model", str(small_model), "--backend", "torch", "--record", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 60 * SCALE
        while not (ours := [p for p in jack_ports() if p.startswith("PortAudio") and ":in" in p]):
            if proc.poll() is not None:
                out_text = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"groovecast live exited early ({proc.returncode}): {out_text[-3000:]}")
            assert time.monotonic() < deadline, "groovecast live never opened its JACK input"
            time.sleep(0.2)
        plug(metro_port, ours[0])
        stdout, _ = proc.communicate(timeout=(60 + 4 * AUDIO_SECONDS) * SCALE)
    finally:
        stop_process(metro)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stdout.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "listening to" in text and "done:" in text
    rec = np.load(out)
    n = len(rec["frame_index"])
    assert np.all(np.diff(rec["frame_index"]) == 1)
    # 30 fps on the audio timeline: each frame shows the next 1/30 s, except frames held while the input was lost
    # (the timeline stops): rare, but a loaded 2-core box can starve the audio thread for a moment
    dt = np.diff(rec["time_s"])
    assert np.allclose(dt[dt > 1e-9], 1.0 / 30.0, atol=1e-6)
    assert np.mean(dt <= 1e-9) <= 0.05
    # the metronome is heard from its first click (the input is silent until it is plugged in)
    clicks = np.nonzero(rec["energy"] > 0.2)[0]
    assert len(clicks), "the metronome was never heard"
    onset_s = float(rec["time_s"][clicks[0]])
    late = rec["time_s"] > onset_s + 6.0
    assert late.sum() >= 60, f"{late.sum()} frames after 6 s of clicks (first heard at {onset_s:.1f} s)"
    assert abs(float(np.median(rec["bpm"][late])) - bpm) < 1.5  # the runtime's tracker follows the live metronome
    q = rec["rotations"]
    assert n > 0 and np.allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-3)
    # it danced: the pose keeps changing once the metronome plays
    moving = np.abs(np.diff(q[-90:], axis=0)).max(axis=(1, 2))
    assert np.mean(moving > 1e-4) > 0.5
    # Frames carry the provenance of the audio they were generated from: every frame that has a source (a frame
    # whose step was not ready at its slot is held and has none) names audio from before it and not much older
    # (lookahead 0: the step's music is at most a token and an audio block old), captured in order. How many frames
    # are held is a real-time figure of the machine (bench/reports/latency.md), not asserted tightly here: a loaded
    # 2-core box holds the first frame of every token for a while.
    src = rec["capture_ns"] > 0
    assert src.mean() >= 0.5, f"{src.mean():.2f} of the frames have a source"
    lag_s = rec["time_s"][src] - rec["sample_index"][src] / ENGINE_SAMPLE_RATE
    assert lag_s.min() > -0.05 and lag_s.max() < 0.3, (lag_s.min(), lag_s.max())
    assert np.all(np.diff(rec["capture_ns"][src]) >= 0)

"""Live input through a real audio server: JACK's dummy driver, jack_metro clicking into our input port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from engine.analysis import MusicAnalyzer
from engine.frames import BeatEvent

pytestmark = [pytest.mark.live, pytest.mark.slow]

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))
TOOLS = ("jackd", "jack_metro", "jack_connect", "jack_disconnect", "jack_lsp")


def _need_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        msg = f"JACK tools missing: {missing} (scripts/setup.sh installs Debian jackd2)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5 * SCALE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5 * SCALE)


@pytest.fixture
def jack_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private jackd (dummy driver, 48 kHz, 512-frame periods) under a unique server name."""
    _need_tools()
    name = f"groovecast-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    monkeypatch.setenv("JACK_NO_AUDIO_RESERVATION", "1")
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "512"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15 * SCALE
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"jackd exited with {proc.returncode}: {err[-2000:]}")
            if subprocess.run(["jack_lsp"], capture_output=True, timeout=10 * SCALE).returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail("jackd did not come up within 15 s")
            time.sleep(0.2)
        yield name
    finally:
        # PortAudio's JACK host API asserts if it is shut down after the server is gone (at interpreter
        # exit): shut PortAudio down while jackd still runs, then bring it back up without JACK.
        import sounddevice as sd

        sd._terminate()
        _stop(proc)
        sd._initialize()


def _jack_ports() -> list[str]:
    out = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10 * SCALE).stdout
    return [p.strip() for p in out.splitlines() if p.strip()]


def test_mic_source_on_jack_detects_metronome_tempo(jack_server: str) -> None:
    from engine.audio.mic import MicSource, refresh_devices

    refresh_devices()  # PortAudio must see the JACK server started after it was first initialised
    bpm = 123
    src = MicSource(hostapi="JACK", samplerate=48000, block_size=512)
    metro = None
    try:
        src.start()
        ours = [p for p in _jack_ports() if p.startswith("PortAudio") and ":in" in p]
        assert ours, f"our input port is missing; ports: {_jack_ports()}"
        port = ours[0]
        metro_name = f"gcmetro{uuid.uuid4().hex[:6]}"
        metro = subprocess.Popen(
            ["jack_metro", "-b", str(bpm), "-f", "880", "-D", "20", "-A", "0.5", "-n", metro_name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 10 * SCALE
        while not any(p.startswith(metro_name + ":") for p in _jack_ports()):
            assert metro.poll() is None, "jack_metro exited"
            assert time.monotonic() < deadline, "jack_metro's port did not appear"
            time.sleep(0.1)
        metro_port = next(p for p in _jack_ports() if p.startswith(metro_name + ":"))
        # our input may be auto-connected to the (silent) dummy capture; take it off, plug the metronome in
        for cap in ("system:capture_1", "system:capture_2"):
            subprocess.run(["jack_disconnect", cap, port], capture_output=True, timeout=10 * SCALE)
        subprocess.run(["jack_connect", metro_port, port], check=True, timeout=10 * SCALE)

        analyzer = MusicAnalyzer()
        beats: list[BeatEvent] = []
        for block in src.blocks(max_seconds=12.0):
            beats.extend(f for f in analyzer.process(block) if isinstance(f, BeatEvent))
    finally:
        if metro is not None:
            _stop(metro)
        src.close()
    assert len(beats) >= 10, f"only {len(beats)} beats in 12 s of a {bpm} BPM metronome"
    late = [b.bpm for b in beats if b.time_s > 6.0]
    assert abs(float(np.median(late)) - bpm) < 1.0, late
    intervals = np.diff([b.time_s for b in beats if b.time_s > 6.0])
    assert abs(60.0 / float(np.median(intervals)) - bpm) < 1.5
    assert src.stats.blocks > 0

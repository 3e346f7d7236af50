"""A private jackd (dummy driver) for the live-input tests."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from jackutil import SCALE, need_jack_tools, stop_process


@pytest.fixture
def jack_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private jackd (dummy driver, 48 kHz, 2048-frame periods) under a unique server name.

    2048-frame periods (43 ms) give the clients' process callbacks room on a loaded machine: with 512 (11 ms) and the
    2 cores busy, PortAudio's input overflowed 20-50 times in 14 s (cycles lost), the metronome's clicks reached us
    up to 9 % early and the tracker measured 126-127 BPM for 120-123; with 2048, no overflow at the same load."""
    need_jack_tools()
    name = f"groovecast-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    monkeypatch.setenv("JACK_NO_AUDIO_RESERVATION", "1")
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "2048"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30 * SCALE
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"jackd exited with {proc.returncode}: {err[-2000:]}")
            if subprocess.run(["jack_lsp"], capture_output=True, timeout=10 * SCALE).returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"jackd did not come up within {30 * SCALE:g} s")
            time.sleep(0.2)
        yield name
    finally:
        # PortAudio's JACK host API asserts if it is shut down after the server is gone (at interpreter
        # exit): shut PortAudio down while jackd still runs, then bring it back up without JACK.
        import sounddevice as sd

        sd._terminate()
        stop_process(proc)
        sd._initialize()



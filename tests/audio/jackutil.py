"""JACK helpers for live-input tests: tools check, process stop, port listing, a metronome."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))
TOOLS = ("jackd", "jack_metro", "jack_connect", "jack_disconnect", "jack_lsp")


def need_jack_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        msg = f"JACK tools missing: {missing} (scripts/setup.sh installs Debian jackd2)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5 * SCALE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5 * SCALE)


def jack_ports() -> list[str]:
    out = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10 * SCALE).stdout
    return [p.strip() for p in out.splitlines() if p.strip()]




def launch_metronome(bpm: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``jack_metro`` at ``bpm``, connected to nothing; returns the process and its output port."""
    name = f"gcmetro{uuid.uuid4().hex[:6]}"
    metro = subprocess.Popen(
        ["jack_metro", "-b", str(bpm), "-f", "880", "-D", "20", "-A", "0.5", "-n", name],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 30 * SCALE
    while not (ports := [p for p in jack_ports() if p.startswith(name + ":")]):
        assert metro.poll() is None, "jack_metro exited"
        assert time.monotonic() < deadline, "jack_metro's port did not appear"
        time.sleep(0.1)
    return metro, ports[0]


def plug(metro_port: str, into_port: str) -> None:
    """Connect the metronome (alone) to ``into_port``."""
    # our input may be auto-connected to the (silent) dummy capture; take it off, plug the metronome in
    for cap in ("system:capture_1", "system:capture_2"):
        subprocess.run(["jack_disconnect", cap, into_port], capture_output=True, timeout=10 * SCALE)
    subprocess.run(["jack_connect", metro_port, into_port], check=True, timeout=10 * SCALE)


def start_metronome(bpm: int, into_port: str) -> subprocess.Popen[bytes]:
    """Start ``jack_metro`` at ``bpm`` and connect it (alone) to ``into_port``."""
    metro, port = launch_metronome(bpm)
    plug(port, into_port)
    return metro


"""OSC/WS/OSC-control addresses on the command line, and one body per OSC target with several performers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from streams.osc import decode_packet

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))


def _two_adjacent_udp_ports() -> tuple[socket.socket, socket.socket]:
    for _ in range(50):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            b.bind(("127.0.0.1", a.getsockname()[1] + 1))
        except OSError:
            a.close()
            b.close()
            continue
        for s in (a, b):
            s.settimeout(20 * SCALE)
        return a, b
    raise RuntimeError("no two adjacent free UDP ports")


def test_two_performers_one_port_each(small_model: Path) -> None:
    """`--osc PORT` with two performers: performer 0 on PORT, performer 1 on PORT + 1, never mixed."""
    a, b = _two_adjacent_udp_ports()
    port = a.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "engine", "play", "--demo", "--seconds", "1",
                             "--model", str(small_model), "--backend", "torch", "--performers", "2",
                             "--osc", str(port), "--profile", "vj"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got: dict[int, set[str]] = {0: set(), 1: set()}
        for i, s in enumerate((a, b)):
            for _ in range(20):
                _, msgs = decode_packet(s.recv(65536))
                got[i].add(msgs[0].address)
        _, err = proc.communicate(timeout=120 * SCALE)
    finally:
        proc.kill()
        a.close()
        b.close()
    assert proc.returncode == 0, err[-2000:]
    assert got == {0: {"/groovecast/0/frame"}, 1: {"/groovecast/1/frame"}}


@pytest.mark.parametrize(("argv", "message"), [
    (["--osc", "myhost"], "--osc: 'myhost' has no port"),
    (["--osc", "12345:80"], "is not an IPv4 address"),
    (["--osc", "::1:39539"], r"in brackets"),
    (["--osc", "1", "--osc", "2", "--performers", "3"], "3 performers but 2 targets"),
    (["--ws", "localhost"], "--ws: 'localhost' has no port"),
    (["--osc-control", "x:y"], "--osc-control: port in 'x:y' is not a number"),
])
def test_bad_addresses_are_one_clear_line(small_model: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                          message: str) -> None:
    assert main(["play", "--demo", "--fast", "--seconds", "0.5", "--model", str(small_model), "--backend", "torch",
                 *argv]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.count("\n") == 1


def test_replay_binds_and_sends_only_what_was_given(cmu_take: Path) -> None:
    """`--ws 0` listens on 127.0.0.1 (any free port); `--osc PORT` reaches a receiver on 127.0.0.1:PORT."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(10 * SCALE)
    proc = subprocess.Popen([sys.executable, "-m", "engine", "replay", str(cmu_take), "--seconds", "0.5",
                             "--osc", str(rx.getsockname()[1]), "--ws", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while "viewer:" not in line:
            line = proc.stdout.readline()
        assert line.startswith("viewer: http://127.0.0.1:")
        _, msgs = decode_packet(rx.recv(65536))
        assert msgs[0].address == "/VMC/Ext/OK"
        proc.communicate(timeout=30 * SCALE)
    finally:
        proc.kill()
        rx.close()
    assert proc.returncode == 0

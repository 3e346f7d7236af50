"""OSC control input: address parsing, validation, replies to the sender, and a server that never dies."""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from engine.clock import FakeClock
from engine.frames import ControlMessage
from streams.control import ControlError
from streams.osc_control import OscControlServer, osc_to_control
from streams.osc_parse import MAX_DATAGRAM

TIMEOUT = 2.0 * float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))


def test_addresses_map_to_control_objects() -> None:
    assert osc_to_control("/groovecast/control/genre", ["house"]) == {
        "type": "control", "kind": "genre", "performer": -1, "value": "house"}
    assert osc_to_control("/groovecast/control/intensity", [2, 0.5])["performer"] == 2
    assert osc_to_control("/groovecast/control/reset", [])["value"] is None
    assert osc_to_control("/groovecast/control/reset", [1])["performer"] == 1
    kf = osc_to_control("/groovecast/control/keyframe", ['{"frames_ahead": 8, "root": [0, 1, 0]}'])
    assert kf["value"] == {"frames_ahead": 8, "root": [0, 1, 0]}
    with pytest.raises(ControlError, match="not a control address"):
        osc_to_control("/VMC/Ext/OK", [1])
    with pytest.raises(ControlError, match="JSON"):
        osc_to_control("/groovecast/control/keyframe", ["{nope"])
    with pytest.raises(ControlError, match="takes"):
        osc_to_control("/groovecast/control/genre", [])


def _send(sock: socket.socket, port: int, address: str, *args: object) -> OscMessage:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    sock.sendto(b.build().dgram, ("127.0.0.1", port))
    data, _ = sock.recvfrom(4096)
    return OscMessage(data)


def test_server_validates_replies_and_survives_bad_input() -> None:
    got: list[ControlMessage] = []

    def on_control(msg: ControlMessage) -> None:
        if msg.kind == "genre" and msg.value == "polka":
            raise ValueError("unknown genre 'polka'")
        got.append(msg)

    server = OscControlServer("127.0.0.1", 0, on_control).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    try:
        reply = _send(sock, server.port, "/groovecast/control/intensity", 0, 0.25)
        assert reply.address == "/groovecast/ack" and reply.params == ["intensity"]
        reply = _send(sock, server.port, "/groovecast/control/intensity", 3.5)
        assert reply.address == "/groovecast/error" and "[0, 1]" in reply.params[0]
        reply = _send(sock, server.port, "/groovecast/control/genre", "polka")
        assert reply.address == "/groovecast/error" and "polka" in reply.params[0]
        sock.sendto(b"\x00garbage that is not OSC", ("127.0.0.1", server.port))  # answered, not fatal
        data, _ = sock.recvfrom(4096)
        assert OscMessage(data).address == "/groovecast/error" and "not valid OSC" in OscMessage(data).params[0]
        reply = _send(sock, server.port, "/groovecast/control/reset")
        assert reply.address == "/groovecast/ack"
    finally:
        sock.close()
        server.close()
    assert [(m.kind, m.performer, m.value) for m in got] == [("intensity", 0, 0.25), ("reset", -1, None)]
    assert server.rejected == 2


# ------------------------------------------------------------------------------ hostile datagrams (issue 13)

_INTENSITY = b"/groovecast/control/intensity\0\0\0,f\0\0" + struct.pack(">f", 0.5)


def _reply(sock: socket.socket) -> OscMessage:
    data, _ = sock.recvfrom(65536)
    return OscMessage(data)


@pytest.fixture
def osc_server() -> Iterator[tuple[OscControlServer, socket.socket, list[ControlMessage]]]:
    got: list[ControlMessage] = []
    server = OscControlServer("127.0.0.1", 0, got.append).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    try:
        yield server, sock, got
    finally:
        sock.close()
        t0 = time.monotonic()
        server.close()
        assert time.monotonic() - t0 < 1.5, "closing the OSC control server must not wait on client work"


def test_negative_bundle_element_size_is_answered_not_looped(osc_server) -> None:
    """Issue 13 item 1: a bundle element of size -4 made python-osc loop forever in a handler thread."""
    server, sock, got = osc_server
    sock.sendto(b"#bundle\0" + struct.pack(">Qi", 1, -4) + _INTENSITY, ("127.0.0.1", server.port))
    reply = _reply(sock)
    assert reply.address == "/groovecast/error" and "bundle element size -4" in reply.params[0]
    # the server still works (its one thread is free)
    reply = _send(sock, server.port, "/groovecast/control/reset")
    assert reply.address == "/groovecast/ack"
    assert server.bad_datagrams == 1 and [m.kind for m in got] == ["reset"]


def test_future_time_tags_apply_at_once_and_park_no_thread(osc_server) -> None:
    """Issue 13 item 2: python-osc slept in one thread per bundle until its time-tag."""
    server, sock, got = osc_server
    before = threading.active_count()
    years_ahead = (2208988800 + 3_000_000_000 + int(time.time())) << 32  # NTP seconds far in the future
    bundle = b"#bundle\0" + struct.pack(">Qi", years_ahead & (2**64 - 1), len(_INTENSITY)) + _INTENSITY
    for _ in range(50):
        sock.sendto(bundle, ("127.0.0.1", server.port))
        assert _reply(sock).address == "/groovecast/ack"
    assert threading.active_count() <= before
    assert len(got) == 50


def test_large_datagrams_are_read_whole_and_oversized_ones_refused(osc_server) -> None:
    """Issue 13 item 9: datagrams over 8,192 bytes were silently truncated."""
    server, sock, got = osc_server
    pad = " " * 9000  # JSON whitespace: a 9 KB keyframe message
    reply = _send(sock, server.port, "/groovecast/control/keyframe", '{"frames_ahead": 8,' + pad + '"root": [0, 1, 0]}')
    assert reply.address == "/groovecast/ack", reply.params
    big = "x" * (MAX_DATAGRAM + 100)
    reply = _send(sock, server.port, "/groovecast/control/genre", big)
    assert reply.address == "/groovecast/error" and "limit" in reply.params[0]
    assert [m.kind for m in got] == ["keyframe"]


def test_unparseable_datagrams_get_a_reply_and_one_log_line(osc_server, caplog) -> None:
    """Issue 13 item 9: unparseable OSC got no reply and no log line (and a flood must not flood the log)."""
    server, sock, _ = osc_server
    caplog.set_level(logging.WARNING, logger="streams.osc_control")
    for _ in range(200):
        sock.sendto(b"/x\0\0,i\0\0\1", ("127.0.0.1", server.port))  # int argument cut short
        assert _reply(sock).address == "/groovecast/error"
    lines = [r for r in caplog.records if r.name == "streams.osc_control"]
    assert 1 <= len(lines) <= 3
    assert "not valid OSC" in lines[0].getMessage() and lines[0].exc_info is None


def test_control_floods_are_rate_limited_per_sender() -> None:
    clock = FakeClock()
    got: list[ControlMessage] = []
    server = OscControlServer("127.0.0.1", 0, got.append, per_peer_rate=10, total_rate=100, clock=clock)
    try:
        for _ in range(100):
            server.handle_datagram(_INTENSITY, ("127.0.0.1", 1))
        assert len(got) == 20 and server.rate_limited == 80  # a burst of 2 x rate, then nothing
        server.handle_datagram(_INTENSITY, ("127.0.0.2", 1))  # another sender is not starved
        assert len(got) == 21
        clock.advance_ns(1_000_000_000)
        for _ in range(100):
            server.handle_datagram(_INTENSITY, ("127.0.0.1", 1))
        assert len(got) == 31  # refilled at the rate
    finally:
        server.close()


def test_exposed_osc_control_is_warned_about() -> None:
    """Issue 13 item 10: --osc-control 0.0.0.0:... bound every interface without a word."""
    from streams.osc_control import exposure_warning

    assert exposure_warning("127.0.0.1") is None and exposure_warning("::1") is None
    w = exposure_warning("0.0.0.0")
    assert w is not None and "no authentication" in w and "0.0.0.0" in w

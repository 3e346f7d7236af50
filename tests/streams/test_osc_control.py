"""OSC control input: address parsing, validation, replies to the sender, and a server that never dies."""

from __future__ import annotations

import os
import socket

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from engine.frames import ControlMessage
from streams.control import ControlError
from streams.osc_control import OscControlServer, osc_to_control

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
        sock.sendto(b"\x00garbage that is not OSC", ("127.0.0.1", server.port))  # ignored, not fatal
        reply = _send(sock, server.port, "/groovecast/control/reset")
        assert reply.address == "/groovecast/ack"
    finally:
        sock.close()
        server.close()
    assert [(m.kind, m.performer, m.value) for m in got] == [("intensity", 0, 0.25), ("reset", -1, None)]
    assert server.rejected == 2

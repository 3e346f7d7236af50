"""OSC sender over real UDP sockets, to several targets."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

from engine.frames import PoseFrame
from streams.osc import decode_packet
from streams.osc_sender import OscSender, parse_host_port

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5 * SCALE)
    return s


def test_sends_vmc_and_vj_to_two_targets(make_frame: Callable[..., PoseFrame]) -> None:
    a, b = _udp(), _udp()
    sender = OscSender([a.getsockname(), b.getsockname()], "vmc")
    sender.send(make_frame())
    for s in (a, b):
        _, msgs = decode_packet(s.recv(65536))
        assert msgs[0].address == "/VMC/Ext/OK" and len(msgs) == 45
    vj = OscSender([a.getsockname()], "vj")
    vj.send(make_frame(performer=3))
    _, msgs = decode_packet(a.recv(65536))
    assert msgs[0].address == "/groovecast/3/frame"
    assert sender.sent == 2 and sender.errors == 0
    for x in (sender, vj):
        x.close()
    a.close()
    b.close()


def test_unreachable_target_does_not_raise(make_frame: Callable[..., PoseFrame]) -> None:
    sender = OscSender([("127.0.0.1", 9)], "vmc")  # nobody listens on discard: errors are counted, not raised
    for _ in range(3):
        sender.send(make_frame())
    assert sender.sent + sender.errors == 3
    sender.close()


def test_bad_frames_are_skipped_not_raised(make_frame: Callable[..., PoseFrame]) -> None:
    rx = _udp()
    sender = OscSender([rx.getsockname()], "vmc")
    sender.send(make_frame(skeleton="nope"))
    sender.send(make_frame(rotations=make_frame().rotations[:5]))
    sender.send(make_frame(frame_index=3))
    assert sender.bad_frames == 2 and sender.sent == 1
    _, msgs = decode_packet(rx.recv(65536))
    assert msgs[2].args[1] == 3
    sender.close()
    rx.close()


def test_parse_host_port_and_profile() -> None:
    assert parse_host_port("10.0.0.2:9000") == ("10.0.0.2", 9000)
    assert parse_host_port(":39539") == ("127.0.0.1", 39539)
    assert parse_host_port("myhost", default_port=39539) == ("myhost", 39539)
    with pytest.raises(ValueError, match="not a number"):
        parse_host_port("h:port")
    with pytest.raises(ValueError, match="out of range"):
        parse_host_port("h:70000")
    with pytest.raises(ValueError, match="choose from vmc, vj"):
        OscSender([("127.0.0.1", 1)], "midi")

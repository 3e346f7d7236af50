"""OSC sender over real UDP sockets, to several targets."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

from engine.frames import PoseFrame
from streams.osc import decode_packet
from streams.osc_sender import OscSender, parse_host_port, route_targets

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
        assert msgs[0].address == "/VMC/Ext/OK" and len(msgs) == 44
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
    assert msgs[1].args[0] == pytest.approx(1 / 3)
    sender.close()
    rx.close()


def test_parse_host_port_and_profile() -> None:
    assert parse_host_port("10.0.0.2:9000") == ("10.0.0.2", 9000)
    assert parse_host_port("39539") == ("127.0.0.1", 39539)
    with pytest.raises(ValueError, match="has no port"):
        parse_host_port("myhost")
    with pytest.raises(ValueError, match="not a number"):
        parse_host_port("h:port")
    with pytest.raises(ValueError, match="out of range"):
        parse_host_port("h:70000")
    with pytest.raises(ValueError, match="choose from vmc, vj"):
        OscSender([("127.0.0.1", 1)], "midi")


def test_route_targets_one_body_per_target() -> None:
    a, b, c = ("127.0.0.1", 39539), ("10.0.0.2", 39539), ("::1", 9000)
    assert route_targets([a, b], [0]) == {0: [a, b]}  # one performer: copies to every receiver
    assert route_targets([a, b, c], [0, 1, 2]) == {0: [a], 1: [b], 2: [c]}
    assert route_targets([a], [0, 1, 2]) == {0: [a], 1: [("127.0.0.1", 39540)], 2: [("127.0.0.1", 39541)]}
    assert route_targets([a, b], [0, 1, 2], shared=True) == {0: [a, b], 1: [a, b], 2: [a, b]}
    assert route_targets([], [0, 1]) == {}
    with pytest.raises(ValueError, match="3 performers but 2 targets"):
        route_targets([a, b], [0, 1, 2])
    with pytest.raises(ValueError, match="exceed 65535"):
        route_targets([("127.0.0.1", 65535)], [0, 1])


def test_each_performer_reaches_only_its_own_target(make_frame: Callable[..., PoseFrame]) -> None:
    rx = [_udp() for _ in range(2)]
    sender = OscSender(route_targets([r.getsockname() for r in rx], [0, 1]), "vmc")
    for k in range(3):
        for p in (0, 1):
            sender.send(make_frame(performer=p, frame_index=k, time_s=p + k / 30))
    sender.send(make_frame(performer=5))  # a performer with no target is not sent anywhere
    assert sender.sent == 6 and sender.unrouted == 1
    for p, r in enumerate(rx):
        got = [decode_packet(r.recv(65536))[1][1].args[0] for _ in range(3)]  # /VMC/Ext/T of each bundle
        assert got == pytest.approx([p + k / 30 for k in range(3)], abs=1e-5)
        r.settimeout(0.2 * SCALE)
        with pytest.raises(TimeoutError):
            r.recv(65536)
        r.close()
    sender.close()


def test_shared_target_carries_the_performer_id(make_frame: Callable[..., PoseFrame]) -> None:
    rx = _udp()
    sender = OscSender(route_targets([rx.getsockname()], [0, 1], shared=True), "vmc", stamp=True)
    for p in (0, 1):
        sender.send(make_frame(performer=p))
    ids = []
    for _ in range(2):
        msgs = decode_packet(rx.recv(65536))[1]
        ids += [m.args[0] for m in msgs if m.address == "/groovecast/stamp"]
    assert ids == [0, 1]
    sender.close()
    rx.close()


def test_ipv4_and_ipv6_targets_mixed(make_frame: Callable[..., PoseFrame]) -> None:
    v4 = _udp()
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        v6.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    v6.settimeout(5 * SCALE)
    sender = OscSender([v4.getsockname(), v6.getsockname()[:2]], "vj")
    sender.send(make_frame())
    for s in (v4, v6):
        assert decode_packet(s.recv(65536))[1][0].address == "/groovecast/0/frame"
        s.close()
    assert sender.errors == 0
    sender.close()


def test_vj_pulses_go_on_their_own_and_frames_then_carry_beat_0(make_frame: Callable[..., PoseFrame]) -> None:
    rx = _udp()
    sender = OscSender({0: [rx.getsockname()], 1: [rx.getsockname()]}, "vj", pulses=True)
    sender.send(make_frame(beat=True))
    _, msgs = decode_packet(rx.recv(65536))
    beat = [m for m in msgs if m.address == "/groovecast/0/beat"]
    assert len(beat) == 1 and beat[0].args == (0,)  # the frame flag is not sent: the pulse is
    sender.send_pulse()
    got = sorted(decode_packet(rx.recv(65536))[1][0].address for _ in range(2))
    assert got == ["/groovecast/0/beat", "/groovecast/1/beat"]
    plain = OscSender([rx.getsockname()], "vj")  # without pulses: the frame flag, and send_pulse sends nothing
    plain.send_pulse()
    plain.send(make_frame(beat=True))
    _, msgs = decode_packet(rx.recv(65536))
    assert [m.args for m in msgs if m.address == "/groovecast/0/beat"] == [(1,)]
    for x in (sender, plain):
        x.close()
    rx.close()

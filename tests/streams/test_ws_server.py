"""WebSocket server on real loopback sockets: fan-out, subscriptions, controls, auth, HTTP, slow clients."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from engine.frames import ControlMessage, PoseFrame
from streams.client import PoseClient, ReceivedPose
from streams.wire_json import encode_json
from streams.ws_server import PoseServer

FrameFactory = Callable[..., PoseFrame]
SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))


def run(coro: Coroutine[Any, Any, None], seconds: float = 20) -> None:
    async def guarded() -> None:
        await asyncio.wait_for(coro, seconds * SCALE)

    asyncio.run(guarded())


def ws_url(server: PoseServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/ws{('?' + query) if query else ''}"


async def _wait_clients(server: PoseServer, n: int) -> None:
    for _ in range(int(500 * SCALE)):
        if server.stats().clients >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{n} clients did not connect in time")


def test_http_serves_viewer() -> None:
    async def main() -> None:
        async with PoseServer() as server:
            def get(path: str) -> tuple[int, str, bytes]:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5 * SCALE) as r:
                        return r.status, r.headers["Content-Type"], r.read()
                except urllib.error.HTTPError as e:
                    return e.code, e.headers["Content-Type"], e.read()

            status, ctype, body = await asyncio.to_thread(get, "/")
            assert status == 200 and ctype.startswith("text/html") and b"/viewer.js" in body
            status, ctype, body = await asyncio.to_thread(get, "/viewer.js")
            assert status == 200 and "javascript" in ctype and len(body) > 10_000
            status, _, body = await asyncio.to_thread(get, "/secret")
            assert status == 404 and b"the viewer is at /" in body

    run(main())


def test_fan_out_newest_frames_and_hello(make_frame: FrameFactory) -> None:
    async def main() -> None:
        async with PoseServer() as server:
            clients = [PoseClient(ws_url(server)) for _ in range(3)]
            for c in clients:
                await c.__aenter__()
            await _wait_clients(server, 3)
            assert clients[0].hello["skeletons"]["cmu"]["parents"][1] == 0
            for i in range(5):
                server.publish(make_frame(frame_index=i, sample_index=735 * i))
                await asyncio.sleep(0.02)
            for c in clients:
                got = [(await c.recv_pose()).frame_index for _ in range(5)]
                assert got == [0, 1, 2, 3, 4]
                await c.__aexit__()

    run(main())


def test_keeping_up_client_gets_every_frame_of_a_burst(make_frame: FrameFactory) -> None:
    """Frames published back to back (all performers of a tick, a hiccup) all reach a client that reads."""

    async def main() -> None:
        async with PoseServer(queue_frames=4) as server, PoseClient(ws_url(server)) as c:
            await _wait_clients(server, 1)
            for tick in range(30):
                for perf in range(3):  # three performers per tick, published without yielding
                    server.publish(make_frame(frame_index=tick, performer=perf))
                await asyncio.sleep(0.01)
            got = [await c.recv_pose() for _ in range(90)]
            assert [(g.frame_index, g.performer) for g in got] == [(t, p) for t in range(30) for p in range(3)]
            assert server.stats().dropped == 0

    run(main())


def test_client_queue_is_bounded_and_keeps_the_newest(make_frame: FrameFactory) -> None:
    """A burst beyond the queue drops the oldest frames of that client only, in order, newest kept."""

    async def main() -> None:
        async with PoseServer(queue_frames=3) as server, PoseClient(ws_url(server)) as c:
            await _wait_clients(server, 1)
            for i in range(10):  # no yield: the writer cannot run, the queue overflows
                server.publish(make_frame(frame_index=i))
            got = [(await c.recv_pose()).frame_index for _ in range(3)]
            assert got == [7, 8, 9]
            assert server.stats().dropped == 7

    run(main())


def test_subscribe_to_one_performer_and_binary(make_frame: FrameFactory) -> None:
    async def main() -> None:
        async with PoseServer() as server, PoseClient(ws_url(server, "performer=1&format=binary")) as c1, \
                PoseClient(ws_url(server)) as call:
            await _wait_clients(server, 2)
            for i in range(4):
                server.publish(make_frame(frame_index=i, performer=i % 2))
                await asyncio.sleep(0.02)
            p = await c1.recv_pose()
            assert (p.performer, p.frame_index) == (1, 1)
            p = await c1.recv_pose()
            assert (p.performer, p.frame_index) == (1, 3)
            assert p.positions is not None and p.positions.shape == (43, 3)
            assert [(await call.recv_pose()).performer for _ in range(4)] == [0, 1, 0, 1]
            # re-subscribe over the socket
            reply = await call.request({"type": "subscribe", "performer": 0, "format": "json"})
            assert reply == {"type": "subscribed", "v": 1, "performer": 0, "format": "json"}
            server.publish(make_frame(frame_index=10, performer=1))
            server.publish(make_frame(frame_index=11, performer=0))
            assert (await call.recv_pose()).frame_index == 11

    run(main())


def test_controls_validated_errors_replied_server_survives(make_frame: FrameFactory) -> None:
    received: list[ControlMessage] = []

    def on_control(msg: ControlMessage) -> None:
        if msg.kind == "reset":
            raise RuntimeError("engine refused")
        received.append(msg)

    async def main() -> None:
        async with PoseServer(on_control=on_control) as server, PoseClient(ws_url(server)) as c:
            server.publish(make_frame(sample_index=4410))
            await c.recv_pose()
            ack = await c.request({"type": "control", "kind": "genre", "performer": 0, "value": "salsa"})
            assert ack == {"type": "ack", "v": 1, "kind": "genre", "performer": 0}
            assert received[0].value == "salsa" and received[0].sample_index == 4410
            assert c.ws is not None
            await c.ws.send("{oops")
            err = await c.request({"type": "control", "kind": "intensity", "value": 7})
            assert err["type"] == "error" and "not valid JSON" in err["error"]
            err = await c.recv()
            assert isinstance(err, dict) and "in [0, 1]" in err["error"]
            err = await c.request({"type": "control", "kind": "reset"})
            assert "control handler failed: engine refused" in err["error"]
            err = await c.request({"type": "dance"})
            assert "unknown message type 'dance'" in err["error"]
            pong = await c.request({"type": "ping", "t": 12.5})
            assert pong["type"] == "pong" and pong["t"] == 12.5 and pong["server_ns"] > 0
            server.publish(make_frame(frame_index=98, skeleton="unknown"))  # dropped, counted, not raised
            assert server.bad_frames == 1
            server.publish(make_frame(frame_index=99))  # still serving
            assert (await c.recv_pose()).frame_index == 99
            assert server.stats().control_errors == 4 and server.stats().controls == 1

    run(main())


def test_token_and_origin() -> None:
    async def main() -> None:
        async with PoseServer(token="s3cret") as server:
            with pytest.raises(InvalidStatus) as e:
                async with connect(ws_url(server)):
                    pass
            assert e.value.response.status_code == 401
            async with PoseClient(ws_url(server, "token=s3cret")) as c:
                assert c.hello["type"] == "hello"
            with pytest.raises(InvalidStatus) as e:
                async with connect(ws_url(server, "token=s3cret"), origin="http://evil.example"):  # type: ignore[arg-type]
                    pass
            assert e.value.response.status_code == 403
            own = f"http://127.0.0.1:{server.port}"
            async with connect(ws_url(server, "token=s3cret"), origin=own):  # type: ignore[arg-type]
                pass
        async with PoseServer(allowed_origins=["https://show.example"]) as server:
            async with connect(ws_url(server), origin="https://show.example"):  # type: ignore[arg-type]
                pass
            # --allow-origin adds to the server's own page; it does not lock out its viewer (issue 13 item 9)
            async with connect(ws_url(server), origin=f"http://127.0.0.1:{server.port}"):  # type: ignore[arg-type]
                pass
            with pytest.raises(InvalidStatus):
                async with connect(ws_url(server), origin="http://evil.example"):  # type: ignore[arg-type]
                    pass

    run(main())


def test_publish_threadsafe_from_another_thread(make_frame: FrameFactory) -> None:
    async def main() -> None:
        async with PoseServer() as server, PoseClient(ws_url(server)) as c:
            await _wait_clients(server, 1)
            t = threading.Thread(target=lambda: server.publish_threadsafe(make_frame(frame_index=5)))
            t.start()
            t.join()
            assert (await c.recv_pose()).frame_index == 5

    run(main())


def _raw_ws_handshake(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small receive window: the stall shows quickly
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


@pytest.mark.slow
def test_client_that_never_reads(make_frame: FrameFactory) -> None:
    """Memory for a stalled client stays bounded; the other clients keep their frame rate."""
    write_limit = 32 * 1024

    async def main() -> None:
        async with PoseServer(write_limit=write_limit, sndbuf=16 * 1024) as server:
            stalled = await asyncio.to_thread(_raw_ws_handshake, server.port)
            fast = [PoseClient(ws_url(server)) for _ in range(3)]
            for c in fast:
                await c.__aenter__()
            await _wait_clients(server, 4)
            counts = [0, 0, 0]
            last: list[ReceivedPose | None] = [None, None, None]

            async def reader(i: int) -> None:
                while True:
                    last[i] = await fast[i].recv_pose()
                    counts[i] += 1

            readers = [asyncio.create_task(reader(i)) for i in range(3)]
            rng = np.random.default_rng(0)
            n_frames, period = 180, 1 / 60  # 3 s at 60 Hz
            max_msg = 0
            max_buffer = 0
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for i in range(n_frames):
                rot = np.zeros((43, 4), np.float32)
                rot[:, 0] = 1
                rot[:, 1:] = rng.normal(scale=0.01, size=(43, 3))
                frame = make_frame(frame_index=i, rotations=rot)
                server.publish(frame)
                max_msg = max(max_msg, len(encode_json(frame, server_ns=0)))
                for info in server.client_info():
                    assert info.pending_slots <= server.queue_frames
                    max_buffer = max(max_buffer, info.write_buffer_bytes)
                await asyncio.sleep(max(0.0, t0 + (i + 1) * period - loop.time()))
            await asyncio.sleep(0.2 * SCALE)
            infos = server.client_info()
            for r in readers:
                r.cancel()
            stalled_info = min(infos, key=lambda x: x.sent)
            # the stalled client: most frames were replaced in its slot, never queued
            assert stalled_info.dropped > n_frames // 2, stalled_info
            # every frame is accounted for: sent, replaced, waiting in the slot, or the one being written
            accounted = stalled_info.sent + stalled_info.dropped + stalled_info.pending_slots
            assert n_frames - 1 <= accounted <= n_frames, stalled_info
            # bounded: transport buffer never beyond the high-water mark plus one frame
            assert max_buffer <= write_limit + max_msg, max_buffer
            # the readers kept up: (almost) every frame, the last one included
            for i in range(3):
                assert counts[i] >= 0.9 * n_frames, counts
                assert last[i] is not None and last[i].frame_index == n_frames - 1  # type: ignore[union-attr]
            for c in fast:
                await c.__aexit__()
            stalled.close()

    run(main(), seconds=30)


def test_bad_subscribe_and_binary_messages(make_frame: FrameFactory) -> None:
    async def main() -> None:
        async with PoseServer() as server, PoseClient(ws_url(server)) as c:
            err = await c.request({"type": "subscribe", "performer": "x"})
            assert err["type"] == "error"
            assert c.ws is not None
            await c.ws.send(b"\xff\x00binary")
            err = await c.recv()
            assert isinstance(err, dict) and err["type"] == "error"
            await c.ws.send(json.dumps([1, 2]))
            err = await c.recv()
            assert isinstance(err, dict) and "JSON objects" in err["error"]

    run(main())


# ------------------------------------------------------------------------------ hostile clients (issue 13)


def test_odd_messages_get_an_error_reply_not_a_close() -> None:
    """Issue 13 item 8: these closed the connection with 1011 and a traceback."""
    async def main() -> None:
        async with PoseServer() as server, PoseClient(ws_url(server)) as c:
            assert c.ws is not None
            odd = [
                '{"type": "control", "kind": ["genre"], "value": "x"}',
                '{"type": "control", "kind": {"a": 1}, "value": "x"}',
                '{"type": "control", "kind": "intensity", "value": ' + "9" * 400 + "}",
                '{"type": "control", "kind": "genre", "performer": ' + "1" * 400 + ', "value": "x"}',
                '{"type": "ping", "t": ' + "[" * 5000 + "]" * 5000 + "}",
                "[" * 20000 + "]" * 20000,
                '{"type": ["ping"]}',
                '{"type": "subscribe", "performer": 0, "format": ["json"]}',
            ]
            for text in odd:
                await c.ws.send(text)
                err = await c.recv()
                assert isinstance(err, dict) and err["type"] == "error", (text[:60], err)
                assert len(json.dumps(err)) < 2048  # the reply quotes, never echoes a huge request
            pong = await c.request({"type": "ping", "t": 1})
            assert pong["type"] == "pong"  # the connection is still open
            assert server.stats().control_errors == len(odd)

    run(main())


def test_rejected_controls_get_the_reason_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13 item 4: each rejection logged a traceback and the client was told 'its handler failed'."""
    def on_control(msg: ControlMessage) -> None:
        raise ValueError(f"genre {msg.value!r} is not in this model")

    caplog.set_level(logging.DEBUG, logger="streams.ws_server")

    async def main() -> None:
        async with PoseServer(on_control=on_control, client_rate=1e6, control_rate=1e6) as server, \
                PoseClient(ws_url(server)) as c:
            for _ in range(500):
                err = await c.request({"type": "control", "kind": "genre", "value": "polka"})
                assert err["error"] == "genre rejected: genre 'polka' is not in this model"

    run(main())
    lines = [r for r in caplog.records if r.name == "streams.ws_server"]
    assert 1 <= len(lines) <= 3 and all(r.exc_info is None for r in lines)


def test_per_connection_rate_limit_spares_other_clients() -> None:
    async def main() -> None:
        async with PoseServer(client_rate=20) as server, PoseClient(ws_url(server)) as a, \
                PoseClient(ws_url(server)) as b:
            assert a.ws is not None
            for i in range(100):
                await a.ws.send(json.dumps({"type": "ping", "t": i}))
            replies = []
            while True:
                try:
                    replies.append(await asyncio.wait_for(a.recv(), 0.5 * SCALE))
                except TimeoutError:
                    break
            pongs = [r for r in replies if isinstance(r, dict) and r["type"] == "pong"]
            limited = [r for r in replies if isinstance(r, dict) and r["type"] == "error"]
            assert 40 <= len(pongs) <= 45  # a burst of 2 x 20, plus what refilled meanwhile
            assert len(limited) == 1 and "rate limited" in limited[0]["error"]  # told once, not 55 times
            assert (await b.request({"type": "ping", "t": 1}))["type"] == "pong"
            assert server.stats().rate_limited == 100 - len(pongs)

    run(main())


def _raw_http(port: int, headers: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SCALE) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n").encode())
        return s.recv(4096)


def test_two_origin_headers_are_refused_with_400() -> None:
    """Issue 13 item 9: two Origin headers gave HTTP 500."""
    async def main() -> None:
        async with PoseServer() as server:
            own = f"http://127.0.0.1:{server.port}"
            head = await asyncio.to_thread(_raw_http, server.port, f"Origin: {own}\r\nOrigin: http://evil.example\r\n")
            assert head.startswith(b"HTTP/1.1 400"), head[:80]
            head = await asyncio.to_thread(_raw_http, server.port, f"Origin: {own}\r\n")
            assert head.startswith(b"HTTP/1.1 101")

    run(main())


def test_token_constant_time_never_logged_failures_at_info(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13 item 10: `!=` compare, ?token= in the debug log, failed auth not logged at INFO."""
    import hmac

    import streams.ws_server as ws_mod

    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr(ws_mod.hmac, "compare_digest", spy)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="websockets")  # the CLI quiets it; -v turns it back on

    async def main() -> None:
        async with PoseServer(token="s3cret-tok") as server:
            async with PoseClient(ws_url(server, "token=s3cret-tok")) as c:
                assert c.hello["type"] == "hello"
            with pytest.raises(InvalidStatus):
                async with connect(ws_url(server, "token=wrong-guess")):
                    pass

    run(main())
    assert compared == [b"s3cret-tok", b"wrong-guess"]
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client"))
    assert "GET /ws?token=***" in text  # the server's debug log shows the request, redacted
    assert "s3cret-tok" not in text and "wrong-guess" not in text
    refusals = [r for r in caplog.records if r.name == "streams.ws_server" and "refused" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.INFO and "wrong token" in refusals[0].getMessage()

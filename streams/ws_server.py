"""WebSocket pose server: bounded per-client fan-out, performer subscriptions, control input, and the viewer page.

Each client owns a small bounded queue of encoded frames (``queue_frames`` per performer it receives); a
writer task per client sends them in order. A client that keeps up therefore receives *every* frame, even
when several arrive at once; only a client that falls behind (its queue full because its socket does not
drain) loses its oldest, stale frames. Its memory is bounded by (queue x one frame) + the websockets write
buffer (``write_limit``). Frames are encoded once per format per frame, whatever the number of clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import mimetypes
import re
import socket
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from engine.clock import SYSTEM_CLOCK, Clock
from engine.frames import ControlMessage, PoseFrame
from engine.skeleton.skeleton import Skeleton
from streams.control import ControlError, loads_bounded, parse_control
from streams.prepare import prepare
from streams.ratelimit import LogLimiter, TokenBucket
from streams.wire_binary import encode_binary
from streams.wire_json import ack_message, encode_json, error_message, hello_message, pong_message

log = logging.getLogger(__name__)

FORMATS = ("json", "binary")
#: Static files of the viewer, served from the installed package (built by clients/web, committed).
STATIC_FILES = {"/": "index.html", "/index.html": "index.html", "/viewer.js": "viewer.js", "/avatar.glb": "avatar.glb"}


#: Requests up to this size are echoed in error replies.
ECHO_LIMIT = 1024
_TOKEN_RE = re.compile(r"(token=)[^&\s\"']*")


def redact_token(text: str) -> str:
    """Replace the value of every ``token=`` query parameter with ``***``."""
    return _TOKEN_RE.sub(r"\1***", text)


class _RedactTokens(logging.Filter):
    """Keeps ``?token=...`` out of the websockets library's (debug) log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "token=" in msg:
            record.msg, record.args = redact_token(msg), None
        return True


_REDACT = _RedactTokens()


def read_static(name: str) -> bytes:
    return (resources.files("streams") / "static" / name).read_bytes()


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    performer: int = -1  # -1: every performer
    fmt: str = "json"
    queue: deque[str | bytes] = field(default_factory=deque)  # encoded frames not yet written, oldest first
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    dropped: int = 0
    bucket: TokenBucket | None = None  # inbound message rate limit of this connection
    limited_ns: int | None = None  # when this connection was last told it is rate limited


@dataclass(frozen=True)
class ClientInfo:
    """One connected client as the server sees it (for stats, tests and the bench)."""

    peer: str
    performer: int
    fmt: str
    sent: int
    dropped: int
    pending_slots: int  # frames queued for the client, not yet handed to its socket
    write_buffer_bytes: int  # bytes waiting in the websockets/asyncio transport buffer


@dataclass
class ServerStats:
    clients: int
    published: int
    sent: int
    dropped: int
    controls: int
    control_errors: int
    rate_limited: int = 0
    auth_failures: int = 0


class PoseServer:
    """Serves poses over WebSocket and the viewer over HTTP on the same port.

    Args:
        host: interface to bind; ``127.0.0.1`` unless exposing is asked for explicitly.
        port: TCP port (0 picks a free one; read :attr:`port` after :meth:`start`).
        token: if set, WebSocket clients must pass ``?token=...`` (compared in constant time, never logged).
        allowed_origins: browser Origins allowed to open a WebSocket *in addition to* this server's own
            pages (``http://<host>:<port>``, plus localhost/127.0.0.1 forms). ``["*"]``: any.
            Clients that send no Origin (non-browser) are always allowed; two Origin headers are refused.
        on_control: called on the event loop with each validated :class:`ControlMessage`.
        clock: time source for ``server_ns`` stamps.
        skeleton: skeleton override for frames (default: registered by the frame's name).
        write_limit: websockets write-buffer high-water mark per client, in bytes.
        sndbuf: if set, the kernel send buffer (SO_SNDBUF) of each client socket, bounding what the kernel
            holds for a client that does not read (default: the kernel's autotuning).
        max_clients: further connections are refused with HTTP 503.
        client_rate: inbound messages per second per connection (bursts of twice that); more are dropped,
            and the client is told so with one error a second.
        control_rate: controls per second from all connections together (bursts of twice that).
        queue_frames: frames queued per client and performer before the oldest is dropped (the client is
            behind): absorbs a burst (all performers of one tick, a scheduling hiccup) without loss.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        allowed_origins: Iterable[str] | None = None,
        on_control: Callable[[ControlMessage], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        skeleton: Skeleton | None = None,
        write_limit: int = 64 * 1024,
        sndbuf: int | None = None,
        max_clients: int = 2000,
        client_rate: float = 60.0,
        control_rate: float = 300.0,
        queue_frames: int = 4,
        groups: list[list[int]] | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self.token = token
        self.allowed_origins = None if allowed_origins is None else set(allowed_origins)
        self.on_control = on_control
        self.clock = clock
        self.skeleton = skeleton
        self.write_limit = write_limit
        self.sndbuf = sndbuf
        self.max_clients = max_clients
        if queue_frames < 1:
            raise ValueError("queue_frames must be >= 1")
        self.queue_frames = queue_frames
        self._clients: set[_Client] = set()
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_sample_index = 0
        self._performers: set[int] = set()
        self.groups = [list(g) for g in groups or []]  # performers sharing one world frame (the hello's "groups")
        self.published = 0
        self.bad_frames = 0
        self.controls = 0
        self.control_errors = 0
        self._gone_sent = 0
        self._gone_dropped = 0
        self.client_rate = client_rate
        self._control_bucket = TokenBucket(control_rate, 2 * control_rate, clock)
        self.rate_limited = 0
        self.auth_failures = 0
        self._log_client = LogLimiter(log, 1.0, clock)  # client mistakes: one line a second at most
        self._log_auth = LogLimiter(log, 1.0, clock)

    # ------------------------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for name in ("websockets", "websockets.server"):
            if _REDACT not in logging.getLogger(name).filters:
                logging.getLogger(name).addFilter(_REDACT)
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._process_request,
            write_limit=self.write_limit,
            max_size=64 * 1024,  # inbound: control messages are small
            compression=None,  # per-message deflate costs CPU per client; poses are float noise anyway
            ping_interval=20,
            ping_timeout=20,
            close_timeout=1,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 3)
            self._server = None

    async def __aenter__(self) -> PoseServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def stats(self) -> ServerStats:
        return ServerStats(
            clients=len(self._clients),
            published=self.published,
            sent=self._gone_sent + sum(c.sent for c in self._clients),
            dropped=self._gone_dropped + sum(c.dropped for c in self._clients),
            controls=self.controls,
            control_errors=self.control_errors,
            rate_limited=self.rate_limited,
            auth_failures=self.auth_failures,
        )

    def client_info(self) -> list[ClientInfo]:
        out = []
        for c in self._clients:
            transport = c.ws.transport
            out.append(ClientInfo(
                peer=str(c.ws.remote_address), performer=c.performer, fmt=c.fmt, sent=c.sent, dropped=c.dropped,
                pending_slots=len(c.queue),
                write_buffer_bytes=transport.get_write_buffer_size() if transport is not None else 0,
            ))
        return out

    # ----------------------------------------------------------------------------------- publishing

    def publish(self, frame: PoseFrame) -> None:
        """Offer a frame to every subscribed client (call on the server's event loop)."""
        self.published += 1
        self._last_sample_index = frame.sample_index
        self._performers.add(frame.performer)
        wanted = [c for c in self._clients if c.performer in (-1, frame.performer)]
        if not wanted:
            return
        server_ns = self.clock.monotonic_ns()
        try:
            p = prepare(frame, self.skeleton)
        except (KeyError, ValueError) as exc:  # a bad frame is dropped and counted; the stream goes on
            self.bad_frames += 1
            if self.bad_frames in (1, 10, 100) or self.bad_frames % 1000 == 0:
                log.warning("dropping a frame that cannot be encoded (%s); %d so far", exc, self.bad_frames)
            return
        encoded: dict[str, str | bytes] = {}
        for c in wanted:
            msg = encoded.get(c.fmt)
            if msg is None:
                msg = encode_json(p, server_ns) if c.fmt == "json" else encode_binary(p, server_ns)
                encoded[c.fmt] = msg
            bound = self.queue_frames * (len(self._performers) if c.performer == -1 else 1)
            while len(c.queue) >= bound:
                c.queue.popleft()  # the client is behind: drop its stalest frame, keep the newest
                c.dropped += 1
            c.queue.append(msg)
            c.wake.set()

    def publish_threadsafe(self, frame: PoseFrame) -> None:
        """Offer a frame from another thread (the replay/runtime thread)."""
        if self._loop is None:
            raise RuntimeError("server not started")
        self._loop.call_soon_threadsafe(self.publish, frame)

    # ------------------------------------------------------------------------------------------ HTTP

    def _origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True
        if self.allowed_origins is not None and ("*" in self.allowed_origins or origin in self.allowed_origins):
            return True
        own = {f"http://{h}:{self.port}" for h in (self.host, "127.0.0.1", "localhost", "[::1]")}
        return origin in own

    def _refuse(self, connection: ServerConnection, status: int, reason: str) -> Response:
        self.auth_failures += 1
        peer = connection.remote_address[0] if connection.remote_address else "?"
        self._log_auth.log(logging.INFO, "refused a WebSocket connection from %s: %s", peer, reason)
        return connection.respond(status, reason + "\n")

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        if not is_ws:
            name = STATIC_FILES.get(url.path)
            if name is None:
                return connection.respond(404, f"not found: {url.path} (the viewer is at /)\n")
            try:
                body = read_static(name)
            except FileNotFoundError:
                return connection.respond(500, f"viewer file {name} missing from the installed package\n")
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith("javascript"):
                ctype += "; charset=utf-8"
            headers = Headers(
                [("Content-Type", ctype), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache"),
                 ("X-Content-Type-Options", "nosniff"), ("Connection", "close")]
            )
            return Response(200, "OK", headers, body)
        origins = request.headers.get_all("Origin")
        if len(origins) > 1:
            return self._refuse(connection, 400, "more than one Origin header")
        if not self._origin_allowed(origins[0] if origins else None):
            return self._refuse(connection, 403, "origin not allowed")
        if self.token is not None:
            given = parse_qs(url.query).get("token", [""])[0]
            if not hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode("utf-8")):
                return self._refuse(connection, 401, "missing or wrong token")
        if len(self._clients) >= self.max_clients:
            return connection.respond(503, "too many clients\n")
        return None

    # ----------------------------------------------------------------------------------- WebSocket

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "/").query)
        client = _Client(ws, bucket=TokenBucket(self.client_rate, 2 * self.client_rate, self.clock))
        if self.sndbuf is not None:
            sock = ws.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        try:
            client.performer = int(query.get("performer", ["-1"])[0])
        except ValueError:
            client.performer = -1
        fmt = query.get("format", ["json"])[0]
        client.fmt = fmt if fmt in FORMATS else "json"
        await ws.send(hello_message(self.clock.monotonic_ns(), sorted(self._performers), self.groups))
        self._clients.add(client)
        writer = asyncio.create_task(self._writer(client))
        try:
            async for raw in ws:
                reply = self._on_message(client, raw)
                if reply is not None:
                    # replies go through the same connection; they are rare and small
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            self._gone_sent += client.sent
            self._gone_dropped += client.dropped
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer

    async def _writer(self, c: _Client) -> None:
        try:
            while True:
                await c.wake.wait()
                c.wake.clear()
                while c.queue:
                    msg = c.queue.popleft()
                    await c.ws.send(msg)  # waits while the client's write buffer is above write_limit
                    c.sent += 1
        except ConnectionClosed:
            return

    def _client_error(self, c: _Client, reason: str, raw: str | bytes | None = None,
                      msg: Any = None) -> str:
        """Count, log (one line a second at most) and answer a client's mistake."""
        self.control_errors += 1
        self._log_client.log(logging.INFO, "client %s: %s", c.ws.remote_address, reason)
        echo = msg if raw is not None and len(raw) <= ECHO_LIMIT else None
        return error_message(reason, echo)

    def _on_message(self, c: _Client, raw: str | bytes) -> str | None:
        """Handle one inbound message; returns the reply text (or None). Never raises."""
        if c.bucket is not None and not c.bucket.allow():
            # Over the limit: the message is dropped; the client is told once a second (replying to each
            # one would let a flood cost the server a reply per message).
            self.rate_limited += 1
            now = self.clock.monotonic_ns()
            if c.limited_ns is not None and now - c.limited_ns < 1_000_000_000:
                return None
            c.limited_ns = now
            self._log_client.log(logging.INFO, "client %s: rate limited", c.ws.remote_address)
            return error_message(f"rate limited: at most {self.client_rate:g} messages per second; "
                                 "messages beyond that are dropped")
        try:
            return self._handle_message(c, raw)
        except Exception as exc:  # a bug in handling one message must not close the connection
            self.control_errors += 1
            self._log_client.log(logging.ERROR, "client %s: message handling failed: %r", c.ws.remote_address, exc)
            return error_message(f"message could not be handled: {type(exc).__name__}")

    def _handle_message(self, c: _Client, raw: str | bytes) -> str | None:
        try:
            msg: Any = loads_bounded(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._client_error(c, f"not valid JSON: {exc}")
        if not isinstance(msg, dict):
            return self._client_error(c, "messages must be JSON objects with a 'type'")
        kind = msg.get("type")
        if kind == "ping":
            t = msg.get("t", 0)
            ok = isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
            return pong_message(t if ok else 0, self.clock.monotonic_ns())
        if kind == "subscribe":
            perf = msg.get("performer", -1)
            fmt = msg.get("format", c.fmt)
            if isinstance(perf, bool) or not isinstance(perf, int) or perf < -1 or fmt not in FORMATS:
                return self._client_error(c, f"subscribe needs performer -1 or >= 0 and format in {FORMATS}",
                                          raw, msg)
            c.performer, c.fmt = perf, fmt
            c.queue.clear()
            return json.dumps({"type": "subscribed", "v": 1, "performer": perf, "format": fmt})
        if kind == "control":
            if not self._control_bucket.allow():
                self.rate_limited += 1
                self._log_client.log(logging.WARNING, "controls rate limited (all clients together)")
                return error_message("rate limited: the server takes no more controls just now")
            try:
                ctl = parse_control(msg, self._last_sample_index, self.clock.monotonic_ns())
            except ControlError as exc:
                return self._client_error(c, str(exc), raw, msg)
            if self.on_control is not None:
                try:
                    self.on_control(ctl)  # the runtime validates what only it knows (performer, genre, joints)
                except ValueError as exc:
                    return self._client_error(c, f"{ctl.kind} rejected: {exc}", raw, msg)
                except Exception as exc:  # a failing consumer must not take the server down
                    self.control_errors += 1
                    self._log_client.log(logging.ERROR, "control handler failed on %s: %r", ctl.kind, exc)
                    return error_message(f"control handler failed: {exc}", msg if len(raw) <= ECHO_LIMIT else None)
            self.controls += 1
            return ack_message(ctl.kind, ctl.performer)
        kind_text = repr(kind)[:40]
        return self._client_error(c, f"unknown message type {kind_text}; expected ping, subscribe or control",
                                  raw, msg)

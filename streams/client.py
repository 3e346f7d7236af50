"""A small asyncio WebSocket client for pose streams (used by tests, benchmarks and clients/python)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from engine.clock import SYSTEM_CLOCK, Clock
from streams.wire_binary import BinaryPose, decode_binary
from streams.wire_json import decode_pose_json


@dataclass(frozen=True)
class ReceivedPose:
    """A pose as a client saw it, with its receive time on the (shared, same-host) monotonic clock."""

    performer: int
    frame_index: int
    sample_index: int
    src_monotonic_ns: int
    server_ns: int
    recv_ns: int
    positions: Any  # [J, 3] float32
    bpm: float
    beat: bool

    @property
    def delivery_ns(self) -> int:
        """Server publish -> client receive (same host)."""
        return self.recv_ns - self.server_ns

    @property
    def end_to_end_ns(self) -> int:
        """Source (audio capture / frame creation) -> client receive (same host)."""
        return self.recv_ns - self.src_monotonic_ns


class PoseClient:
    """Connects, reads the hello, then yields poses and other messages.

    Args:
        url: ``ws://host:port/ws`` (query ``token``, ``performer``, ``format`` optional).
        clock: clock for receive stamps; must be the server's clock for latencies to mean anything.
    """

    def __init__(self, url: str, clock: Clock = SYSTEM_CLOCK, open_timeout: float = 10.0) -> None:
        self.url = url
        self.clock = clock
        self.open_timeout = open_timeout
        self.ws: ClientConnection | None = None
        self.hello: dict[str, Any] = {}

    async def __aenter__(self) -> PoseClient:
        self.ws = await connect(self.url, open_timeout=self.open_timeout, max_size=2**22, compression=None)
        first = json.loads(await self.ws.recv())
        if first.get("type") != "hello":
            raise ValueError(f"expected a hello message first, got {first.get('type')!r}")
        self.hello = first
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def send(self, msg: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(msg))

    async def recv(self) -> ReceivedPose | dict[str, Any]:
        """The next message: a :class:`ReceivedPose`, or any other message as a dict."""
        assert self.ws is not None
        raw = await self.ws.recv()
        now = self.clock.monotonic_ns()
        if isinstance(raw, bytes):
            b: BinaryPose = decode_binary(raw)
            return ReceivedPose(b.performer, b.frame_index, b.sample_index, b.src_monotonic_ns, b.server_ns, now,
                                b.positions, b.bpm, b.beat)
        d = json.loads(raw)
        if d.get("type") != "pose":
            return dict(d)
        d = decode_pose_json(raw)
        return ReceivedPose(d["performer"], d["frame_index"], d["sample_index"], d["src_monotonic_ns"],
                            d["server_ns"], now, d["positions"], d["bpm"], d["beat"])

    async def recv_pose(self) -> ReceivedPose:
        """The next pose, skipping other messages."""
        while True:
            m = await self.recv()
            if isinstance(m, ReceivedPose):
                return m

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send a message and return the next non-pose reply."""
        await self.send(msg)
        while True:
            m = await self.recv()
            if isinstance(m, dict):
                return m

"""Run-time controls over OSC: ``/groovecast/control/<kind> [performer] [value]``, validated like WebSocket ones.

Addresses (``performer`` is an optional leading int; -1 or absent = every performer):

=====================================  ==============================================
``/groovecast/control/genre``          ``[performer] name`` (string)
``/groovecast/control/text``           ``[performer] prompt`` (string; "" clears)
``/groovecast/control/intensity``      ``[performer] x`` (float 0..1; ``energy`` too)
``/groovecast/control/keyframe``       ``[performer] json`` (the WebSocket keyframe object as JSON text)
``/groovecast/control/reset``          ``[performer]``
=====================================  ==============================================

A rejected message is answered to its sender with ``/groovecast/error <reason>``; accepted ones with
``/groovecast/ack <kind>``. Nothing a client sends can stop the server.

Datagrams are decoded by :mod:`streams.osc_parse` (hard bounds on size, nesting and arguments; time-tags
ignored: a control applies on arrival) on ONE receive thread that also validates and hands over each
control, so a flood costs that one thread and nothing more. A datagram over the size limit or that does
not parse is answered ``/groovecast/error <reason>`` and logged as one rate-limited line. Controls are
rate-limited per sender (``per_peer_rate``/s) and in total (``total_rate``/s); excess ones are answered
``/groovecast/error rate limited``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from engine.clock import SYSTEM_CLOCK, Clock
from engine.frames import ControlMessage
from streams.control import ControlError, parse_control
from streams.osc_parse import MAX_DATAGRAM, OscParseError, encode_message, parse_datagram
from streams.ratelimit import KeyedBuckets, LogLimiter, TokenBucket

log = logging.getLogger(__name__)

PREFIX = "/groovecast/control/"


def osc_to_control(address: str, args: list[Any]) -> dict[str, Any]:
    """Turn an OSC control message into the JSON-shaped control object (no validation of values).

    Raises:
        ControlError: not a control address, or arguments of the wrong shape.
    """
    if not address.startswith(PREFIX):
        raise ControlError(f"not a control address: {address!r} (expected {PREFIX}<kind>)")
    kind = address[len(PREFIX):]
    rest = list(args)
    performer = -1
    if rest and isinstance(rest[0], int) and not isinstance(rest[0], bool) and (kind == "reset" or len(rest) > 1):
        performer = rest.pop(0)
    if kind == "reset":
        if rest:
            raise ControlError("reset takes only an optional performer")
        value: Any = None
    else:
        if len(rest) != 1:
            raise ControlError(f"{kind} takes [performer] value, got {len(args)} argument(s)")
        value = rest[0]
        if kind == "keyframe":
            if not isinstance(value, str):
                raise ControlError("keyframe takes its object as JSON text")
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ControlError(f"keyframe JSON is invalid: {exc}") from None
    return {"type": "control", "kind": kind, "performer": performer, "value": value}


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def exposure_warning(host: str) -> str | None:
    """The warning to print when OSC control listens beyond this machine (it has no authentication)."""
    if host in LOOPBACK or host.startswith("127."):
        return None
    return (f"warning: OSC control listens on {host}, reachable from other machines; OSC control has no "
            "authentication: anyone who can send it UDP can steer the dance (bind 127.0.0.1 unless you need this)")


class OscControlServer:
    """One UDP receive thread handing validated :class:`ControlMessage` s to ``on_control``.

    ``on_control`` runs on the receive thread and must be quick (the runtime's ``submit_control`` is: it
    only queues); it may raise ValueError to reject a message (the reason goes back to the sender).
    Binds 127.0.0.1 by default; pass another host explicitly to expose it (there is no authentication).

    Args:
        host, port: where to listen (port 0 picks a free one; read :attr:`port`).
        on_control: consumer of each accepted control.
        per_peer_rate: controls per second accepted from one sender address (bursts of twice that).
        total_rate: controls per second accepted from all senders together (bursts of twice that).
        clock: time source of the rate limits and the log limiter.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9001,
                 on_control: Callable[[ControlMessage], None] | None = None, *,
                 per_peer_rate: float = 60.0, total_rate: float = 300.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.on_control = on_control
        self.clock = clock
        self.accepted = 0
        self.rejected = 0
        self.bad_datagrams = 0
        self.rate_limited = 0
        self.last_error = ""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(0.1)  # how often the thread looks at the stop flag
        self._peer_buckets = KeyedBuckets(per_peer_rate, 2 * per_peer_rate, clock)
        self._total = TokenBucket(total_rate, 2 * total_rate, clock)
        self._log_bad = LogLimiter(log, 1.0, clock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="groovecast-osc-control", daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> OscControlServer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the receive thread (within about 0.1 s) and close the socket."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, client = self._sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:  # ICMP errors surface here on some systems; the socket stays usable
                if self._stop.is_set():
                    return
                continue
            try:
                self.handle_datagram(data, client)
            except Exception:  # a bug here must not end the only receive thread
                log.exception("OSC control: unexpected failure handling a datagram")

    def _answer(self, client: tuple[str, int], address: str, text: str) -> None:
        with contextlib.suppress(OSError):  # the sender is gone; nothing to tell
            self._sock.sendto(encode_message(address, text[:400]), client)

    def handle_datagram(self, data: bytes, client: tuple[str, int]) -> None:
        """Decode, validate and hand over the controls of one datagram, answering its sender."""
        if len(data) > MAX_DATAGRAM:
            self._bad(client, f"datagram of {len(data)} bytes is over the {MAX_DATAGRAM}-byte limit")
            return
        try:
            messages = parse_datagram(data)
        except OscParseError as exc:
            self._bad(client, f"not valid OSC: {exc}")
            return
        for m in messages:
            self._handle(client, m.address, list(m.args))

    def _bad(self, client: tuple[str, int], reason: str) -> None:
        self.bad_datagrams += 1
        self.last_error = reason
        self._log_bad.log(logging.WARNING, "OSC control from %s:%s refused: %s", client[0], client[1], reason)
        self._answer(client, "/groovecast/error", reason)

    def _handle(self, client: tuple[str, int], address: str, args: list[Any]) -> None:
        if not (self._peer_buckets.allow(client[0]) and self._total.allow()):
            self.rate_limited += 1
            self.rejected += 1
            self._log_bad.log(logging.WARNING, "OSC control from %s: rate limited", client[0])
            self._answer(client, "/groovecast/error", "rate limited: too many controls; slow down")
            return
        try:
            msg = parse_control(osc_to_control(address, args), 0, self.clock.monotonic_ns())
            if self.on_control is not None:
                self.on_control(msg)
        except (ControlError, ValueError) as exc:
            self.rejected += 1
            self.last_error = str(exc)
            self._log_bad.log(logging.WARNING, "OSC control %s rejected: %s", address[:80], exc)
            self._answer(client, "/groovecast/error", str(exc))
            return
        except Exception as exc:  # a failing consumer must not take the server down
            self.rejected += 1
            self.last_error = str(exc)
            self._log_bad.log(logging.ERROR, "OSC control handler failed on %s: %r", address[:80], exc)
            self._answer(client, "/groovecast/error", f"handler failed: {exc}")
            return
        self.accepted += 1
        self._answer(client, "/groovecast/ack", msg.kind)

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
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from engine.frames import ControlMessage
from streams.control import ControlError, parse_control

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


class OscControlServer:
    """A UDP OSC server thread handing validated :class:`ControlMessage` s to ``on_control``.

    ``on_control`` may raise ValueError to reject a message (the reason goes back to the sender).
    Binds 127.0.0.1 by default; pass another host explicitly to expose it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9001,
                 on_control: Callable[[ControlMessage], None] | None = None) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        self.on_control = on_control
        self.accepted = 0
        self.rejected = 0
        self.last_error = ""
        disp = Dispatcher()
        disp.set_default_handler(self._handle, needs_reply_address=True)
        self._server = ThreadingOSCUDPServer((host, port), disp)
        self._reply = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._thread = threading.Thread(target=self._server.serve_forever, name="groovecast-osc-control", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> OscControlServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._reply.close()

    def _answer(self, client: tuple[str, int], address: str, text: str) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        b = OscMessageBuilder(address=address)
        b.add_arg(text)
        with contextlib.suppress(OSError):  # the sender is gone; nothing to tell
            self._reply.sendto(b.build().dgram, client)

    def _handle(self, client: tuple[str, int], address: str, *args: Any) -> None:
        try:
            msg = parse_control(osc_to_control(address, list(args)), 0, 0)
            if self.on_control is not None:
                self.on_control(msg)
        except (ControlError, ValueError) as exc:
            self.rejected += 1
            self.last_error = str(exc)
            log.warning("OSC control %s rejected: %s", address, exc)
            self._answer(client, "/groovecast/error", str(exc))
            return
        except Exception as exc:  # a failing consumer must not take the server down
            self.rejected += 1
            self.last_error = str(exc)
            log.exception("OSC control handler failed")
            self._answer(client, "/groovecast/error", f"handler failed: {exc}")
            return
        self.accepted += 1
        self._answer(client, "/groovecast/ack", msg.kind)

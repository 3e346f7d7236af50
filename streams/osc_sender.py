"""UDP sender of per-frame OSC bundles (VMC or VJ profile) to one or more targets."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence

from engine.frames import PoseFrame
from engine.skeleton.skeleton import Skeleton
from streams.prepare import PreparedPose, prepare
from streams.vj import encode_vj
from streams.vmc import encode_vmc

log = logging.getLogger(__name__)

PROFILES = ("vmc", "vj")


def parse_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``"host:port"`` (or ``"host"`` with a default port, or ``":port"`` for localhost) -> ``(host, port)``."""
    host, sep, port_s = text.rpartition(":")
    if not sep:
        if default_port is None:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        host, port_s = text, str(default_port)
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"port in {text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range 0..65535")
    return host, port


class OscSender:
    """Sends one bundle per frame over UDP. Send errors are counted and logged, never raised.

    Args:
        targets: ``(host, port)`` pairs.
        profile: ``"vmc"`` or ``"vj"``.
        skeleton: skeleton override (default: the registered one named by each frame).
    """

    def __init__(self, targets: Sequence[tuple[str, int]], profile: str = "vmc", skeleton: Skeleton | None = None):
        if profile not in PROFILES:
            raise ValueError(f"unknown OSC profile {profile!r}; choose from {', '.join(PROFILES)}")
        if not targets:
            raise ValueError("OscSender needs at least one target")
        self.targets = list(targets)
        self.profile = profile
        self.skeleton = skeleton
        self.sent = 0
        self.errors = 0
        self.bad_frames = 0
        family = socket.AF_INET6 if any(":" in h for h, _ in self.targets) else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)

    def encode(self, frame: PoseFrame | PreparedPose) -> bytes:
        p = frame if isinstance(frame, PreparedPose) else prepare(frame, self.skeleton)
        return encode_vmc(p) if self.profile == "vmc" else encode_vj(p)

    def send(self, frame: PoseFrame | PreparedPose) -> None:
        try:
            data = self.encode(frame)
        except (KeyError, ValueError) as exc:  # a bad frame is skipped and counted; the stream goes on
            self.bad_frames += 1
            if self.bad_frames in (1, 10, 100) or self.bad_frames % 1000 == 0:
                log.warning("skipping a frame that cannot be encoded (%s); %d so far", exc, self.bad_frames)
            return
        for target in self.targets:
            try:
                self._sock.sendto(data, target)
                self.sent += 1
            except OSError as exc:  # a receiver that is not up yet: keep streaming
                self.errors += 1
                if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                    log.warning("OSC send to %s:%d failed (%s); %d failures so far", *target, exc, self.errors)

    def close(self) -> None:
        self._sock.close()

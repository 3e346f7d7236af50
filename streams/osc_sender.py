"""UDP sender of per-frame OSC bundles (VMC or VJ profile), one body per target unless asked otherwise."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence

from engine.frames import PoseFrame
from engine.skeleton.skeleton import Skeleton
from streams.address import format_address, parse_address
from streams.prepare import PreparedPose, prepare
from streams.vj import encode_vj, encode_vj_pulse
from streams.vmc import encode_vmc

log = logging.getLogger(__name__)

PROFILES = ("vmc", "vj")

Target = tuple[str, int]


def parse_host_port(text: str) -> Target:
    """An OSC target: ``PORT`` (= 127.0.0.1:PORT), ``HOST:PORT`` or ``[IPv6]:PORT`` (see :mod:`streams.address`)."""
    return parse_address(text)


def route_targets(targets: Sequence[Target], performers: Sequence[int],
                  shared: bool = False) -> dict[int, list[Target]]:
    """Which targets each performer's bundles go to, so that no target receives two bodies unless asked.

    * one performer: every target gets it (e.g. a game engine and a recorder listening side by side);
    * as many targets as performers: performer ``performers[i]`` goes to ``targets[i]``;
    * one target and several performers: performer ``performers[i]`` goes to the target's port + i
      (e.g. 39539, 39540, ...: one receiver per dancer);
    * ``shared``: every performer to every target (the receiver must tell bodies apart: VMC bundles then
      carry ``/groovecast/stamp`` with the performer index; VJ addresses always hold it).

    Raises:
        ValueError: any other combination, or a port + i beyond 65535, with what to give instead.
    """
    if not targets:
        return {}
    if shared or len(performers) == 1:
        return {p: list(targets) for p in performers}
    if len(targets) == len(performers):
        return {p: [t] for p, t in zip(performers, targets, strict=True)}
    if len(targets) == 1:
        host, port = targets[0]
        last = port + len(performers) - 1
        if last > 65535:
            raise ValueError(f"ports {port}..{last} for {len(performers)} performers exceed 65535")
        return {p: [(host, port + i)] for i, p in enumerate(performers)}
    raise ValueError(
        f"{len(performers)} performers but {len(targets)} targets: give one target per performer, one target "
        "(performer i then goes to its port + i), or --osc-shared to send every performer to every target"
    )


class OscSender:
    """Sends one bundle per frame over UDP. Send errors are counted and logged, never raised.

    Args:
        targets: ``(host, port)`` pairs that receive every frame, or a mapping performer -> its targets
            (see :func:`route_targets`); frames of a performer the mapping does not name are not sent.
        profile: ``"vmc"`` or ``"vj"``.
        skeleton: skeleton override (default: the registered one named by each frame).
        stamp: add ``/groovecast/stamp`` to VMC bundles (performer, frame, sample index, source time).
        pulses: VJ profile: beats are sent by :meth:`send_pulse` at the beat, frame bundles carry ``beat 0``.
    """

    def __init__(self, targets: Sequence[Target] | Mapping[int, Sequence[Target]], profile: str = "vmc",
                 skeleton: Skeleton | None = None, stamp: bool = False, pulses: bool = False):
        if profile not in PROFILES:
            raise ValueError(f"unknown OSC profile {profile!r}; choose from {', '.join(PROFILES)}")
        if not targets:
            raise ValueError("OscSender needs at least one target")
        if isinstance(targets, Mapping):
            self.routes: dict[int, list[Target]] | None = {p: list(ts) for p, ts in targets.items()}
            self.targets = sorted({t for ts in self.routes.values() for t in ts})
        else:
            self.routes = None
            self.targets = list(targets)
        self.profile = profile
        self.skeleton = skeleton
        self.stamp = stamp
        self.pulses = pulses and profile == "vj"
        self._performers: set[int] = set(self.routes) if self.routes is not None else set()
        self.sent = 0
        self.errors = 0
        self.bad_frames = 0
        self.unrouted = 0  # frames of performers that have no target
        # one socket per address family, so IPv4 and IPv6 targets can be mixed
        self._socks: dict[int, socket.socket] = {}
        for host, _ in self.targets:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            if fam not in self._socks:
                self._socks[fam] = socket.socket(fam, socket.SOCK_DGRAM)

    def encode(self, frame: PoseFrame | PreparedPose) -> bytes:
        p = frame if isinstance(frame, PreparedPose) else prepare(frame, self.skeleton)
        return encode_vmc(p, stamp=self.stamp) if self.profile == "vmc" else encode_vj(p, frame_beat=not self.pulses)

    def targets_of(self, performer: int) -> list[Target]:
        return self.targets if self.routes is None else self.routes.get(performer, [])

    def send(self, frame: PoseFrame | PreparedPose) -> None:
        performer = frame.frame.performer if isinstance(frame, PreparedPose) else frame.performer
        targets = self.targets_of(performer)
        if not targets:
            self.unrouted += 1
            return
        self._performers.add(performer)
        try:
            data = self.encode(frame)
        except (KeyError, ValueError) as exc:  # a bad frame is skipped and counted; the stream goes on
            self.bad_frames += 1
            if self.bad_frames in (1, 10, 100) or self.bad_frames % 1000 == 0:
                log.warning("skipping a frame that cannot be encoded (%s); %d so far", exc, self.bad_frames)
            return
        self._send(data, targets)

    def send_pulse(self, pulse: object = None) -> None:
        """VJ profile: one beat pulse (``/groovecast/<performer>/beat 1``) to every performer's targets."""
        if not self.pulses:
            return
        for performer in sorted(self._performers):
            self._send(encode_vj_pulse(performer), self.targets_of(performer))

    def _send(self, data: bytes, targets: Sequence[Target]) -> None:
        for target in targets:
            sock = self._socks[socket.AF_INET6 if ":" in target[0] else socket.AF_INET]
            try:
                sock.sendto(data, target)
                self.sent += 1
            except OSError as exc:  # a receiver that is not up yet: keep streaming
                self.errors += 1
                if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                    log.warning("OSC send to %s failed (%s); %d failures so far", format_address(*target), exc,
                                self.errors)

    def close(self) -> None:
        for s in self._socks.values():
            s.close()

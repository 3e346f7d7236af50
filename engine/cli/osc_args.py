"""The OSC output options shared by play, live and replay, and the sender they build."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from engine.cli import CliError


def add_osc_arguments(p: argparse.ArgumentParser) -> None:
    """``--osc`` (repeatable), ``--profile``, ``--osc-shared``, ``--vmc-stamp``."""
    p.add_argument("--osc", action="append", default=[], metavar="PORT|HOST:PORT",
                   help="send poses over OSC to this target (repeatable); PORT alone means 127.0.0.1:PORT, IPv6 as "
                        "[::1]:PORT. VMC receivers listen on 39539 by default. Several performers: one target each, "
                        "or one target and performer i goes to its port + i")
    p.add_argument("--profile", choices=("vmc", "vj"), default="vmc",
                   help="OSC profile: vmc (avatars: Unity, Unreal, VSeeFace) or vj (beat, BPM, joints for "
                        "TouchDesigner/Resolume); default vmc")
    p.add_argument("--osc-shared", action="store_true",
                   help="send every performer to every --osc target (VMC bundles then carry /groovecast/stamp "
                        "with the performer index; standard VMC receivers would flip between bodies)")
    p.add_argument("--vmc-stamp", action="store_true",
                   help="add /groovecast/stamp (performer, frame, audio sample index, source time) to VMC bundles")


def make_osc_sender(args: argparse.Namespace, performers: Sequence[int], skeleton: Any) -> Any:
    """The OSC sender the options ask for, or None without ``--osc``.

    Raises:
        CliError: a malformed target or a performer/target combination that would put two bodies on one
            target, with what to write instead.
    """
    if not args.osc:
        return None
    if not performers:
        raise CliError("--performers must be >= 1")
    from streams.osc_sender import OscSender, parse_host_port, route_targets

    try:
        targets = [parse_host_port(t) for t in args.osc]
        routes = route_targets(targets, list(performers), shared=args.osc_shared)
        return OscSender(routes, args.profile, skeleton=skeleton,
                         stamp=args.vmc_stamp or (args.osc_shared and len(performers) > 1))
    except ValueError as exc:
        raise CliError(f"--osc: {exc}") from None

"""The ``--link`` option (Ableton Link tempo and beat phase) shared by play, live, replay and analyze."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli import CliError


def add_link_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--link", action="store_true",
                   help="publish tempo and beat phase as an Ableton Link peer (Resolume, TouchDesigner, Live sync "
                        "to it); joins Link sessions on the local network by multicast. Needs: pip install "
                        "'groovecast[link]'")


def make_link_publisher(args: argparse.Namespace) -> Any:
    """A started :class:`streams.link.LinkPublisher`, or None without ``--link``.

    Raises:
        CliError: `aalink` missing or Link cannot start, with how to install it.
    """
    if not getattr(args, "link", False):
        return None
    from streams.link import LinkPublisher, LinkUnavailable

    try:
        pub = LinkPublisher()
    except LinkUnavailable as exc:
        raise CliError(f"--link: {exc}") from None
    print("ableton link: joined the local session (tempo and beat phase follow the music)", flush=True)
    return pub

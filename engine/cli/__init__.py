"""The ``groovecast`` command line.

Each command group lives in its own module under ``engine.cli`` and exposes
``register(subparsers)``; heavy imports (torch, aubio, sounddevice) happen inside the handlers so
``groovecast --help`` stays instant. Handlers return a process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from engine import __version__

#: Modules that register sub-commands, in help order. Add a module here to add commands.
COMMAND_MODULES: tuple[str, ...] = ("engine.cli.audio_cmds", "engine.cli.stream_cmds", "engine.cli.train_cmds",
                                    "engine.cli.export_cmds", "engine.cli.run_cmds")


class CliError(Exception):
    """A user-facing error: printed as one clear line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="groovecast",
        description="Real-time streaming performance engine: live audio to dancing avatars.",
    )
    parser.add_argument("--version", action="version", version=f"groovecast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except CliError as exc:
        print(f"groovecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

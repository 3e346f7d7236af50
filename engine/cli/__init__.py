"""The ``groovecast`` command line.

Each command group lives in its own module under ``engine.cli`` and exposes
``register(subparsers)``; heavy imports (torch, aubio, sounddevice) happen inside the handlers so
``groovecast --help`` stays instant. Handlers return a process exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from engine import __version__

#: Modules that register sub-commands, in help order. Add a module here to add commands.
COMMAND_MODULES: tuple[str, ...] = ("engine.cli.audio_cmds", "engine.cli.stream_cmds", "engine.cli.train_cmds",
                                    "engine.cli.export_cmds", "engine.cli.run_cmds")


#: One example per command, shown at the end of its ``--help`` (tests/cli/test_help.py parses each one).
EXAMPLES: dict[str, str] = {
    "devices": "groovecast devices --inputs",
    "analyze": "groovecast analyze --demo --live",
    "replay": "groovecast replay ../shared/data/cmu_salsa/60_01_scaled.bvh --osc 39539 --ws 8765 --loop",
    "serve": "groovecast serve --ws 127.0.0.1:8765",
    "recover": "groovecast recover show.npz.partial",
    "train": "groovecast train vqvae --out runs/dance",
    "train vqvae": "groovecast train vqvae --out runs/dance --steps 2000",
    "train gpt": "groovecast train gpt --out runs/dance --steps 4000",
    "train beats": "groovecast train beats --out runs/beats",
    "train couple": "groovecast train couple --model runs/dance --out runs/couple --steps 900",
    "eval": "groovecast eval --report runs/eval",
    "generate": "groovecast generate song.wav --out dance.bvh --seconds 30",
    "export": "groovecast export onnx --out runs/onnx",
    "export onnx": "groovecast export onnx --out runs/onnx",
    "export tensorrt": "groovecast export tensorrt --onnx runs/onnx/step.onnx --out runs/trt",
    "bench": "groovecast bench latency --soak-seconds 60",
    "bench decode": "groovecast bench decode --quick",
    "bench latency": "groovecast bench latency --soak-seconds 60",
    "play": "groovecast play --demo --osc 127.0.0.1:39539",
    "live": "groovecast live --device 0 --osc 127.0.0.1:39539 --ws 8765",
}


def _add_examples(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                example = EXAMPLES.get(" ".join((*path, name)))
                if example:
                    sub.epilog = f"example: {example}"
                _add_examples(sub, (*path, name))


#: Commands that stream live and must end quickly on Ctrl-C/SIGTERM: after they return (outputs closed,
#: recordings finished, summary printed) the process exits without the interpreter's teardown, which
#: takes about a second once torch is loaded.
FAST_EXIT_COMMANDS = frozenset({"play", "live", "replay", "serve"})
_fast_exit = False


class CliError(Exception):
    """A user-facing error: printed as one clear line, exit code 2."""


#: Help of ``--max-repeat`` (generate, eval, play, live).
MAX_REPEAT_HELP = ("repetition guard: a token drawn N times in a row is not drawn next (0: off; default: the "
                   "model card's sampling.max_repeat)")


def check_max_repeat(n: int | None) -> None:
    """``--max-repeat`` must be None (the card's), 0 (off) or a run length the model card allows."""
    from engine.models.model_card import MAX_REPEAT_LIMIT

    if n is not None and not 0 <= n <= MAX_REPEAT_LIMIT:
        raise CliError(f"--max-repeat must be in [0, {MAX_REPEAT_LIMIT}] (0: off), got {n}")


#: Help of ``--genre-guidance`` (generate, eval, play, live).
GENRE_GUIDANCE_HELP = ("classifier-free guidance on the genre: draw from uncond + S * (cond - uncond), "
                       "one extra GPT row per performer (1: off; default: the model card's sampling.genre_guidance)")


def check_genre_guidance(s: float | None) -> None:
    """``--genre-guidance`` must be None (the card's) or a scale the model card allows."""
    from engine.models.model_card import GENRE_GUIDANCE_LIMIT

    if s is not None and not 0.0 <= s <= GENRE_GUIDANCE_LIMIT:
        raise CliError(f"--genre-guidance must be in [0, {GENRE_GUIDANCE_LIMIT:g}] (1: off), got {s}")


#: Help of ``--text-guidance`` (generate, eval, play, live).
TEXT_GUIDANCE_HELP = ("a separate guidance scale for the text: a third GPT row per performer with a text (genre, no "
                      "text), stepped only while a text is set; needs genre guidance (default: the model card's "
                      "sampling.text_guidance; absent: the genre's scale)")


def check_text_guidance(s: float | None) -> None:
    """``--text-guidance`` must be None (the card's) or a scale the model card allows."""
    from engine.models.model_card import GENRE_GUIDANCE_LIMIT

    if s is not None and not 0.0 <= s <= GENRE_GUIDANCE_LIMIT:
        raise CliError(f"--text-guidance must be in [0, {GENRE_GUIDANCE_LIMIT:g}], got {s}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="groovecast",
        description="Real-time streaming performance engine: live audio to dancing avatars.",
        epilog="start here: groovecast play --demo --osc 127.0.0.1:39539 --ws 8765 "
               "(then open http://127.0.0.1:8765/ or point a VMC receiver at port 39539)",
    )
    parser.add_argument("--version", action="version", version=f"groovecast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _add_examples(parser)
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
    global _fast_exit
    _fast_exit = args.command in FAST_EXIT_COMMANDS
    previous = _sigterm_like_ctrl_c()
    try:
        return int(handler(args) or 0)
    except CliError as exc:
        print(f"groovecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_like_ctrl_c() -> Any:
    """SIGTERM ends a command exactly like Ctrl-C: outputs closed, recordings finished, summary printed.

    Returns the previous handler (None when not on the main thread, where nothing is installed).
    """

    def on_term(signum: int, frame: Any) -> None:
        # Whatever handles Ctrl-C now (Python's default, asyncio's runner) handles this too; if Ctrl-C is
        # ignored (a background job started by a shell), SIGTERM still interrupts.
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread (main() called from a test's worker thread)
        return signal.signal(signal.SIGTERM, on_term)
    return None


def entry() -> None:
    """The console script and ``python -m engine``: :func:`main`, then a prompt exit for live commands."""
    code = main()
    if _fast_exit:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()

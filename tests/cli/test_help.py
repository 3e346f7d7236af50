"""Every command and option has help text, and every command's help shows an example that parses."""

from __future__ import annotations

import argparse
import shlex

import pytest

from engine.cli import EXAMPLES, build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"command '{' '.join((*path, name))}' has no help line"
                out.append((*path, name))
                out += _commands(sub, (*path, name))
    return out


def _sub(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


COMMANDS = _commands(build_parser())


def test_every_command_is_listed() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"play", "live", "replay", "serve", "analyze", "train", "train gpt", "eval", "export onnx"} <= names
    assert names == set(EXAMPLES), f"commands without an example: {names - set(EXAMPLES)}"


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help_text_and_one_example(path: tuple[str, ...]) -> None:
    parser = build_parser()
    sub = _sub(parser, path)
    for action in sub._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help, f"'{' '.join(path)}' option {action.option_strings or action.dest} has no help text"
    text = sub.format_help()
    assert f"example: groovecast {' '.join(path)}" in " ".join(text.split())
    argv = shlex.split(EXAMPLES[" ".join(path)])
    assert argv[0] == "groovecast"
    parsed = parser.parse_args(argv[1:])  # the example is a valid command line
    assert getattr(parsed, "handler", None) is not None or path in (("train",), ("export",), ("bench",))

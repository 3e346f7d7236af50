"""The README's commands exist: every `groovecast ...` it names parses, and its test command is CI's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands() -> list[list[str]]:
    found = set()
    for m in re.finditer(r"groovecast ((?:[a-z]+ ?){1,2})", README):
        words = m.group(1).split()
        found.add(tuple(words))
    return [list(w) for w in sorted(found)]


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w))
def test_readme_command_exists(words: list[str]) -> None:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert words[0] in sub, f"README names `groovecast {words[0]}`, which does not exist"
    nested = [a for a in sub[words[0]]._actions if a.__class__.__name__ == "_SubParsersAction"]
    if nested and len(words) > 1:
        assert words[1] in nested[0].choices, f"README names `groovecast {' '.join(words)}`, which does not exist"


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r"bash scripts/setup.sh && (python3 -m pytest[^\n`]*)", README)
    assert m, "README lost its test command"
    assert m.group(1).strip() in ci
    assert "groovecast play --demo" in README  # the main job runs the shipped model on the demo clip

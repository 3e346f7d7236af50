"""Opening and finishing the --record targets shared by play/live and replay."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from engine.cli import CliError


def open_recorders(paths: Iterable[str], skeleton: Any) -> list[Any]:
    """One streaming recorder per ``--record`` path, opened before the show (a bad path fails now)."""
    from streams.recorders import recorder_for

    recorders = []
    for path in paths:
        try:
            recorders.append(recorder_for(path, skeleton))
        except (ValueError, OSError) as exc:
            raise CliError(f"--record: {exc}") from None
    return recorders


def finish_outputs(closers: Iterable[Callable[[], Any]], recorders: Iterable[Any]) -> None:
    """Close the senders, then finish every recorder, whatever happens to the others, saying what was written."""
    for c in closers:
        c()
    for r in recorders:
        try:
            out = r.close()
        except Exception as exc:
            print(f"recording {r.path} failed: {exc}", file=sys.stderr, flush=True)
            continue
        if out is not None:
            print(f"recorded {r.count} frames to {out}" + (f" (stopped early: {r.error})" if r.error else ""),
                  flush=True)

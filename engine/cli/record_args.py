"""Opening and finishing the --record targets shared by play/live and replay."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engine.cli import CliError


def performer_paths(path: str, performers: int, couple: bool) -> list[tuple[str, int]]:
    """The file each performer of one ``--record`` target goes to: one performer, the path itself; a couple, as
    ``generate --couple`` writes it, ``OUT_lead`` and ``OUT_follow`` before the suffix (the next couples
    ``OUT_lead1``, ``OUT_follow1``, ...); several solo dancers ``OUT_p0``, ``OUT_p1``, ... (a BVH holds one body)."""
    if performers <= 1:
        return [(path, 0)]
    p = Path(path)

    def named(tag: str) -> str:
        return str(p.with_name(f"{p.stem}_{tag}{p.suffix}"))

    if couple:
        return [(named(("lead" if i % 2 == 0 else "follow") + (str(i // 2) if i >= 2 else "")), i)
                for i in range(performers)]
    return [(named(f"p{i}"), i) for i in range(performers)]


def open_recorders(paths: Iterable[str], skeleton: Any, performers: int = 1, couple: bool = False) -> list[Any]:
    """Streaming recorders for the ``--record`` paths, one per performer and path (:func:`performer_paths`),
    opened before the show (a bad path fails now)."""
    from streams.recorders import recorder_for

    recorders = []
    for path in paths:
        for each, performer in performer_paths(path, performers, couple):
            try:
                recorders.append(recorder_for(each, skeleton, performer))
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

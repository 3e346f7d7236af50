"""Sinks: where output poses go (OSC sender, WebSocket publish, recorders). Knows nothing about dance."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from engine.frames import PoseFrame

log = logging.getLogger(__name__)

Sink = Callable[[PoseFrame], None]


class SinkFanout:
    """Hands every frame to every sink; a failing sink (closed socket, full disk) is logged and counted."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.errors = 0

    def append(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def __call__(self, frame: PoseFrame) -> None:
        for sink in self.sinks:
            try:
                sink(frame)
            except Exception as exc:  # one failing sink must not stop the others or the show
                self.errors += 1
                if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                    log.warning("sink %r failed (%d failures so far): %s", sink, self.errors, exc)

"""A small push pipeline: stages linked in order, each with one ``process`` entry point.

A stage receives one frame and returns the frames it produces (often none, sometimes several);
the pipeline hands each output to the next stage. Stages never call each other. Metrics live in
observers (callables that see every frame leaving a stage), not in the stage base class.

Threads and queues sit outside this module: the runtime runs a pipeline on its own thread and
feeds it from a source's hand-off queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from engine.frames import Frame

Observer = Callable[[str, Frame], None]


class Stage:
    """One processing step. Subclasses override :meth:`process` and may override :meth:`close`.

    ``latency_samples`` documents how many engine-rate samples of delay the stage adds between
    the newest input it has seen and the output it emits for it.
    """

    latency_samples: int = 0

    @property
    def name(self) -> str:
        return type(self).__name__

    def process(self, frame: Frame) -> Iterable[Frame]:
        raise NotImplementedError

    def close(self) -> Iterable[Frame]:
        """Flush at end of stream; default: nothing pending."""
        return ()


class Pipeline:
    """Stages in order. ``push(frame)`` runs the frame through all stages; returns the last stage's output."""

    def __init__(self, stages: Sequence[Stage], observers: Sequence[Observer] = ()) -> None:
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        self.stages = list(stages)
        self.observers = list(observers)

    @property
    def latency_samples(self) -> int:
        return sum(s.latency_samples for s in self.stages)

    def push(self, frame: Frame) -> list[Frame]:
        return self._run_from(0, [frame])

    def close(self) -> list[Frame]:
        """Flush every stage in order, passing each flush through the stages after it."""
        out: list[Frame] = []
        for i, stage in enumerate(self.stages):
            flushed = list(stage.close())
            self._observe(stage, flushed)
            out.extend(self._run_from(i + 1, flushed) if i + 1 < len(self.stages) else flushed)
        return out

    def _run_from(self, start: int, frames: list[Frame]) -> list[Frame]:
        for stage in self.stages[start:]:
            produced: list[Frame] = []
            for f in frames:
                produced.extend(stage.process(f))
            self._observe(stage, produced)
            frames = produced
            if not frames:
                break
        return frames

    def _observe(self, stage: Stage, frames: list[Frame]) -> None:
        for obs in self.observers:
            for f in frames:
                obs(stage.name, f)

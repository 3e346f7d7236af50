"""The step scheduler: which step is due after each feature frame, and what a re-plan discards.

Step ``t`` covers frames ``n*t .. n*t + n - 1`` (``n`` = the model's frames per step, 4 for the GPT).
With lookahead ``L`` it is generated as soon as feature frame ``n*(t - L) - 1`` exists (step 0 at the
first frame): at ``L = 0`` a step is generated when its first frame is due, from the music heard so far.
Every step remembers the audio it was made from (sample index, capture time), so every output pose can
carry its provenance. Pure bookkeeping: no threads, no model.
"""

from __future__ import annotations

import math


class StepScheduler:
    """Step schedule and provenance (see the module doc)."""

    def __init__(self, frames_per_step: int, lookahead: int = 0, history: int = 64) -> None:
        if lookahead < 0:
            raise ValueError("lookahead must be >= 0")
        self.n = frames_per_step
        self.lookahead = lookahead
        self.history = history
        self.next_step = 0  # the next step to generate
        self._src: dict[int, tuple[int, int]] = {}

    def due(self, frame_index: int) -> bool:
        """Whether the next step may be generated once feature frame ``frame_index`` exists."""
        return self.n * (self.next_step - self.lookahead) - 1 <= frame_index

    def committed(self, step: int, sample_index: int, capture_ns: int) -> None:
        """Step ``step`` was generated from the audio up to ``sample_index`` (available at ``capture_ns``)."""
        self._src[step] = (sample_index, capture_ns)
        self._src.pop(step - self.history, None)
        self.next_step = step + 1

    def remade(self, step: int, sample_index: int, capture_ns: int) -> None:
        """Step ``step`` (already generated) was made again, for some performers, from the audio up to
        ``sample_index`` (a control re-plan); the schedule does not move."""
        if step < self.next_step:
            self._src[step] = (sample_index, capture_ns)

    def ready(self, pos: float) -> bool:
        """Whether the step holding frame position ``pos`` has been generated."""
        return int(pos) // self.n < self.next_step

    def source(self, pos: float) -> tuple[int, int]:
        """(sample_index, capture_ns) of the step that made the frame at ``pos`` ((0, 0) if unknown)."""
        return self._src.get(int(pos) // self.n) or (0, 0)

    def first_unplayed(self, played_pos: float) -> int:
        """The first generated step whose frames have not begun to play at ``played_pos`` (at most ``lookahead``
        steps back: with lookahead 0 the step generated last is the one about to play, and is kept)."""
        return min(self.next_step, max(self.next_step - self.lookahead, -(-math.ceil(played_pos) // self.n)))

    def replan(self, played_pos: float) -> int:
        """Discard generated steps not yet played; returns how many (they are generated again)."""
        first = self.first_unplayed(played_pos)
        k = self.next_step - first
        if k <= 0:
            return 0
        self.next_step = first
        return k

"""Steady playout timing: the constant delay D between audio becoming available and the pose showing it.

Output frame ``f`` leaves at ``audio_time(f) + D`` on a fixed 30/60 fps grid. The audio of a step's last
frame arrives with the block holding it (up to one block period after it was captured), then the step runs;
so D covers one block period, the step's p99 and a margin. At 60 fps a tick between two model frames
interpolates towards the later one, so D also covers half a model frame (16.7 ms) there. D is measured at
start (a few steps timed before the show) and fixed, unless the user sets it. A frame whose step is not
ready at its slot is held (counted), never sent late.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.frames import MODEL_FPS


@dataclass(frozen=True)
class PlayoutDelay:
    """The chosen delay D and what it is made of (all in nanoseconds)."""

    delay_ns: int
    step_p99_ns: int
    block_ns: int
    margin_ns: int
    lookahead_ns: int = 0  # steps generated this much ahead need that much less delay
    interp_ns: int = 0  # 60 fps: a tick between frames needs the later frame, half a model frame later
    fixed: bool = False  # set by the user, not measured

    def describe(self) -> str:
        if self.fixed:
            return f"playout delay D = {self.delay_ns / 1e6:.1f} ms (set)"
        ahead = f" - lookahead {self.lookahead_ns / 1e6:.0f}" if self.lookahead_ns else ""
        interp = f" + 60 fps interpolation {self.interp_ns / 1e6:.1f}" if self.interp_ns else ""
        return (f"playout delay D = {self.delay_ns / 1e6:.1f} ms (step p99 {self.step_p99_ns / 1e6:.1f} + audio "
                f"block {self.block_ns / 1e6:.1f} + margin {self.margin_ns / 1e6:.1f}{interp}{ahead} ms)")


def choose_delay(step_ns: Sequence[int], block_ns: int, margin_ns: int, lookahead_steps: int = 0,
                 frames_per_step: int = 4, fixed_ns: int | None = None, output_fps: int = 30) -> PlayoutDelay:
    """D = step p99 + block period + margin (+ half a frame at 60 fps; less what lookahead generates early)."""
    p99 = int(np.percentile(np.asarray(step_ns, dtype=np.float64), 99)) if len(step_ns) else 0
    ahead = int(lookahead_steps * frames_per_step * 1e9 / MODEL_FPS)
    interp = int((1.0 - MODEL_FPS / output_fps) * 1e9 / MODEL_FPS)
    if fixed_ns is not None:
        return PlayoutDelay(max(0, fixed_ns), p99, block_ns, margin_ns, ahead, interp, fixed=True)
    return PlayoutDelay(max(0, p99 + block_ns + margin_ns + interp - ahead), p99, block_ns, margin_ns, ahead, interp)

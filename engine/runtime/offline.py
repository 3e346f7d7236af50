"""Offline rendering through the live path: the same motion model, stepped at batch 1 over a whole file.

The audio goes through the causal analysis exactly as live blocks would (``analyze_signal``), each step is
conditioned by the same per-step rows (``sequence_conditions``, identical to the live music window at
lookahead 0), and the model is the one the live engine runs. Used by ``groovecast generate`` for model kinds
without a dedicated offline path, and by benchmarks that score a kind's dances.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.conditioning import sequence_conditions
from engine.models.pose_repr import Motion
from engine.models.protocol import MotionModel
from engine.skeleton import rotations as R


@dataclass
class Rendered:
    """The dance of a file (the first performer's, and every performer's by id), and the music analysis it followed."""

    motion: Motion
    beats_s: list[float]  # the beats the tracker committed to, within the rendered span
    conditions: np.ndarray  # [steps, cond_dim] the rows the model was stepped with
    motions: dict[int, Motion] = field(default_factory=dict)  # every performer's dance (``motion`` is the first's)


def render(model: MotionModel, audio: np.ndarray, sr: int, seconds: float | None = None,
           analysis: tuple[np.ndarray, np.ndarray, np.ndarray, list[float]] | None = None) -> Rendered:
    """Dance to ``audio`` with every performer of ``model`` (one step per ``frames_per_step`` frames).

    ``analysis`` may pass precomputed (features, period_s, next_beat_s, beats) from ``analyze_signal``.
    """
    from engine.analysis.analyze import dance_analysis

    feats, period, nxt, beats = dance_analysis(audio, sr, analysis)
    n_frames = len(feats) if seconds is None else min(len(feats), int(seconds * MODEL_FPS))
    n = model.frames_per_step
    steps = n_frames // n
    if steps < 1:
        raise ValueError(f"audio too short: {n_frames} frames, need at least {n}")
    pids = model.performer_ids()
    model.keep_rewinds(0)  # nothing rewinds an offline render: keep no state for it (the model's cost per step)
    cond = sequence_conditions(feats, period, nxt, steps)
    roots: dict[int, list[np.ndarray]] = {p: [] for p in pids}
    quats: dict[int, list[np.ndarray]] = {p: [] for p in pids}
    for t in range(steps):
        for sf in model.step(cond[t]):
            if sf.pid in roots:
                roots[sf.pid].append(sf.root)
                quats[sf.pid].append(sf.quat)
    motions = {}
    for p in pids:
        rot = R.quat_to_matrix(np.concatenate(quats[p]).astype(np.float64))
        motions[p] = Motion(model.skeleton, np.concatenate(roots[p]).astype(np.float64), rot, float(MODEL_FPS))
    return Rendered(motion=motions[pids[0]], beats_s=[b for b in beats if b < steps * n / MODEL_FPS], conditions=cond,
                    motions=motions)

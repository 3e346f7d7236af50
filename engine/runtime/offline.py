"""Offline rendering through the live path: the same motion model, stepped at batch 1 over a whole file.

The audio goes through the causal analysis exactly as live blocks would (``analyze_signal``), each step is
conditioned by the same per-step rows (``sequence_conditions``, identical to the live music window at
lookahead 0), and the model is the one the live engine runs. Used by ``groovecast generate`` for model kinds
without a dedicated offline path, and by benchmarks that score a kind's dances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.conditioning import sequence_conditions
from engine.models.pose_repr import Motion
from engine.models.protocol import MotionModel
from engine.skeleton import rotations as R


@dataclass
class Rendered:
    """One performer's dance for a file, and the music analysis it followed."""

    motion: Motion
    beats_s: list[float]  # the beats the tracker committed to, within the rendered span
    conditions: np.ndarray  # [steps, cond_dim] the rows the model was stepped with


def render(model: MotionModel, audio: np.ndarray, sr: int, seconds: float | None = None,
           analysis: tuple[np.ndarray, np.ndarray, np.ndarray, list[float]] | None = None) -> Rendered:
    """Dance to ``audio`` with the first performer of ``model`` (one step per ``frames_per_step`` frames).

    ``analysis`` may pass precomputed (features, period_s, next_beat_s, beats) from ``analyze_signal``.
    """
    from engine.analysis.analyze import dance_analysis

    feats, period, nxt, beats = dance_analysis(audio, sr, analysis)
    n_frames = len(feats) if seconds is None else min(len(feats), int(seconds * MODEL_FPS))
    n = model.frames_per_step
    steps = n_frames // n
    if steps < 1:
        raise ValueError(f"audio too short: {n_frames} frames, need at least {n}")
    pid = model.performer_ids()[0]
    cond = sequence_conditions(feats, period, nxt, steps)
    roots, quats = [], []
    for t in range(steps):
        for sf in model.step(cond[t]):
            if sf.pid == pid:
                roots.append(sf.root)
                quats.append(sf.quat)
    root = np.concatenate(roots)
    quat = np.concatenate(quats)
    rot = R.quat_to_matrix(quat.astype(np.float64))
    motion = Motion(model.skeleton, root.astype(np.float64), rot, float(MODEL_FPS))
    return Rendered(motion=motion, beats_s=[b for b in beats if b < steps * n / MODEL_FPS], conditions=cond)

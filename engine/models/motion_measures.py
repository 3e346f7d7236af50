"""Per-frame measures of motion that captions name and the text control is scored by (pure numpy).

Moved here from :mod:`engine.train.captions` (which re-exports them) so run-time code can measure candidates
with the very function the captions and ``groovecast eval --controls`` use (beat guidance's text term,
:mod:`engine.models.beat_guidance`). See :mod:`engine.train.captions` for what each measure means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Indices in the FK layout of engine.models.pose_repr.model_fk_layout (21 model joints + 2 toes).
_RSH, _RHAND, _LSH, _LHAND = 14, 16, 18, 20


@dataclass(frozen=True)
class FrameMeasures:
    """Per-frame measures of one clip, as cumulative sums (index i = sum over frames < i)."""

    cum: np.ndarray  # [T + 1, 5] cumulative sums of (speed, turn, travel, arm, steps)

    @property
    def n_frames(self) -> int:
        return len(self.cum) - 1


def hip_yaw(lower: np.ndarray) -> np.ndarray:
    """Heading of the hip (radians, unwrapped) per frame from the hip's 6D rotation in the lower vector.

    The hip's local z axis (its third column, from the 6D's two columns by a cross product) projected on
    the floor gives the facing direction.
    """
    a = lower[..., 3:6].astype(np.float64)
    b = lower[..., 6:9].astype(np.float64)
    a = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-9)
    b = b - (a * b).sum(-1, keepdims=True) * a
    b = b / (np.linalg.norm(b, axis=-1, keepdims=True) + 1e-9)
    z = np.cross(a, b)
    return np.unwrap(np.arctan2(z[..., 0], z[..., 2]), axis=-1)


def frame_measures(pos: np.ndarray, lower: np.ndarray, fps: float) -> FrameMeasures:
    """Per-frame measures (see the module doc) of a clip.

    Args:
        pos: [T, 23, 3] world positions (model joints + toes), metres.
        lower: [T, 61] lower-body vectors (hip rotation, contacts).
        fps: frame rate.
    """
    t = len(pos)
    if t < 2 or len(lower) != t:
        raise ValueError(f"need >= 2 frames of positions and vectors of one length, got {t} and {len(lower)}")
    return FrameMeasures(cum=np.concatenate([np.zeros((1, 5)), np.cumsum(per_frame_measures(pos, lower, fps), axis=0)]))


def per_frame_measures(pos: np.ndarray, lower: np.ndarray, fps: float) -> np.ndarray:
    """The per-frame measures [..., T, 5] (speed, turn, travel, arm, steps) of clips pos [..., T, 23, 3] and
    lower [..., T, 61] (leading axes: a batch of clips of T >= 2 frames each); :func:`frame_measures` sums them.
    A frame's rates come from it and the frame before; the first frame repeats the second's."""
    rel = pos.copy()
    rel[..., [0, 2]] -= pos[..., :1, [0, 2]]
    speed = np.linalg.norm(np.diff(rel, axis=-3), axis=-1).mean(-1) * fps  # [..., T-1]
    travel = np.linalg.norm(np.diff(pos[..., 0, [0, 2]], axis=-2), axis=-1) * fps
    turn = np.degrees(np.abs(np.diff(hip_yaw(lower), axis=-1))) * fps
    arm = 0.5 * ((pos[..., _RHAND, 1] - pos[..., _RSH, 1]) + (pos[..., _LHAND, 1] - pos[..., _LSH, 1]))  # [..., T]
    contacts = lower[..., -4:] > 0.5
    steps = (contacts[..., 1:, :] & ~contacts[..., :-1, :]).sum(-1).astype(np.float64) * fps / 2.0  # landings/s
    per = np.zeros((*pos.shape[:-2], 5))
    per[..., 1:, 0] = speed
    per[..., 1:, 1] = turn
    per[..., 1:, 2] = travel
    per[..., :, 3] = arm
    per[..., 1:, 4] = steps
    per[..., 0, [0, 1, 2, 4]] = per[..., 1, [0, 1, 2, 4]]  # the first frame repeats the second's rates
    return per

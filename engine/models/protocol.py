"""The motion-model protocol: what the runtime needs from any kind of model (GPT dancer, retrieval, ...).

The runtime drives every kind through this one interface and knows nothing else about it: performers are
added and removed by id; one :meth:`MotionModel.step` commits the next ``frames_per_step`` frames of every
performer from one music conditioning row; a performer can be reset (start over) or rewound (its newest
``n`` steps discarded, so a re-plan regenerates them); ``idle_pose`` is what silence settles into.
Model kinds live in :mod:`engine.models` and are named by the model card (``model_kind`` in ``model.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engine.skeleton.skeleton import Skeleton

#: Steps a :meth:`MotionModel.rewind` may go back by default and continue exactly from the last kept step (a re-plan
#: then leaves no seam; each kind keeps its state after each of its newest steps, see
#: :class:`engine.models.snapshots.SnapshotRing`); deeper rewinds may restart parts of it.
#: :meth:`MotionModel.keep_rewinds` changes how deep (the runtime asks for its lookahead, at most this).
REWIND_STEPS = 8


@dataclass
class Controls:
    """Run-time controls of one performer (set through WebSocket/OSC control messages).

    Every kind reads what it can use (genre, text) and ignores the rest; intensity is applied by playout.
    """

    genre: int = 1  # row of engine.models.conditioning.GENRES; 1 = salsa (the trained genre)
    text: np.ndarray | None = None  # [384] sentence embedding, or None
    intensity: float = 1.0  # 0..1: blend between the idle pose (0) and the dance (1)
    energy: float | None = None  # 0..1: how much the dancer moves (models trained with it); None: unset
    temperature: float = 1.0
    top_k: int = 0  # 0 = full distribution


@dataclass(frozen=True)
class Capabilities:
    """What a model kind accepts, so controls can be checked before they reach the engine thread."""

    n_genres: int  # genre ids in [0, n_genres)
    text: bool  # a text embedding conditions the motion
    keyframes: bool  # target poses can be pinned ahead
    energy: bool = False  # an energy level conditions the motion (else "energy" falls back to intensity)
    #: How a text control is embedded (``engine.models.text_prompts.TEXT_PROMPTS``): "sentence" as it is, or
    #: "attributes": matched to the measured-caption attributes first (models trained on measured captions).
    text_prompts: str = "sentence"
    #: ``step(cond, pids)`` can step some performers (their :meth:`MotionModel.step_group`) alone, so a control
    #: re-plans only the look-ahead of the performers it addresses (the runtime's control re-plan); False: ``pids``
    #: must be None.
    step_some: bool = False


@dataclass
class StepFrames:
    """The frames one step committed for one performer.

    Attributes:
        pid: performer id.
        step: index of the step for this performer (its token index for a GPT).
        root: [n, 3] float32 root position, metres.
        quat: [n, J, 4] float32 joint-local rotations (w, x, y, z) of the model's skeleton.
        pin_legs: [n] weight (0..1) with which a keyframe blend pins the legs on each frame (1: the frame *is*
            the keyframe's leg pose; :mod:`engine.models.inbetween`), or None where nothing pins them. The
            staging's stride correction (leg IK) gives way in proportion, so a pinned pose stays exact.
        under: while a keyframe blend is on, the frames as generated before it, with the one before them: root
            [n + 1, 3] and quat [n + 1, J, 4] (None otherwise). The staging holds every point of the blended frames
            at the larger of the keyframe speed cap and that point's speed in these frames, staged the same way.
    """

    pid: int
    step: int
    root: np.ndarray
    quat: np.ndarray
    pin_legs: np.ndarray | None = None
    under: tuple[np.ndarray, np.ndarray] | None = None


class MotionModel(Protocol):
    """One kind of motion model, stepped for a batch of performers (see the module doc)."""

    kind: str
    skeleton: Skeleton
    n_joints: int
    frames_per_step: int
    capabilities: Capabilities

    def performer_ids(self) -> list[int]:
        """Ids of the active performers, in step order."""
        ...

    def add_performer(self, controls: Controls | None = None) -> int:
        """Admit a performer (fresh sequence); returns its id."""
        ...

    def remove_performer(self, pid: int) -> None: ...

    def controls(self, pid: int) -> Controls:
        """The performer's live controls (the runtime changes them between steps)."""
        ...

    def step(self, cond: np.ndarray, pids: Sequence[int] | None = None) -> list[StepFrames]:
        """Commit the next ``frames_per_step`` frames of every performer (or only of ``pids``, a re-plan of some
        performers after a rewind: a :meth:`step_group`) from one music row [cond_dim]."""
        ...

    def step_group(self, pids: Sequence[int]) -> list[int]:
        """The performers that step, reset and rewind together with ``pids`` (``pids`` included, in step order): a
        couple's two partners, since the follower is conditioned on its leader; ``pids`` for independent kinds."""
        ...

    def keep_rewinds(self, steps: int) -> None:
        """Keep the state a :meth:`rewind` of up to ``steps`` steps needs to continue exactly (default
        :data:`REWIND_STEPS`); 0 keeps nothing and saves its cost every step (nothing can rewind: the runtime at
        lookahead 0, an offline render). Drops what was kept."""
        ...

    def reset(self, pid: int, root_xz: np.ndarray | None = None) -> None:
        """Start the performer's sequence over, where it stands (or at ``root_xz`` [2], metres)."""
        ...

    def rewind(self, pid: int, n: int, root_xz: np.ndarray | None = None) -> None:
        """Discard the performer's newest ``n`` steps (regenerated next); ``root_xz`` is where it stands now
        (a model that kept its state after the last kept step, see :data:`REWIND_STEPS`, continues from that)."""
        ...

    def set_keyframe(self, pid: int, frames_ahead: int, root: np.ndarray, quat: np.ndarray,
                     joints: str = "all") -> None:
        """Pin the pose (root [3], joint rotations [J, 4]) ``frames_ahead`` frames after the newest generated
        frame; ``joints`` "all", "upper" or "lower" says which joints it pins."""
        ...

    def idle_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """A natural standing pose: root [3] with x = z = 0, joint rotations [J, 4]."""
        ...

    def describe(self) -> dict[str, Any]:
        """Counters and settings for reports (steps, guided tokens, ...)."""
        ...

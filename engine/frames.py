"""Typed, time-stamped messages passed between pipeline stages.

Every message carries two stamps so latency can be measured anywhere without guessing:

* ``sample_index``: the engine-rate audio sample index (at ``ENGINE_SAMPLE_RATE``) of the newest
  sample the message depends on (for an audio block: one past its last sample).
* ``capture_ns``: ``time.monotonic_ns()`` (through :mod:`engine.clock`) at which that newest audio
  became available to the engine. Poses carry it forward; on the wire it is ``src_monotonic_ns``.

This module is the floor of the package: it imports nothing of ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Sample rate of every AudioBlock inside the engine; sources resample to it.
ENGINE_SAMPLE_RATE = 22050
#: Model frame rate (poses and music features).
MODEL_FPS = 30
#: Audio samples per model frame (22050 / 30).
SAMPLES_PER_FRAME = ENGINE_SAMPLE_RATE // MODEL_FPS


@dataclass(frozen=True, slots=True)
class Frame:
    """Base of every message: where in the audio it comes from, and when that audio arrived."""

    sample_index: int
    capture_ns: int


@dataclass(frozen=True, slots=True)
class AudioBlock(Frame):
    """Mono float32 audio at ``sample_rate``; ``sample_index`` is one past its last sample."""

    samples: np.ndarray  # [n] float32, owned by the message (sources copy driver buffers)
    sample_rate: int = ENGINE_SAMPLE_RATE
    overflowed: bool = False  # the device reported an overflow/xrun before this block

    @property
    def start_index(self) -> int:
        return self.sample_index - len(self.samples)


@dataclass(frozen=True, slots=True)
class BeatEvent(Frame):
    """A beat the tracker committed to. ``sample_index`` is the hop at which it was decided."""

    time_s: float  # beat time on the engine's audio timeline (seconds from stream start)
    bpm: float
    confidence: float  # 0..1
    phase: float  # beat phase at decision time, 0..1 (0 = on the beat)
    next_beat_s: float  # predicted time of the next beat
    beat_in_bar: int = 0  # 0 = downbeat estimate, -1 = unknown
    beats_per_bar: int = 4


@dataclass(frozen=True, slots=True)
class OnsetEvent(Frame):
    time_s: float
    strength: float


@dataclass(frozen=True, slots=True)
class FeatureFrame(Frame):
    """Music (or speech) features for one model frame (1/30 s).

    ``features`` follows the layout named in :mod:`engine.analysis.features`. The tempo fields are
    the tracker's belief at this frame, so a consumer can predict beat phase for future frames:
    ``phase(t) = ((t - next_beat_s) / period_s) mod 1``.
    """

    frame_index: int
    features: np.ndarray  # [D] float32
    bpm: float
    period_s: float
    next_beat_s: float
    confidence: float
    kind: str = "music"  # "music" | "speech"
    # The beat the features' tracker committed during this frame (-1: none); what the beat flag marks.
    beat_s: float = -1.0
    # The beat output's belief (BeatEvents, VJ beat pulses, Ableton Link): with the default tracker a
    # filter on the beat network, which may differ from the features' tracker above (docs/audio.md).
    pulse_next_s: float = -1.0  # predicted next beat (s), -1 before a tempo exists
    pulse_period_s: float = 0.0
    pulse_confidence: float = 0.0  # 0..1; pulses are sent only above the tracker's reporting threshold
    pulse_active: bool = False  # the beat output reports beats now (its confidence is above its threshold)

    def phase_at(self, t_s: float) -> float:
        """Predicted beat phase (0..1) at time ``t_s`` from this frame's tempo belief."""
        if self.period_s <= 0:
            return 0.0
        return float(((t_s - self.next_beat_s) / self.period_s) % 1.0)


@dataclass(frozen=True, slots=True)
class PoseFrame(Frame):
    """One pose of one performer, in engine space: right-handed, Y up, metres.

    ``rotations`` are joint-local unit quaternions (w, x, y, z) in the order of the skeleton's
    joints; ``root_position`` is the root joint's translation. ``positions`` (world joint
    positions) is optional and filled by whoever already ran forward kinematics.
    """

    frame_index: int
    performer: int
    skeleton: str  # name of a registered Skeleton, e.g. "cmu" or "smpl"
    root_position: np.ndarray  # [3] float32
    rotations: np.ndarray  # [J, 4] float32, (w, x, y, z)
    positions: np.ndarray | None = None  # [J, 3] float32 world positions, optional
    time_s: float = 0.0  # time of this pose on the output timeline
    bpm: float = 0.0
    beat_phase: float = 0.0
    beat: bool = False  # a beat falls on this frame
    energy: float = 0.0  # 0..1 music energy for VJ tools
    fps: float = float(MODEL_FPS)
    # monotonic time (ns) at which the frame is due to play out, its ``beat_phase`` being the phase then (0:
    # unknown, e.g. fast mode); a sink that steers a clock from the phase (Ableton Link) measures from it, so
    # a frame sent late does not move the beat by its lateness
    due_ns: int = 0


@dataclass(frozen=True, slots=True)
class ControlMessage(Frame):
    """A validated run-time control (genre, text, keyframe, intensity, reset) for one performer."""

    kind: str
    performer: int = -1  # -1 = all performers
    value: Any = None


@dataclass(frozen=True, slots=True)
class EndOfStream(Frame):
    """The source ended (file over, device closed); ``reason`` says why."""

    reason: str = ""


@dataclass(slots=True)
class SourceStats:
    """Counters a source reports; never fatal."""

    blocks: int = 0
    overflows: int = 0
    underflows: int = 0
    dropped_blocks: int = 0
    errors: list[str] = field(default_factory=list)

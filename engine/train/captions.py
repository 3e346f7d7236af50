"""Captions and the energy label from measurable attributes of real motion windows (pure numpy).

A caption describes what a window of motion measurably does, so a text control has something real to
follow. Per frame (:func:`frame_measures`, from world joint positions in the FK layout of
:func:`engine.models.pose_repr.model_fk_layout` and the pose vectors):

* ``speed``: mean root-relative joint speed (m/s): the *energy* of the motion;
* ``turn``: absolute hip yaw rate (deg/s): *turning*;
* ``travel``: horizontal root speed (m/s): *travelling*;
* ``arm``: mean height of the two hands above the shoulders (m): *arm height*;
* ``steps``: foot-contact onsets (a foot point landing; 1 on that frame): *footwork*.

A window's attributes are the means of these over its frames (:func:`window_attributes`, O(1) per window from
cumulative sums). :func:`attribute_thresholds` takes the lower and upper tercile of every attribute over
the training windows (energy within each style, the others over all styles); a caption names the style,
the energy tercile, the tempo class, the role, and each other attribute that lies in its lower or upper
tercile, in several phrasings, with a random subset of those parts (:func:`caption`). The energy *control*
is the window's speed percentile within its style (:func:`energy_percentile`), in 0..1.

The same measures score generated dances (``groovecast eval --controls``), so "arms high" is checked
by the quantity it was trained from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.models.motion_measures import FrameMeasures, frame_measures, hip_yaw
from engine.models.text_prompts import PHRASES

__all__ = ["FrameMeasures", "frame_measures", "hip_yaw"]  # the per-frame measures live with the models (run time)

#: Attributes a caption can name besides style, tempo and role, in the order of ``WindowAttributes``.
ATTRIBUTES: tuple[str, ...] = ("speed", "turn", "travel", "arm", "steps")

# Indices in the FK layout of engine.models.pose_repr.model_fk_layout (21 model joints + 2 toes).
_RFOOT, _LFOOT = 4, 8
_RTOE, _LTOE = 21, 22

#: Phrasings per attribute class (:data:`engine.models.text_prompts.PHRASES`: the run-time prompt matcher reads the
#: same bank). The first of each list is the short prompt the evaluation uses (``groovecast eval --controls``); the
#: held-out paraphrases in :data:`HELD_OUT_PROMPTS` are never trained.
STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "salsa": ("salsa", "a salsa dance", "dancing salsa"),
    "indian": ("indian dance", "an indian dance", "indian classical style"),
    "modern": ("modern dance", "a modern dance", "contemporary ballet style"),
}
#: Opposite prompts per attribute (asked-for-low, asked-for-high): the trained short forms, and held-out
#: paraphrases no caption contains (a check that any sentence works, not only the training phrasings).
EVAL_PROMPTS: dict[str, tuple[str, str]] = {
    "speed": ("calm", "energetic"),
    "arm": ("arms low", "arms high"),
    "turn": ("no turns", "spinning"),
    "travel": ("stay in place", "travel across the floor"),
}
HELD_OUT_PROMPTS: dict[str, tuple[str, str]] = {
    "speed": ("a quiet, sleepy little dance", "a wild and furious dance"),
    "arm": ("hands by the hips", "reaching for the sky"),
    "turn": ("always facing the audience", "twirling like a top"),
    "travel": ("on one spot", "roaming all over the stage"),
}


def window_attributes(m: FrameMeasures, start: int, stop: int) -> np.ndarray:
    """Mean (speed m/s, turn deg/s, travel m/s, arm m, steps /s) over frames [start, stop)."""
    start = max(0, min(start, m.n_frames - 1))
    stop = max(start + 1, min(stop, m.n_frames))
    return (m.cum[stop] - m.cum[start]) / (stop - start)


def clip_attributes(pos: np.ndarray, lower: np.ndarray, fps: float) -> np.ndarray:
    """The attributes of a whole clip (one window over all its frames)."""
    m = frame_measures(pos, lower, fps)
    return window_attributes(m, 0, m.n_frames)


@dataclass(frozen=True)
class Thresholds:
    """Lower/upper terciles: ``all`` [5, 2] over every training window; ``speed_by_style`` per style
    (energy is relative to the style: a calm salsa and a calm modern dance differ), with the style's sorted
    window speeds for the energy percentile."""

    all: np.ndarray
    speed_by_style: dict[str, tuple[float, float]]
    speeds_by_style: dict[str, np.ndarray]


def attribute_thresholds(attrs: np.ndarray, styles: list[str]) -> Thresholds:
    """Terciles of window attributes [N, 5] (one style name per window)."""
    if len(attrs) == 0 or len(attrs) != len(styles):
        raise ValueError(f"need one style per window and at least one window, got {len(attrs)} / {len(styles)}")
    allt = np.percentile(attrs, [100 / 3, 200 / 3], axis=0).T  # [5, 2]
    by: dict[str, tuple[float, float]] = {}
    sp: dict[str, np.ndarray] = {}
    st = np.asarray(styles)
    for s in sorted(set(styles)):
        v = attrs[st == s, 0]
        lo, hi = np.percentile(v, [100 / 3, 200 / 3])
        by[s] = (float(lo), float(hi))
        sp[s] = np.sort(v)
    return Thresholds(all=allt, speed_by_style=by, speeds_by_style=sp)


def energy_percentile(speed: float, style: str, th: Thresholds) -> float:
    """The window speed's percentile (0..1) among the training windows of its style (of all, if unknown)."""
    ref = th.speeds_by_style.get(style)
    if ref is None:
        ref = np.sort(np.concatenate(list(th.speeds_by_style.values())))
    return float(np.searchsorted(ref, speed, side="right") / max(1, len(ref)))


def classes(attrs: np.ndarray, style: str, th: Thresholds) -> dict[str, str]:
    """Attribute classes of one window: speed low/mid/high (within its style); the others low/high when in
    their lower/upper tercile (a middle value is not named)."""
    lo, hi = th.speed_by_style.get(style, (float(th.all[0, 0]), float(th.all[0, 1])))
    out = {"speed": "low" if attrs[0] < lo else ("high" if attrs[0] > hi else "mid")}
    for i, name in enumerate(ATTRIBUTES[1:], start=1):
        if attrs[i] < th.all[i, 0]:
            out[name] = "low"
        elif attrs[i] > th.all[i, 1]:
            out[name] = "high"
    return out


def tempo_class(bpm: float) -> str:
    return "slow" if bpm < 95 else ("medium" if bpm < 120 else "fast")


def caption(cls: dict[str, str], style: str, tempo: str, role: str, rng: np.random.Generator) -> str:
    """One caption: a random subset (at least one) of the style, the role, the tempo and the named
    attribute classes, each in a random phrasing, in random order, joined by commas."""
    parts: list[str] = []
    if style in STYLE_PHRASES and rng.random() < 0.5:
        parts.append(str(rng.choice(STYLE_PHRASES[style])))
    if rng.random() < 0.25:
        parts.append(str(rng.choice(PHRASES["role"][role])))
    if rng.random() < 0.25:
        parts.append(str(rng.choice(PHRASES["tempo"][tempo])))
    named = [(k, v) for k, v in cls.items() if k in PHRASES and v in PHRASES[k]]
    for k, v in named:
        if rng.random() < 0.5:
            parts.append(str(rng.choice(PHRASES[k][v])))
    if not parts:
        k, v = named[int(rng.integers(len(named)))] if named else ("role", role)
        parts.append(str(rng.choice(PHRASES[k][v])))
    order = rng.permutation(len(parts))
    return ", ".join(parts[i] for i in order)


def role_of(name: str) -> str:
    """Role of a training sequence from its name (``_d60`` lead, ``_d61`` follow, else solo)."""
    if "_d60" in name:
        return "leader"
    if "_d61" in name:
        return "follower"
    return "solo"

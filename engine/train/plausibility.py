"""Is a motion clip humanly plausible at the rate it is read? Root speed, spin rate and step cadence.

A capture read at the wrong frame rate scales every speed by the same factor, so a few human limits
catch it: dancers travel at well under a walking pace most of the time, do not spin at over 2
revolutions per second for 5 % of a dance, and plant a foot at most a few times per second. The limits
leave margin around all the real takes at their true rates; the salsa takes read at their headers'
120 fps break them (tested in ``tests/train/test_plausibility.py``), and so do the Indian and modern
takes read at twice their rate, and salsa and Indian at half. Not caught: modern read at half its rate
(its typical clip is slow and fast limbs at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from engine.models.pose_repr import Motion, foot_contacts, foot_points


@dataclass(frozen=True)
class HumanRanges:
    """Limits as (low, high) per statistic, for one clip or for the median clip of a source."""

    root_speed_median_ms: tuple[float, float]  # horizontal root speed, median over frames
    spin_p95_rev_s: tuple[float, float]  # hip yaw rate, 95th percentile
    cadence_hz: tuple[float, float]  # foot plants per second (both feet)
    joint_speed_mean_ms: tuple[float, float]  # mean joint speed relative to the root


#: Every clip: extremes no dance clip reaches (sustained sprinting or spinning).
CLIP_RANGES = HumanRanges(
    root_speed_median_ms=(0.0, 1.3), spin_p95_rev_s=(0.0, 2.2), cadence_hz=(0.0, 4.0), joint_speed_mean_ms=(0.05, 2.2),
)
#: The median clip of a source: a typical dance. Measured at the true rates (median clip): salsa 0.53 m/s,
#: 0.85 rev/s, 1.8 plants/s, 0.60 m/s; Indian 0.43, 0.26, 1.8, 0.76; modern 0.32, 0.69, 1.1, 1.09.
SOURCE_RANGES = HumanRanges(
    root_speed_median_ms=(0.1, 0.8), spin_p95_rev_s=(0.0, 1.5), cadence_hz=(0.5, 2.5), joint_speed_mean_ms=(0.45, 1.4),
)


@dataclass(frozen=True)
class MotionStats:
    root_speed_median_ms: float
    spin_p95_rev_s: float
    cadence_hz: float
    joint_speed_mean_ms: float

    def violations(self, r: HumanRanges) -> list[str]:
        """Human-readable list of the limits broken (empty: plausible)."""
        out = []
        for name, unit in (("root_speed_median_ms", "m/s"), ("spin_p95_rev_s", "rev/s"), ("cadence_hz", "/s"),
                           ("joint_speed_mean_ms", "m/s")):
            v = getattr(self, name)
            lo, hi = getattr(r, name)
            if not lo <= v <= hi:
                out.append(f"{name} {v:.2f} {unit} outside [{lo}, {hi}]")
        return out


def source_violations(stats: list[MotionStats]) -> list[str]:
    """Limits broken by a source's clips: each clip against :data:`CLIP_RANGES`, the per-statistic median
    clip against :data:`SOURCE_RANGES`."""
    if not stats:
        return ["no clips"]
    out = [f"clip {i}: {v}" for i, s in enumerate(stats) for v in s.violations(CLIP_RANGES)]
    med = MotionStats(*(float(np.median([getattr(s, f) for s in stats])) for f in (
        "root_speed_median_ms", "spin_p95_rev_s", "cadence_hz", "joint_speed_mean_ms")))
    out += [f"median clip: {v}" for v in med.violations(SOURCE_RANGES)]
    return out


def _debounce(on: np.ndarray, min_frames: int) -> np.ndarray:
    """Fill gaps and remove runs shorter than ``min_frames`` in a boolean series."""
    x = on.copy()
    for val in (False, True):  # fill short gaps, then drop short contacts
        i = 0
        n = len(x)
        while i < n:
            if x[i] == val:
                j = i
                while j < n and x[j] == val:
                    j += 1
                if j - i < min_frames and i > 0 and j < n:
                    x[i:j] = not val
                i = j
            else:
                i += 1
    return x


def motion_stats(motion: Motion) -> MotionStats:
    """Root speed, spin, cadence and joint speed of a metric Motion at its stated ``fps``."""
    from engine.skeleton.skeleton import forward_kinematics

    fps = motion.fps
    root = motion.root_pos
    v = np.linalg.norm(np.diff(root[:, [0, 2]], axis=0), axis=1) * fps
    fwd = motion.rot[:, 0, :, 2]  # the hip's forward axis in world space
    yaw = np.unwrap(np.arctan2(fwd[:, 0], fwd[:, 2]))
    yaw = gaussian_filter1d(yaw, sigma=max(1.0, fps / 30.0))
    spin = np.abs(np.diff(yaw)) * fps / (2 * np.pi)
    pts = foot_points(motion.skeleton, root, motion.rot)
    c = foot_contacts(pts, fps)
    min_frames = max(1, round(0.1 * fps))
    plants = 0
    for a, b in ((0, 1), (2, 3)):
        foot = _debounce(np.maximum(c[:, a], c[:, b]) > 0.5, min_frames)
        plants += int(np.sum(np.diff(foot.astype(np.int8)) > 0))
    pos = forward_kinematics(motion.skeleton, root, motion.rot)
    rel = pos - pos[:, :1]
    js = np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean() * fps
    dur = max(len(root) / fps, 1e-9)
    return MotionStats(
        root_speed_median_ms=float(np.median(v)),
        spin_p95_rev_s=float(np.percentile(spin, 95)),
        cadence_hz=plants / dur,
        joint_speed_mean_ms=float(js),
    )

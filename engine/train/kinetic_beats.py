"""Kinetic beats: estimate a dance's tempo and beat times from its motion alone.

Motion beats are where the body's joint speed reaches a local minimum (Bailando's definition). We
turn the speed curve into a "kinetic onset envelope" (an impulse at each minimum, weighted by its
prominence), pick the tempo from its autocorrelation tempogram within a BPM range, and place beats with dynamic
programming (Ellis 2007: maximise envelope at beats minus a penalty on log deviation from the period),
so beats follow the dancer's small timing drifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d


@dataclass
class KineticBeats:
    """Tempo and beat grid estimated from motion."""

    bpm: float
    beats_s: np.ndarray  # [B] beat times in seconds
    envelope: np.ndarray  # [T] kinetic onset envelope at the motion's frame rate
    fps: float


def joint_speed(positions: np.ndarray, fps: float) -> np.ndarray:
    """Mean joint speed (units/s) per frame. positions: [T, J, 3] -> [T]."""
    v = np.diff(positions, axis=0) * fps  # [T-1, J, 3]
    s = np.linalg.norm(v, axis=-1).mean(axis=-1)
    return np.concatenate([s[:1], s])


def kinetic_envelope(speed: np.ndarray, fps: float, smooth_s: float = 1.0 / 12.0) -> np.ndarray:
    """Impulses at the local minima of the smoothed speed, weighted by their prominence. [T] -> [T].

    Motion beats are speed minima (Bailando); weighting each by how deep it is keeps small wobbles from
    counting as beats. The impulses are widened slightly (sigma 1.5 frames at 60 fps) for the tempogram.
    """
    from scipy.signal import find_peaks

    s = gaussian_filter1d(speed.astype(np.float64), sigma=max(1e-3, smooth_s * fps))
    idx, props = find_peaks(-s, prominence=0.0)
    env = np.zeros_like(s)
    env[idx] = props["prominences"]
    env = gaussian_filter1d(env, sigma=1.5 * fps / 60.0)
    peak = float(env.max()) or 1.0
    return env / peak


def estimate_tempo(envelope: np.ndarray, fps: float, bpm_range: tuple[float, float] = (80.0, 140.0)) -> float:
    """Tempo (BPM) from the autocorrelation of the envelope, weighted toward ~110 BPM (log-Gaussian)."""
    e = envelope - envelope.mean()
    n = len(e)
    ac = np.correlate(e, e, mode="full")[n - 1 :]
    ac = ac / (ac[0] or 1.0)
    lo = int(np.floor(fps * 60.0 / bpm_range[1]))
    hi = int(np.ceil(fps * 60.0 / bpm_range[0]))
    hi = min(hi, n - 1)
    if hi <= lo + 1:
        raise ValueError(f"motion too short ({n} frames) for tempo estimation")
    lags = np.arange(lo, hi + 1)
    bpm = 60.0 * fps / lags
    # Tempogram: autocorrelation at the lag plus its multiples (reinforces the true period).
    score = ac[lags].copy()
    for mult in (2, 3, 4):
        ok = lags * mult < n
        score[ok] += 0.5 * ac[lags[ok] * mult]
    score *= np.exp(-0.5 * (np.log2(bpm / 110.0) / 0.6) ** 2)
    k = int(np.argmax(score))
    # Parabolic refinement of the lag.
    if 0 < k < len(score) - 1:
        a, b, c = score[k - 1], score[k], score[k + 1]
        den = a - 2 * b + c
        off = 0.5 * (a - c) / den if den != 0 else 0.0
        lag = lags[k] + float(np.clip(off, -0.5, 0.5))
    else:
        lag = float(lags[k])
    return float(60.0 * fps / lag)


def track_beats(envelope: np.ndarray, fps: float, bpm: float, tightness: float = 100.0) -> np.ndarray:
    """Beat times (s) by dynamic programming on the envelope at a target tempo."""
    period = 60.0 * fps / bpm  # frames
    n = len(envelope)
    local = gaussian_filter1d(envelope, sigma=max(1.0, period / 16.0))
    score = local.copy()
    back = -np.ones(n, dtype=np.int64)
    lo, hi = round(period / 2), round(2 * period)
    for t in range(n):
        prev = np.arange(max(0, t - hi), max(0, t - lo + 1))
        if len(prev) == 0:
            continue
        pen = -tightness * np.log((t - prev) / period) ** 2
        cand = score[prev] + pen
        j = int(np.argmax(cand))
        if cand[j] > 0:
            score[t] = local[t] + cand[j]
            back[t] = prev[j]
    # Start from the best-scoring frame within the last period and follow back-pointers.
    tail = np.arange(max(0, n - round(period)), n)
    t = int(tail[np.argmax(score[tail])])
    beats = [t]
    while back[t] >= 0:
        t = int(back[t])
        beats.append(t)
    frames = np.array(beats[::-1], dtype=np.float64)
    # Fill any gaps the DP left at the start with the period (keeps music running from t=0).
    while frames[0] - period > 0:
        frames = np.concatenate([[frames[0] - period], frames])
    return frames / fps


def kinetic_beats(
    positions: list[np.ndarray], fps: float, bpm_range: tuple[float, float] = (80.0, 140.0)
) -> KineticBeats:
    """Estimate one beat grid shared by several dancers of the same take.

    Args:
        positions: list of [T, J, 3] joint positions (same T, same take).
        fps: frame rate of the positions.
        bpm_range: allowed tempo range.
    """
    env = np.zeros(len(positions[0]))
    for p in positions:
        env += kinetic_envelope(joint_speed(p, fps), fps)
    env /= float(env.max()) or 1.0
    bpm = estimate_tempo(env, fps, bpm_range)
    beats = track_beats(env, fps, bpm)
    return KineticBeats(bpm=bpm, beats_s=beats, envelope=env, fps=fps)

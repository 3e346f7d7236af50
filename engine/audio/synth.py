"""Synthetic signals with exact ground truth: click tracks (steady, ramps, jumps), silence, noise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.frames import ENGINE_SAMPLE_RATE


def beat_times_from_tempo(
    segments: Sequence[tuple[float, float, float]], first_beat_s: float = 0.5
) -> np.ndarray:
    """Exact beat times for piecewise tempo: ``segments`` are ``(duration_s, bpm_start, bpm_end)``.

    Within a segment the tempo moves linearly from ``bpm_start`` to ``bpm_end`` (a ramp; equal values
    give a steady tempo, a segment starting at a different BPM than the previous one ended is a jump).
    Beat ``k+1`` follows beat ``k`` after ``60 / bpm(t_k)`` seconds.
    """
    beats: list[float] = []
    t = first_beat_s
    seg_start = 0.0
    for duration, b0, b1 in segments:
        if duration <= 0 or b0 <= 0 or b1 <= 0:
            raise ValueError(f"bad tempo segment {(duration, b0, b1)}: duration and BPM must be positive")
        seg_end = seg_start + duration
        while t < seg_end:
            beats.append(t)
            bpm = b0 + (b1 - b0) * (t - seg_start) / duration
            t += 60.0 / bpm
        seg_start = seg_end
    return np.asarray(beats, dtype=np.float64)


def click_track(
    beat_times: np.ndarray,
    duration_s: float,
    sample_rate: int = ENGINE_SAMPLE_RATE,
    accent_every: int = 4,
    click_hz: float = 1000.0,
    amplitude: float = 0.5,
) -> np.ndarray:
    """Mono float32 clicks (10 ms decaying sine bursts) starting exactly at ``beat_times``.

    Every ``accent_every``-th click (from the first) is higher and louder, like a metronome's bar.
    """
    n = round(duration_s * sample_rate)
    out = np.zeros(n, dtype=np.float32)
    click_len = int(0.02 * sample_rate)
    t = np.arange(click_len) / sample_rate
    env = np.exp(-t / 0.004)
    normal = (amplitude * env * np.sin(2 * np.pi * click_hz * t)).astype(np.float32)
    accent = (min(1.0, amplitude * 1.6) * env * np.sin(2 * np.pi * click_hz * 1.5 * t)).astype(np.float32)
    for k, bt in enumerate(beat_times):
        start = round(bt * sample_rate)
        if start >= n:
            break
        click = accent if accent_every > 0 and k % accent_every == 0 else normal
        end = min(n, start + click_len)
        out[start:end] += click[: end - start]
    return out


def silence(duration_s: float, sample_rate: int = ENGINE_SAMPLE_RATE) -> np.ndarray:
    return np.zeros(round(duration_s * sample_rate), dtype=np.float32)


def noise(duration_s: float, sample_rate: int = ENGINE_SAMPLE_RATE, level: float = 0.1, seed: int = 0) -> np.ndarray:
    """White noise, uniform in [-level, level], reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * sample_rate)
    return (rng.uniform(-level, level, n)).astype(np.float32)


class SyntheticSignal:
    """A synthetic signal and its exact ground truth, ready to play through :class:`ArraySource`."""

    def __init__(self, samples: np.ndarray, beats: np.ndarray | None = None, name: str = "synthetic") -> None:
        self.samples = samples  # [n] float32 at ENGINE_SAMPLE_RATE
        self.beats = beats if beats is not None else np.zeros(0)  # [B] seconds
        self.name = name

    @classmethod
    def clicks(
        cls, segments: Sequence[tuple[float, float, float]], first_beat_s: float = 0.5, noise_level: float = 0.0
    ) -> SyntheticSignal:
        """Clicks for piecewise tempo ``(duration_s, bpm_start, bpm_end)``; see :func:`beat_times_from_tempo`."""
        duration = float(sum(s[0] for s in segments))
        beats = beat_times_from_tempo(segments, first_beat_s)
        x = click_track(beats, duration)
        if noise_level > 0:
            x = x + noise(duration, level=noise_level)
        name = "clicks " + ", ".join(f"{b0:g}->{b1:g} BPM for {d:g}s" for d, b0, b1 in segments)
        return cls(x.astype(np.float32), beats, name)

    @classmethod
    def silence(cls, duration_s: float) -> SyntheticSignal:
        return cls(silence(duration_s), None, "silence")

    @classmethod
    def noise(cls, duration_s: float, level: float = 0.1, seed: int = 0) -> SyntheticSignal:
        return cls(noise(duration_s, level=level, seed=seed), None, "noise")

"""Synthetic salsa-style rhythm tracks locked to given beat times (numpy synthesiser; labelled synthetic).

The CMU salsa takes have no music, so each take is paired with a track rendered onto the beats
estimated from its motion (see :mod:`engine.train.kinetic_beats`): clave (3-2 son), congas, a soft
pulse, bass tumbao and piano-style chords. Beat times may drift; every event is placed by interpolating
its fractional beat position on the given beat grid, so the music follows the dance's own timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.frames import ENGINE_SAMPLE_RATE

#: Label written next to every rendered track.
SYNTHETIC_LABEL = "synthetic: numpy-rendered rhythm track locked to kinetic beats of the motion (not recorded music)"

# Chord progressions as semitone offsets of chord roots from the key, 2 beats per chord... 4 beats per chord.
_PROGRESSIONS = [
    [0, 5, 7, 5],  # I IV V IV (the classic montuno)
    [2, 7, 0, 0],  # ii V I I
    [0, 9, 5, 7],  # I vi IV V
    [9, 2, 7, 0],  # vi ii V I (minor feel)
]


@dataclass
class SynthStyle:
    """Random but reproducible per-track choices."""

    key_midi: int
    progression: list[int]
    minor: bool
    gains: dict[str, float]
    conga_pitch: float
    bell: bool

    @classmethod
    def random(cls, rng: np.random.Generator) -> SynthStyle:
        return cls(
            key_midi=int(rng.integers(40, 52)),
            progression=list(_PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]),
            minor=bool(rng.random() < 0.4),
            gains={
                "clave": float(rng.uniform(0.25, 0.45)),
                "conga": float(rng.uniform(0.3, 0.5)),
                "pulse": float(rng.uniform(0.7, 0.9)),
                "bass": float(rng.uniform(0.3, 0.5)),
                "chords": float(rng.uniform(0.08, 0.14)),
                "bell": float(rng.uniform(0.08, 0.16)),
            },
            conga_pitch=float(rng.uniform(180.0, 260.0)),
            bell=bool(rng.random() < 0.6),
        )


def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def _beat_to_time(b: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Fractional beat index -> seconds, linear within the grid and extrapolated at its ends."""
    idx = np.arange(len(beats), dtype=np.float64)
    t = np.interp(b, idx, beats)
    p0 = beats[1] - beats[0]
    p1 = beats[-1] - beats[-2]
    t = np.where(b < 0, beats[0] + b * p0, t)
    t = np.where(b > idx[-1], beats[-1] + (b - idx[-1]) * p1, t)
    return t


class _Mixer:
    def __init__(self, n: int, sr: int) -> None:
        self.buf = np.zeros(n, dtype=np.float64)
        self.sr = sr

    def add(self, t0: float, sound: np.ndarray, gain: float) -> None:
        i0 = round(t0 * self.sr)
        if i0 >= len(self.buf) or i0 + len(sound) <= 0:
            return
        s0 = max(0, -i0)
        i0 = max(0, i0)
        n = min(len(sound) - s0, len(self.buf) - i0)
        self.buf[i0 : i0 + n] += gain * sound[s0 : s0 + n]


def _decay_tone(sr: int, freqs: list[float], dur: float, tau: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    env = np.exp(-t / tau) * np.minimum(1.0, t / 0.003)
    out = np.zeros_like(t)
    for k, f in enumerate(freqs):
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) / (1 + k)
    return out * env


def _noise_burst(sr: int, dur: float, tau: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    n = rng.standard_normal(len(t))
    n = np.diff(n, prepend=0.0)  # crude high-pass: hat-like
    return n * np.exp(-t / tau) * 0.5


def render_track(beats_s: np.ndarray, duration_s: float, seed: int = 0, sr: int = ENGINE_SAMPLE_RATE) -> np.ndarray:
    """Render a synthetic salsa rhythm track whose beats fall exactly on ``beats_s``.

    Args:
        beats_s: [B] increasing beat times in seconds (B >= 2); beat 0 is taken as a downbeat.
        duration_s: length of the output.
        seed: style and humanisation seed.
        sr: sample rate.

    Returns:
        [round(duration_s*sr)] float32 mono in [-1, 1].
    """
    beats = np.asarray(beats_s, dtype=np.float64)
    if beats.ndim != 1 or len(beats) < 2 or np.any(np.diff(beats) <= 0):
        raise ValueError("beats_s must be an increasing 1-D array of at least 2 beat times")
    rng = np.random.default_rng(seed)
    style = SynthStyle.random(rng)
    mix = _Mixer(round(duration_s * sr), sr)
    period = float(np.median(np.diff(beats)))
    # Beat indices covering the whole track (extrapolating before the first / after the last beat).
    b_first = int(np.floor((0.0 - beats[0]) / period)) - 1
    b_last = len(beats) + int(np.ceil((duration_s - beats[-1]) / period)) + 1
    g = style.gains
    third = 3 if style.minor else 4

    def at(b: float) -> float:
        return float(_beat_to_time(np.array([b]), beats)[0])

    for b in range(b_first, b_last):
        bar_pos = b % 4  # beat in bar
        two_bar = b % 8
        accent = 1.0 if bar_pos == 0 else 0.7
        # Low pulse with a click on every beat: the steady reference the dancers step to. It is kept clearly
        # stronger than the off-beat parts (shaker, montuno, bass anticipation) so a beat tracker locks
        # to the beats, not to the off-beats that salsa otherwise stresses.
        kick = _decay_tone(sr, [55.0, 110.0], 0.25, 0.06, rng)
        kick[: len(kick) // 20] += 0.8 * _noise_burst(sr, 0.25, 0.004, rng)[: len(kick) // 20]
        mix.add(at(b), kick, g["pulse"] * accent)
        # Off-beat shaker/hat.
        mix.add(at(b + 0.5), _noise_burst(sr, 0.06, 0.015, rng), 0.12 * g["pulse"])
        # 3-2 son clave over two bars: beats 0, 1.5, 3 | 5, 6.
        for cb in (0.0, 1.5, 3.0, 5.0, 6.0):
            if two_bar == int(cb):
                mix.add(at(b + (cb - int(cb))), _decay_tone(sr, [2500.0, 3700.0], 0.06, 0.012, rng), g["clave"])
        # Conga tumbao: slap on 2, open tones on 4 and the "and" of 4.
        if bar_pos == 1:
            mix.add(at(b), _decay_tone(sr, [style.conga_pitch * 1.6], 0.12, 0.02, rng), g["conga"] * 0.8)
        if bar_pos == 3:
            for off, gain in ((0.0, 1.0), (0.5, 0.5)):
                mix.add(at(b + off), _decay_tone(sr, [style.conga_pitch, style.conga_pitch * 1.5], 0.25, 0.07, rng),
                        g["conga"] * gain)
        if style.bell and bar_pos in (0, 2):
            mix.add(at(b), _decay_tone(sr, [1200.0, 1860.0, 2770.0], 0.2, 0.05, rng), g["bell"])
        # Harmony: one chord per bar from the progression.
        bar = b // 4
        root = style.key_midi + style.progression[bar % len(style.progression)]
        # Bass tumbao: the "and" of 2 (anticipation) and beat 4.
        if bar_pos == 1:
            mix.add(at(b + 0.5), _decay_tone(sr, [_midi_hz(root - 12 + 7), _midi_hz(root + 7)], 0.5, 0.25, rng),
                    0.5 * g["bass"])
        if bar_pos == 3:
            mix.add(at(b), _decay_tone(sr, [_midi_hz(root - 12), _midi_hz(root)], 0.6, 0.3, rng), g["bass"])
        # Piano montuno-like chords on off-beats.
        chord = [_midi_hz(root + 12), _midi_hz(root + 12 + third), _midi_hz(root + 19)]
        for off in (0.5,) if bar_pos % 2 == 0 else (0.0, 0.5):
            for f in chord:
                mix.add(at(b + off), _decay_tone(sr, [f, 2 * f], 0.3, 0.12, rng), g["chords"] / 3)
    out = mix.buf
    peak = float(np.max(np.abs(out))) or 1.0
    return (0.9 * out / peak).astype(np.float32)

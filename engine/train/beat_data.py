"""Training data for the neural beat tracker: rendered MIDI with exact beats, augmented, as per-hop features.

Each clip is a music21 folk tune (never one of the beat test set's: those are held out) on a random time
map (steady 60-190 BPM, a jump, or a ramp; swing in duple tunes), with random General MIDI melody and bass
instruments, with or without one of several drum patterns, rendered by fluidsynth
(:mod:`engine.train.midi_render`). Every clip is used twice: lightly augmented (gain, EQ) and hard
(gain, EQ, room reverb, a noise floor of hiss, hum or crowd-like babble at 0-20 dB SNR). The features are
the ones the live tracker sees (:class:`engine.analysis.onset.OnsetStrength`: 40 log-mel bands and their
positive difference per 256-sample hop); targets are the beats and downbeats on the same hop grid, placed
where the live onset function peaks (see :func:`beat_targets`).

Everything is cached (``<cache>/beat_train/<key>.npz``); no audio is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.analysis.onset import HOP, N_MEL, OnsetStrength
from engine.analysis.tracker import ODF_DELAY_S
from engine.frames import ENGINE_SAMPLE_RATE
from engine.train.midi_render import ClipSpec, build_events, load_tune, read_wav, render_midi, write_midi

log = logging.getLogger(__name__)

DATA_VERSION = 1  # bump to invalidate cached training clips
N_FEATURES = 2 * N_MEL
TRAIN_CLIP_S = 30.0
#: The beat test set (bench/analysis_beatset.py) uses ryansMammoth tunes whose names start with these,
#: and O'Neill's tunes 1-100: training never uses them.
_HELD_OUT_PREFIXES = ("A", "B", "7")
_HELD_OUT_ONEILLS = ("0001-0050.abc", "0051-0100.abc")
_MELODY_PROGRAMS = (0, 1, 4, 6, 11, 16, 19, 21, 22, 24, 25, 26, 27, 40, 41, 42, 48, 56, 57, 60, 64, 65, 68, 71,
                    73, 74, 80, 81, 104, 105, 110)
_BASS_PROGRAMS = (32, 33, 34, 35, 36, 38, 39, 43, 58, 70)


@dataclass(frozen=True)
class TrainClip:
    """One training clip: a :class:`ClipSpec` plus the choices that vary the arrangement and the room."""

    spec: ClipSpec
    bass_program: int
    drum_style: str  # "none" | "standard" | "four" (kick on every beat) | "ride" | "sparse" (no hats)
    humanize_ms: float
    seed: int


def tune_pool() -> list[tuple[str, str]]:
    """(corpus path, meter) of every usable tune not held out for the benchmark."""
    from music21 import corpus

    pool: list[tuple[str, str]] = []
    rm_dir = Path(str(corpus.getWork("ryansMammoth/AcaciaReel.abc"))).parent
    for f in sorted(rm_dir.iterdir()):
        if f.suffix != ".abc" or f.name.startswith(_HELD_OUT_PREFIXES):
            continue
        m = re.search(r"(?m)^M:\s*(\S+)", f.read_text(errors="replace"))
        meter = {"6/8": "6/8", "3/4": "3/4", "2/4": "duple", "4/4": "duple", "C": "duple", "C|": "duple",
                 "2/2": "duple"}.get(m.group(1) if m else "")
        if meter:
            pool.append(("ryansMammoth/" + f.name, meter))
    on_dir = Path(str(corpus.getWork("oneills1850/0001-0050.abc"))).parent
    for f in sorted(on_dir.iterdir()):
        if f.suffix != ".abc" or f.name in _HELD_OUT_ONEILLS:
            continue
        n34 = len(re.findall(r"(?m)^M:\s*3/4\s*$", f.read_text(errors="replace")))
        pool += [(f"oneills1850/{f.name}#3/4:{k}", "3/4") for k in range(min(n34, 4))]
    return pool


def sample_clips(n: int, seed: int = 0) -> list[TrainClip]:
    """``n`` reproducible random training clips (meters balanced: half duple, a quarter each 3/4 and 6/8)."""
    rng = np.random.default_rng(seed)
    pool = tune_pool()
    by_meter = {m: [t for t, mm in pool if mm == m] for m in ("duple", "3/4", "6/8")}
    out: list[TrainClip] = []
    for i in range(n):
        meter = str(rng.choice(["duple", "duple", "3/4", "6/8"]))
        tune = str(rng.choice(by_meter[meter]))
        bpm = float(np.exp(rng.uniform(math.log(60.0), math.log(190.0))))
        kind = rng.random()
        if kind < 0.2:  # a jump of 15-40 % either way after 8-20 s
            at = float(rng.uniform(8.0, 20.0)) * bpm / 60.0
            b1 = float(np.clip(bpm * rng.choice([rng.uniform(0.65, 0.87), rng.uniform(1.15, 1.4)]), 55.0, 200.0))
            tempo: tuple[tuple[float, float, float], ...] = ((at, bpm, bpm), (1e9, b1, b1))
        elif kind < 0.35:  # a ramp over 8-16 beats
            at = float(rng.uniform(6.0, 16.0)) * bpm / 60.0
            b1 = float(np.clip(bpm * rng.uniform(0.7, 1.35), 55.0, 200.0))
            length = float(rng.uniform(8.0, 24.0))
            tempo = ((at, bpm, bpm), (length, bpm, b1), (1e9, b1, b1))
        else:
            tempo = ((1e9, bpm, bpm),)
        drums = bool(rng.random() < 0.6)
        style = str(rng.choice(["standard", "standard", "four", "ride", "sparse"])) if drums else "none"
        spec = ClipSpec(
            name=f"train_{i:04d}", category="train", tune=tune, meter=meter, tempo=tempo, drums=drums,
            swing=bool(meter == "duple" and rng.random() < 0.2), program=int(rng.choice(_MELODY_PROGRAMS)),
        )
        out.append(TrainClip(spec, int(rng.choice(_BASS_PROGRAMS)), style, float(rng.uniform(0.0, 12.0)),
                             int(rng.integers(2**31))))
    return out


def _restyle(events: list[tuple[float, int, int, int, float]], beats: np.ndarray, clip: TrainClip,
             rng: np.random.Generator) -> list[tuple[float, int, int, int, float]]:
    """Vary the drum pattern and humanise pitched notes (the beat grid, hence the targets, is unchanged)."""
    out: list[tuple[float, int, int, int, float]] = []
    for t, ch, note, vel, dur in events:
        if ch == 9:
            if clip.drum_style == "sparse" and note == 42:
                continue
            if clip.drum_style == "ride" and note == 42:
                note = 51
            out.append((t, ch, note, int(np.clip(vel + rng.integers(-8, 9), 30, 127)), dur))
        else:
            jitter = rng.normal(0.0, clip.humanize_ms / 1000.0) if clip.humanize_ms > 0 else 0.0
            out.append((max(0.0, t + jitter), ch, note, int(np.clip(vel + rng.integers(-10, 11), 30, 127)), dur))
    if clip.drum_style == "four":
        out += [(float(b), 9, 36, 112, 0.1) for b in beats]
    return out


def render_clip(clip: TrainClip, duration_s: float = TRAIN_CLIP_S) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Audio (mono float32 at the engine rate, peak 0.8), beats and downbeats (s) of one training clip."""
    rng = np.random.default_rng(clip.seed)
    tune = load_tune(clip.spec.tune, clip.spec.meter)
    events, beats, downbeats = build_events(clip.spec, tune, duration_s)
    events = _restyle(events, beats, clip, rng)
    with tempfile.TemporaryDirectory(prefix="gc-beats-") as d:
        mid, wav = Path(d) / "clip.mid", Path(d) / "clip.wav"
        write_midi(mid, events, {0: clip.spec.program, 1: clip.bass_program})
        render_midi(mid, wav, ENGINE_SAMPLE_RATE)
        x, sr = read_wav(wav)
    assert sr == ENGINE_SAMPLE_RATE
    x = x[: int(duration_s * sr)]
    peak = float(np.abs(x).max()) or 1.0
    return (x / peak * 0.8).astype(np.float32), beats, downbeats


# ----------------------------------------------------------------------------- augmentation
def _eq(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random tilt: a low shelf and a high shelf of up to +-9 dB (first-order, cheap)."""
    from scipy.signal import lfilter

    sr = ENGINE_SAMPLE_RATE
    y = x.astype(np.float64)
    for fc, kind in ((float(rng.uniform(80.0, 400.0)), "low"), (float(rng.uniform(2000.0, 7000.0)), "high")):
        a = math.exp(-2.0 * math.pi * fc / sr)
        lp = lfilter([1.0 - a], [1.0, -a], y)
        band = lp if kind == "low" else y - lp
        y = y + (10.0 ** (float(rng.uniform(-9.0, 9.0)) / 20.0) - 1.0) * band
    return y.astype(np.float32)


def _reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: exponentially decaying noise (RT60 0.3-2.0 s) after a short pre-delay, mixed in."""
    from scipy.signal import fftconvolve

    sr = ENGINE_SAMPLE_RATE
    rt60 = float(rng.uniform(0.3, 2.0))
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)
    ir[: int(0.01 * sr)] = 0.0
    ir /= np.sqrt(np.sum(ir**2)) + 1e-9
    wet = fftconvolve(x, ir)[: len(x)]
    mix = float(rng.uniform(0.2, 0.7))
    return ((1.0 - mix) * x + mix * wet).astype(np.float32)


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """A noise floor: hiss, hum-and-hiss, or crowd-like babble (band-passed noise with a slow envelope)."""
    from scipy.signal import lfilter

    kind = int(rng.integers(3))
    w = rng.standard_normal(n)
    if kind == 0:
        return w.astype(np.float32)
    if kind == 1:
        brown = np.cumsum(w) * 0.02
        brown -= np.convolve(brown, np.ones(512) / 512, mode="same")
        t = np.arange(n) / ENGINE_SAMPLE_RATE
        hum = 0.5 * np.sin(2 * np.pi * float(rng.choice([50.0, 60.0])) * t)
        return (brown / (brown.std() + 1e-9) + hum + 0.3 * w).astype(np.float32)
    a = math.exp(-2.0 * math.pi * 1500.0 / ENGINE_SAMPLE_RATE)
    band = lfilter([1.0 - a], [1.0, -a], w)
    band -= lfilter([1.0 - 0.97], [1.0, -0.97], band)  # remove the lowest rumble
    env = np.abs(lfilter([0.0005], [1.0, -0.9995], rng.standard_normal(n))) + 0.3
    return (band * env).astype(np.float32)


def augment(x: np.ndarray, hard: bool, rng: np.random.Generator) -> np.ndarray:
    """Light (gain, EQ) or hard (also reverb and a noise floor at 0-20 dB SNR) augmentation."""
    y = _eq(x, rng)
    if hard:
        if rng.random() < 0.7:
            y = _reverb(y, rng)
        nz = _noise(len(y), rng)
        snr = float(rng.uniform(0.0, 20.0))
        sig = float(np.sqrt(np.mean(y**2))) + 1e-9
        y = y + nz * (sig / (float(np.sqrt(np.mean(nz**2))) + 1e-9) / 10.0 ** (snr / 20.0))
    peak = float(np.abs(y).max()) or 1.0
    gain_db = float(rng.uniform(-30.0, 0.0))
    return (y / peak * 0.9 * 10.0 ** (gain_db / 20.0)).astype(np.float32)


# ----------------------------------------------------------------------------- features and targets
def hop_features(x: np.ndarray) -> np.ndarray:
    """[T, N_FEATURES] float32 per hop, exactly as the live tracker computes them (log-mel, positive flux)."""
    onset = OnsetStrength(ENGINE_SAMPLE_RATE)
    n = len(x) // HOP
    out = np.zeros((n, N_FEATURES), dtype=np.float32)
    for i in range(n):
        onset.process(x[i * HOP:(i + 1) * HOP])
        out[i, :N_MEL] = onset.log_mel
        out[i, N_MEL:] = onset.mel_flux
    return out


def beat_hop(t: np.ndarray) -> np.ndarray:
    """Hop index at which an onset at ``t`` seconds peaks the live onset function (inverse of ``hop_time``)."""
    hop_s = HOP / ENGINE_SAMPLE_RATE
    return np.round((np.asarray(t) + ODF_DELAY_S) / hop_s - 1.0).astype(np.int64)


def beat_targets(times: np.ndarray, n: int) -> np.ndarray:
    """[n] float32 target: 1 at each event's hop, 0.5 one hop either side (a little tolerance)."""
    y = np.zeros(n, dtype=np.float32)
    h = beat_hop(times)
    for d, v in ((-1, 0.5), (1, 0.5), (0, 1.0)):
        k = h + d
        k = k[(k >= 0) & (k < n)]
        y[k] = np.maximum(y[k], v)
    return y


@dataclass
class BeatSet:
    """Features and targets of many clips, concatenated; ``offsets[i]:offsets[i+1]`` is clip ``i``."""

    features: np.ndarray  # [N, N_FEATURES] float16
    beats: np.ndarray  # [N] float32 target
    downbeats: np.ndarray  # [N] float32 target
    offsets: np.ndarray  # [C+1] int64

    def clip(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.features[a:b], self.beats[a:b], self.downbeats[a:b]

    @property
    def n_clips(self) -> int:
        return len(self.offsets) - 1


def build_beat_set(n_clips: int, cache: Path, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> BeatSet:
    """Render, augment and featurise ``n_clips`` clips (two versions each), cached per clip."""
    root = cache / "beat_train"
    root.mkdir(parents=True, exist_ok=True)
    feats, bts, dbs, offs = [], [], [], [0]
    for i, clip in enumerate(sample_clips(n_clips, seed)):
        key = hashlib.sha256(json.dumps([asdict(clip), DATA_VERSION, TRAIN_CLIP_S]).encode()).hexdigest()[:16]
        path = root / f"{clip.spec.name}-{key}.npz"
        if not path.exists():
            try:
                x, beats, downbeats = render_clip(clip)
            except Exception as exc:  # an unparsable tune: skip it, loudly
                log.warning("skipping %s (%s): %s", clip.spec.name, clip.spec.tune, exc)
                if progress:
                    progress(i + 1, n_clips)
                continue
            rng = np.random.default_rng(clip.seed + 1)
            parts = [hop_features(augment(x, hard, rng)) for hard in (False, True)]
            n = parts[0].shape[0]
            np.savez(path, light=parts[0].astype(np.float16), hard=parts[1].astype(np.float16),
                     beats=beat_targets(beats, n), downbeats=beat_targets(downbeats, n))
        with np.load(path) as z:
            for version in ("light", "hard"):
                feats.append(z[version])
                bts.append(z["beats"])
                dbs.append(z["downbeats"])
                offs.append(offs[-1] + len(z["beats"]))
        if progress:
            progress(i + 1, n_clips)
    if len(offs) == 1:
        raise RuntimeError("no training clip could be rendered")
    return BeatSet(np.concatenate(feats), np.concatenate(bts), np.concatenate(dbs), np.asarray(offs, np.int64))

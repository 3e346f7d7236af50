"""The project's beat test set: music21 tunes rendered through fluidsynth with an exact, known beat grid.

Each clip is built from a folk tune in music21's corpus (melody), a bass line and optionally a General
MIDI drum kit, placed on a time map we control (steady, ramps, jumps, swing), written as a MIDI file
whose tick is 1 ms, rendered by Debian's fluidsynth with FluidR3_GM, and optionally mixed with noise.
Ground-truth beats are the time map evaluated at each beat of the grid, so they are exact to the tick.

The rendering primitives live in :mod:`engine.train.midi_render` (shared with the tracker's training data).
Clips are cached under ``$GROOVECAST_CACHE/beatset`` (default ``~/.cache/groovecast/beatset``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.train.midi_render import (
    RENDER_RATE,
    SOUNDFONT,
    ClipSpec,
    Tune,
    build_events,
    load_tune,
    read_wav,
    render_midi,
    write_midi,
)

__all__ = [
    "CLIPS",
    "CLIP_S",
    "JUMP_AT_BEATS",
    "JUMP_CLIPS",
    "SOUNDFONT",
    "STRESS",
    "TEST_CLIPS",
    "Clip",
    "ClipSpec",
    "Tune",
    "build_clip",
    "build_events",
    "build_jump_set",
    "build_set",
    "build_stress_set",
    "cache_dir",
    "load_tune",
    "read_wav",
    "render_midi",
    "write_midi",
]

CLIP_S = 25.0
GENERATOR_VERSION = 3  # bump to invalidate cached clips


@dataclass
class Clip:
    spec: ClipSpec
    wav: Path
    beats: np.ndarray  # [B] float64 seconds
    downbeats: np.ndarray  # [D] float64 seconds


def _spec(name: str, cat: str, tune: str, meter: str, bpm: float | tuple[tuple[float, float, float], ...],
          **kw: object) -> ClipSpec:
    tempo = ((1e9, float(bpm), float(bpm)),) if isinstance(bpm, int | float) else bpm
    return ClipSpec(name, cat, tune, meter, tempo, **kw)  # type: ignore[arg-type]


RM = "ryansMammoth/"
#: The full set: 9 categories x 3 clips.
CLIPS: tuple[ClipSpec, ...] = (
    _spec("drums_96", "drums", RM + "AcaciaReel.abc", "duple", 96, program=0),
    _spec("drums_112", "drums", RM + "AdmiralsHornpipe.abc", "duple", 112, program=21),
    _spec("drums_128", "drums", RM + "AlhambraReel.abc", "duple", 128, program=40),
    _spec("nodrums_92", "no drums", RM + "AfterTheHareReel.abc", "duple", 92, drums=False, program=0),
    _spec("nodrums_108", "no drums", RM + "AcrobatsHornpipe.abc", "duple", 108, drums=False, program=73),
    _spec("nodrums_124", "no drums", RM + "AllTheGoReel.abc", "duple", 124, drums=False, program=24),
    _spec("slow_70", "slow 70-85", RM + "AbithaMugginsFavoriteReel.abc", "duple", 70, program=0),
    _spec("slow_76", "slow 70-85", RM + "AllTheRageReel.abc", "duple", 76, drums=False, program=24),
    _spec("slow_84", "slow 70-85", RM + "AlbemarleHornpipe.abc", "duple", 84, program=21),
    _spec("fast_150", "fast 150-180", RM + "7thRegimentReel.abc", "duple", 150, program=40),
    _spec("fast_165", "fast 150-180", RM + "AllTheWayToGalwayReel.abc", "duple", 165, program=0),
    _spec("fast_180", "fast 150-180", RM + "AldridgesHornpipe.abc", "duple", 180, drums=False, program=73),
    _spec("ramp_90_135", "tempo change", RM + "AcaciaReel.abc", "duple", ((8, 90, 90), (32, 90, 135), (1e9, 135, 135))),
    _spec("jump_120_96", "tempo change", RM + "AlhambraReel.abc", "duple", ((24, 120, 120), (1e9, 96, 96)),
          program=24),
    _spec("ramp_140_100", "tempo change", RM + "AdmiralsHornpipe.abc", "duple",
          ((10, 140, 140), (30, 140, 100), (1e9, 100, 100)), drums=False, program=0),
    _spec("swing_100", "swing", RM + "AfterTheHareReel.abc", "duple", 100, swing=True, program=0),
    _spec("swing_120", "swing", RM + "AcrobatsHornpipe.abc", "duple", 120, swing=True, program=21),
    _spec("swing_140", "swing", RM + "AllTheGoReel.abc", "duple", 140, swing=True, drums=False, program=24),
    _spec("waltz_96", "3/4", "oneills1850/0001-0050.abc#3/4:0", "3/4", 96, program=21),
    _spec("waltz_120", "3/4", "oneills1850/0001-0050.abc#3/4:1", "3/4", 120, program=40),
    _spec("waltz_150", "3/4", "oneills1850/0051-0100.abc#3/4:0", "3/4", 150, drums=False, program=0),
    _spec("jig_80", "6/8", RM + "BanishMisfortune.abc", "6/8", 80, program=73),
    _spec("jig_96", "6/8", RM + "BattleTheCashJig.abc", "6/8", 96, program=0),
    _spec("jig_112", "6/8", RM + "BelleOfTheKitchenJig.abc", "6/8", 112, drums=False, program=40),
    _spec("noise_100", "noise floor", RM + "AcaciaReel.abc", "duple", 100, noise_snr_db=6.0, program=0),
    _spec("noise_120", "noise floor", RM + "AcrobatsHornpipe.abc", "duple", 120, drums=False, noise_snr_db=10.0,
          program=73),
    _spec("noise_135", "noise floor", RM + "BattleTheCashJig.abc", "6/8", 90, noise_snr_db=6.0, program=21),
)

#: A small subset for the unit tests: swing, a tempo ramp and a 6/8 jig (aubio is weak on the first two).
TEST_CLIPS = ("swing_120", "ramp_90_135", "jig_96")


def cache_dir() -> Path:
    root = os.environ.get("GROOVECAST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "groovecast")
    return Path(root) / "beatset"


def build_clip(spec: ClipSpec, root: Path | None = None) -> Clip:
    """Render (or reuse from the cache) one clip."""
    root = root or cache_dir()
    key = hashlib.sha256(json.dumps([asdict(spec), GENERATOR_VERSION, CLIP_S]).encode()).hexdigest()[:12]
    d = root / f"{spec.name}-{key}"
    wav, truth = d / "clip.wav", d / "truth.json"
    if wav.exists() and truth.exists():
        t = json.loads(truth.read_text())
        return Clip(spec, wav, np.asarray(t["beats"]), np.asarray(t["downbeats"]))
    d.mkdir(parents=True, exist_ok=True)
    tune = load_tune(spec.tune, spec.meter)
    events, beats, downbeats = build_events(spec, tune, CLIP_S)
    mid = d / "clip.mid"
    write_midi(mid, events, {0: spec.program, 1: 33})
    raw = d / "raw.wav"
    render_midi(mid, raw)
    x, sr = read_wav(raw)
    x = x[: int(CLIP_S * sr)]
    if spec.noise_snr_db is not None:
        rng = np.random.default_rng(int(key, 16) % 2**32)
        nz = rng.standard_normal(len(x)).astype(np.float32)
        nz = np.cumsum(nz) * 0.02  # a brownish hum-and-hiss floor rather than flat hiss
        nz -= np.convolve(nz, np.ones(512) / 512, mode="same")
        nz += rng.standard_normal(len(x)).astype(np.float32) * 0.5
        sig_rms = float(np.sqrt(np.mean(x**2))) + 1e-9
        nz *= sig_rms / (float(np.sqrt(np.mean(nz**2))) + 1e-9) / (10 ** (spec.noise_snr_db / 20))
        x = x + nz
    peak = float(np.abs(x).max()) or 1.0
    x = (x / peak * 0.8).astype(np.float32)
    from scipy.io import wavfile

    wavfile.write(str(wav), sr, (x * 32767).astype(np.int16))
    raw.unlink()
    truth.write_text(json.dumps({"beats": beats.tolist(), "downbeats": downbeats.tolist()}))
    return Clip(spec, wav, beats, downbeats)


def build_set(names: tuple[str, ...] | None = None, root: Path | None = None) -> list[Clip]:
    specs = [s for s in CLIPS if names is None or s.name in names]
    if names is not None and len(specs) != len(names):
        missing = set(names) - {s.name for s in specs}
        raise ValueError(f"unknown clips {sorted(missing)}; known: {[s.name for s in CLIPS]}")
    return [build_clip(s, root) for s in specs]


#: The tempo-jump set: six held-out tunes, each jumping once (up or down, 20-35 %) after 24 beats.
JUMP_AT_BEATS = 24
JUMP_CLIPS: tuple[ClipSpec, ...] = (
    _spec("jump_100_130", "tempo jump", RM + "AcaciaReel.abc", "duple", ((24, 100, 100), (1e9, 130, 130)), program=0),
    _spec("jump_132_100", "tempo jump", RM + "AlhambraReel.abc", "duple", ((24, 132, 132), (1e9, 100, 100)),
          drums=False, program=24),
    _spec("jump_90_120", "tempo jump", RM + "AdmiralsHornpipe.abc", "duple", ((24, 90, 90), (1e9, 120, 120)),
          program=21),
    _spec("jump_144_112", "tempo jump", RM + "AcrobatsHornpipe.abc", "duple", ((24, 144, 144), (1e9, 112, 112)),
          program=40),
    _spec("jump_96_124", "tempo jump", "oneills1850/0001-0050.abc#3/4:0", "3/4", ((24, 96, 96), (1e9, 124, 124)),
          program=0),
    _spec("jump_84_108", "tempo jump", RM + "BanishMisfortune.abc", "6/8", ((24, 84, 84), (1e9, 108, 108)),
          program=73),
)


def build_jump_set(root: Path | None = None) -> list[Clip]:
    return [build_clip(s, root) for s in JUMP_CLIPS]


# ----------------------------------------------------------------------------- stress set
def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def _babble(n: int, sr: int, rng: np.random.Generator, voices: int = 16) -> np.ndarray:
    """Crowd-like babble: many voiced buzzes (random pitch glides, syllable-rate on/off), summed."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for _ in range(voices):
        f0 = rng.uniform(90.0, 260.0) * (1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
        ph = 2 * np.pi * np.cumsum(f0) / sr
        v = sum(np.sin(k * ph) / k for k in range(1, 12))
        syll = (np.sin(2 * np.pi * rng.uniform(2.0, 6.0) * t + rng.uniform(0, 6.3)) > rng.uniform(-0.3, 0.5))
        env = np.convolve(syll.astype(np.float64), np.ones(441) / 441, mode="same")
        out += v * env * rng.uniform(0.5, 1.0)
    return out


def _room(x: np.ndarray, sr: int, rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Early reflections (sparse taps in the first 80 ms) plus a decaying tail whose highs die first."""
    from scipy.signal import fftconvolve, lfilter

    n = int(rt60 * sr)
    t = np.arange(n) / sr
    ir = np.zeros(n)
    for _ in range(12):
        ir[int(rng.uniform(0.003, 0.08) * sr)] += rng.uniform(-0.6, 0.6)
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)
    tail = lfilter([0.35], [1.0, -0.65], tail)  # a darker tail
    ir += tail * 0.3
    ir[0] = 1.0
    wet = fftconvolve(x, ir / np.sqrt(np.sum(ir**2)))[: len(x)]
    return 0.4 * x + 0.6 * wet


#: The stress set: clips of the rendered set (tune held out from training) in a loud room:
#: (clip, noise kind, SNR dB, RT60 s). The noise generators differ from the training augmentation's.
STRESS: tuple[tuple[str, str, float, float], ...] = (
    ("drums_96", "babble", 3.0, 1.2), ("drums_128", "pink", 0.0, 0.8), ("nodrums_108", "babble", 8.0, 1.5),
    ("nodrums_124", "pink", 6.0, 0.6), ("slow_84", "babble", 5.0, 1.0), ("fast_165", "pink", 3.0, 1.2),
    ("ramp_90_135", "babble", 5.0, 0.8), ("swing_120", "pink", 3.0, 1.5), ("waltz_120", "babble", 3.0, 1.0),
    ("jig_96", "pink", 5.0, 0.8), ("jump_120_96", "babble", 6.0, 1.2), ("swing_140", "babble", 6.0, 0.6),
)


def build_stress_set(root: Path | None = None) -> list[Clip]:
    """Render (or reuse) the stress clips: noise and a room added to clips of the rendered set."""
    from scipy.io import wavfile

    root = root or cache_dir()
    by_name = {s.name: s for s in CLIPS}
    out = []
    for i, (name, kind, snr, rt60) in enumerate(STRESS):
        base = build_clip(by_name[name], root)
        spec = ClipSpec(f"{name}+{kind}{snr:g}dB", "stress", base.spec.tune, base.spec.meter, base.spec.tempo,
                        base.spec.drums, base.spec.swing, snr, base.spec.program)
        d = root / "stress" / f"{spec.name}-rt{rt60:g}-v1"
        wav = d / "clip.wav"
        if not wav.exists():
            d.mkdir(parents=True, exist_ok=True)
            x, sr = read_wav(base.wav)
            rng = np.random.default_rng(1000 + i)
            y = _room(x.astype(np.float64), sr, rng, rt60)
            nz = _babble(len(y), sr, rng) if kind == "babble" else _pink(len(y), rng)
            nz *= np.sqrt(np.mean(y**2)) / (np.sqrt(np.mean(nz**2)) + 1e-12) / 10 ** (snr / 20)
            y = y + nz
            y = 0.8 * y / (np.abs(y).max() or 1.0)
            wavfile.write(str(wav), sr, (y * 32767).astype(np.int16))
        out.append(Clip(spec, wav, base.beats, base.downbeats))
    return out


# ----------------------------------------------------------------------------- real music, consensus reference
#: Debian packages whose music the real-music set may use (the issue's list; none is used for training here).
#: (neverball-data and pingus-data were tried: no music files over 250 kB in them.)
REAL_PACKAGES = ("xmoto-data", "extremetuxracer-data", "asc-music")
REAL_EXCERPT_S = 30.0
#: Consensus rule: a clip is kept when every pair of the three offline trackers agrees with F >= this
#: (mir_eval, 70 ms, first 5 s trimmed); the reference is then Essentia's multifeature beats.
CONSENSUS_MIN_F = 0.9


def real_dir(root: Path | None = None) -> Path:
    return (root or cache_dir()).parent / "realmusic"


def build_real_set(root: Path | None = None, peers_python: Path | None = None) -> tuple[list[Clip], dict[str, Any]]:
    """Held-out real recordings with a consensus reference, and a record of what was kept and why.

    Needs the packages' files extracted under ``<cache>/realmusic/root`` (``apt-get download`` + ``dpkg-deb -x``,
    see docs/audio.md) and ``essentia`` + ``librosa`` in the peers' venv; returns ``([], {"status": why})``
    when either is missing.
    """
    import subprocess

    import mir_eval
    import soundfile
    from scipy.io import wavfile

    from engine.audio.resample import resample

    base = real_dir(root)
    tracks = sorted(p for ext in ("*.ogg", "*.mp3") for p in (base / "root").rglob(ext)
                    if p.stat().st_size > 250_000 and "/sounds/" not in str(p))
    if not tracks:
        return [], {"status": f"no tracks under {base / 'root'} (see docs/audio.md to extract {REAL_PACKAGES})"}
    clips_dir = base / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    wavs = []
    for t in tracks:
        wav = clips_dir / f"{t.parent.parent.name}_{t.stem}.wav"
        if not wav.exists():
            x, sr = soundfile.read(str(t), dtype="float32", always_2d=True)
            x = x.mean(axis=1)
            start = int(min(20.0, max(0.0, len(x) / sr - REAL_EXCERPT_S) / 2) * sr)
            x = resample(x[start:start + int(REAL_EXCERPT_S * sr)], sr, RENDER_RATE)
            wavfile.write(str(wav), RENDER_RATE, (np.clip(x, -1, 1) * 32767).astype(np.int16))
        wavs.append(wav)
    ref_path = base / "consensus.json"
    if not ref_path.exists() or set(json.loads(ref_path.read_text())) != {str(w) for w in wavs}:
        if peers_python is None or not peers_python.exists():
            return [], {"status": "no consensus reference and no peers venv to build it"}
        lst = base / "consensus_in.json"
        lst.write_text(json.dumps([str(w) for w in wavs]))
        script = Path(__file__).resolve().parent / "consensus_peer.py"
        subprocess.run([str(peers_python), str(script), str(lst), str(ref_path)], check=True, timeout=3600)
    ref = json.loads(ref_path.read_text())
    clips: list[Clip] = []
    tracks_rec: dict[str, Any] = {}
    record: dict[str, Any] = {"status": "ok", "rule": f"all pairwise F >= {CONSENSUS_MIN_F}", "tracks": tracks_rec}
    for w in wavs:
        r = {k: np.asarray(v) for k, v in ref[str(w)].items()}
        names = sorted(r)
        pair_f = {f"{a}~{b}": float(mir_eval.beat.f_measure(mir_eval.beat.trim_beats(r[a]),
                                                            mir_eval.beat.trim_beats(r[b])))
                  for i, a in enumerate(names) for b in names[i + 1:]}
        keep = min(pair_f.values()) >= CONSENSUS_MIN_F
        tracks_rec[w.stem] = {"pairwise_f": pair_f, "kept": keep}
        if keep:
            spec = ClipSpec(w.stem, "real (consensus)", str(w), "unknown", ((1e9, 0.0, 0.0),), program=-1)
            clips.append(Clip(spec, w, r["essentia_multifeature"], np.zeros(0)))
    return clips, record

"""Training sequences: motion vectors paired with synthetic music analysed by the live analysis code.

Each CMU take (and each tempo warp of it) gets a rhythm track rendered onto its kinetic beats
(:mod:`engine.train.synth_music`, labelled synthetic), which is then analysed by
``engine.analysis.features.analyze_signal`` -- the same causal hop-by-hop code the live engine runs, with
the same lag -- so the model is trained exactly as it runs. Rendered audio and features are cached under
``cache_dir`` (default ``$GROOVECAST_CACHE`` or ``~/.cache/groovecast``), keyed by take, warp and a
version string.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.frames import ENGINE_SAMPLE_RATE
from engine.models.conditioning import genre_id
from engine.models.pose_repr import mirror_vectors, motion_to_vectors
from engine.train.cmu_data import Take, load_split, warp_take
from engine.train.synth_music import SYNTHETIC_LABEL, render_track

log = logging.getLogger(__name__)

#: Bump when rendering or analysis changes so stale caches are not reused.
CACHE_VERSION = "v3"  # v3: true source frame rates (salsa 60 fps), three styles
#: Tempo factors used to augment the training takes (motion and music warped together).
DEFAULT_WARPS: tuple[float, ...] = (0.85, 1.0, 1.15, 1.3)
#: Styles with real training data (engine.train.sources); their genre rows are trained.
TRAINED_GENRES: tuple[str, ...] = ("salsa", "indian", "modern")


def default_cache_dir() -> Path:
    env = os.environ.get("GROOVECAST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "groovecast"


@dataclass
class MusicTrack:
    """Audio and its causal analysis, frame-aligned with the motion (frame i = time i / MODEL_FPS)."""

    audio: np.ndarray  # [S] float32 at ENGINE_SAMPLE_RATE
    features: np.ndarray  # [N, 40]
    period_s: np.ndarray  # [N]
    next_beat_s: np.ndarray  # [N]
    bpm: np.ndarray  # [N]
    beats_s: np.ndarray  # [B] the beats the music was rendered on (ground truth)
    label: str = SYNTHETIC_LABEL


@dataclass
class Sequence:
    """One dancer of one take variant with its music."""

    name: str
    upper: np.ndarray  # [T, 72]
    lower: np.ndarray  # [T, 61]
    music: MusicTrack
    genre: int = 0

    @property
    def n_frames(self) -> int:
        return len(self.upper)


def analyze_audio(audio: np.ndarray, sr: int = ENGINE_SAMPLE_RATE) -> tuple[np.ndarray, ...]:
    """Run the live analysis on a whole signal: (features [N,40], period_s, next_beat_s, bpm)."""
    from engine.analysis import analyze_signal

    a = analyze_signal(audio, sr)
    return (
        np.asarray(a.features, dtype=np.float32),
        np.asarray(a.period_s, dtype=np.float64),
        np.asarray(a.next_beat_s, dtype=np.float64),
        np.asarray(a.frame_bpm, dtype=np.float64),
    )


def code_fingerprint() -> str:
    """Hash of the code that produces cached music features (analysis, synthesiser, kinetic beats).

    Part of every cache key, so a change to the live analysis invalidates cached training features:
    training must see exactly what the engine computes now.
    """
    import hashlib

    import engine.analysis as analysis
    import engine.audio as audio
    import engine.train.kinetic_beats as kb
    import engine.train.synth_music as sm

    h = hashlib.sha256(CACHE_VERSION.encode())
    files = sorted(Path(analysis.__file__).parent.glob("*.py")) + sorted(Path(audio.__file__).parent.glob("*.py"))
    files += [Path(kb.__file__), Path(sm.__file__)]
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def music_for_take(take: Take, cache_dir: Path, seed: int) -> MusicTrack:
    """Render (or load from cache) the synthetic track of a take variant and its analysis."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    import hashlib

    beats = take.beats.beats_s
    beat_key = hashlib.sha256(np.round(np.asarray(beats, np.float64), 6).tobytes()).hexdigest()[:8]
    path = cache_dir / f"cmu_{take.name}_b{beat_key}_s{seed}_{code_fingerprint()}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return MusicTrack(
            audio=z["audio"], features=z["features"], period_s=z["period_s"], next_beat_s=z["next_beat_s"],
            bpm=z["bpm"], beats_s=z["beats_s"],
        )
    audio = render_track(beats, take.duration_s, seed=seed)
    feats, period, nxt, bpm = analyze_audio(audio)
    np.savez(path, audio=audio, features=feats, period_s=period, next_beat_s=nxt, bpm=bpm, beats_s=beats,
             label=np.array(SYNTHETIC_LABEL))
    return MusicTrack(audio=audio, features=feats, period_s=period, next_beat_s=nxt, bpm=bpm, beats_s=beats)


def _fit(a: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad a per-frame array to n frames."""
    if len(a) >= n:
        return a[:n]
    pad = [(0, n - len(a))] + [(0, 0)] * (a.ndim - 1)
    return np.pad(a, pad, mode="edge")


def take_sequences(take: Take, cache_dir: Path, seed: int, mirror: bool = False) -> list[Sequence]:
    music = music_for_take(take, cache_dir, seed)
    n = take.n_frames
    music = MusicTrack(
        audio=music.audio, features=_fit(music.features, n), period_s=_fit(music.period_s, n),
        next_beat_s=_fit(music.next_beat_s, n), bpm=_fit(music.bpm, n), beats_s=music.beats_s,
    )
    out = []
    g = genre_id(take.style)
    for d, motion in enumerate(take.dancers):
        up, low = motion_to_vectors(motion)
        who = _dancer(take, d)
        out.append(Sequence(name=f"{take.name}_{who}", upper=up, lower=low, music=music, genre=g))
        if mirror:
            mu, ml = mirror_vectors(up, low)
            out.append(Sequence(name=f"{take.name}_{who}_m", upper=mu, lower=ml, music=music, genre=g))
    return out


def _dancer(take: Take, d: int) -> str:
    """Dancer tag of a sequence name: ``d60``/``d61`` for the salsa lead/follow, ``solo`` otherwise."""
    ids = take.dancer_ids
    tag = ids[d] if d < len(ids) else str(60 + d)
    return tag if tag == "solo" else f"d{tag}"



def build_sequences(
    data_dir: Path | None = None,
    split: str = "train",
    warps: tuple[float, ...] = DEFAULT_WARPS,
    cache_dir: Path | None = None,
    max_takes: int | None = None,
    mirror: bool = True,
) -> list[Sequence]:
    """All sequences of a split. Training adds tempo warps and left/right mirror images (``mirror``);
    validation uses the takes as captured."""
    cache_dir = cache_dir or default_cache_dir()
    takes = load_split(data_dir, split)[: max_takes or None]
    if split != "train":
        warps = (1.0,)
        mirror = False
    seqs: list[Sequence] = []
    for take in takes:
        for wi, w in enumerate(warps):
            variant = take if w == 1.0 else warp_take(take, w)
            seed = 1000 * int(take.take) + wi + 100_000 * TRAINED_GENRES.index(take.style)
            seqs.extend(take_sequences(variant, cache_dir, seed=seed, mirror=mirror))
            log.info("data: %s (%d frames, %.1f BPM)", variant.name, variant.n_frames, variant.beats.bpm)
    return seqs


def build_motion(
    data_dir: Path | None = None, split: str = "train", warps: tuple[float, ...] = DEFAULT_WARPS,
    mirror: bool = True,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Motion vectors only (no music): [(name, upper [T, 72], lower [T, 61])] for VQ-VAE training."""
    takes = load_split(data_dir, split)
    if split != "train":
        warps = (1.0,)
        mirror = False
    out = []
    for take in takes:
        for w in warps:
            variant = take if w == 1.0 else warp_take(take, w)
            for d, motion in enumerate(variant.dancers):
                up, low = motion_to_vectors(motion)
                out.append((f"{variant.name}_{_dancer(variant, d)}", up, low))
                if mirror:
                    out.append((f"{variant.name}_{_dancer(variant, d)}_m", *mirror_vectors(up, low)))
    return out


def save_packed(path: Path, seqs: list[Sequence]) -> None:
    """Store sequences (vectors + analysis, no audio) in one npz for fast reloads / copying elsewhere."""
    arrays: dict[str, np.ndarray] = {"names": np.array([s.name for s in seqs])}
    for i, s in enumerate(seqs):
        m = s.music
        arrays.update({
            f"{i}/upper": s.upper, f"{i}/lower": s.lower, f"{i}/features": m.features, f"{i}/period_s": m.period_s,
            f"{i}/next_beat_s": m.next_beat_s, f"{i}/bpm": m.bpm, f"{i}/beats_s": m.beats_s,
            f"{i}/genre": np.array(s.genre),
        })
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def load_packed(path: Path) -> list[Sequence]:
    """Read sequences written by :func:`save_packed` (plain arrays only; no pickles)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"packed data file {path} does not exist")
    z = np.load(path, allow_pickle=False)
    out = []
    for i, name in enumerate(z["names"]):
        music = MusicTrack(
            audio=np.zeros(0, np.float32), features=z[f"{i}/features"], period_s=z[f"{i}/period_s"],
            next_beat_s=z[f"{i}/next_beat_s"], bpm=z[f"{i}/bpm"], beats_s=z[f"{i}/beats_s"],
        )
        out.append(Sequence(name=str(name), upper=z[f"{i}/upper"], lower=z[f"{i}/lower"], music=music,
                            genre=int(z[f"{i}/genre"])))
    return out

"""Rendered music with exact beats: music21 tunes + bass + GM drums on a controlled time map, through fluidsynth.

The primitives the project's beat test set (``bench/analysis_beatset.py``) and the beat tracker's training
data (:mod:`engine.train.beat_data`) share: a tune from music21's corpus (ABC), a time map (steady, ramps,
jumps, swing), note events with exact ground-truth beats and downbeats, a type-0 MIDI file with 1 ms ticks,
and Debian's fluidsynth with FluidR3_GM to render it.

Beat level: the quarter note in 2/4, 4/4, C and C| (also 3/4); the dotted quarter in 6/8.
"""

from __future__ import annotations

import math
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
RENDER_RATE = 22050
LEAD_IN_S = 0.4  # the beat grid starts here
DEFAULT_CLIP_S = 25.0


@dataclass(frozen=True)
class ClipSpec:
    """One clip of the set; everything that determines its audio and ground truth."""

    name: str
    category: str
    tune: str  # corpus path, optionally "#k" for the k-th tune of a collection
    meter: str  # "duple" | "3/4" | "6/8"
    tempo: tuple[tuple[float, float, float], ...]  # (beats, bpm_start, bpm_end) segments; last one extends
    drums: bool = True
    swing: bool = False
    noise_snr_db: float | None = None
    program: int = 0  # GM melody instrument



@dataclass
class Tune:
    notes: list[tuple[float, float, int]]  # (onset_ql, end_ql, midi) with the beat grid at multiples of beat_ql
    beat_ql: float
    beats_per_bar: int
    length_ql: float


def _abc_text(tune: str) -> str:
    """ABC text of one tune: a corpus file, or ``file#M:k`` = the k-th tune with meter M of a collection."""
    from music21 import corpus

    path, _, sel = tune.partition("#")
    text = Path(str(corpus.getWork(path))).read_text(errors="replace")
    if not sel:
        return text
    meter, _, k = sel.rpartition(":")
    tunes = re.split(r"(?m)^(?=X:)", text)
    chosen = [t for t in tunes if re.search(rf"(?m)^M:\s*{re.escape(meter)}\s*$", t) and "K:" in t]
    if int(k) >= len(chosen):
        raise ValueError(f"{path} has only {len(chosen)} tunes in {meter}")
    return chosen[int(k)]


def load_tune(tune: str, meter: str) -> Tune:
    from music21 import converter, stream

    score: Any = converter.parse(_abc_text(tune), format="abc")
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    score = score.stripTies()
    part = score.parts[0] if score.parts else score
    beat_ql, per_bar = {"duple": (1.0, 2), "3/4": (1.0, 3), "6/8": (1.5, 2)}[meter]
    measures = list(part.getElementsByClass("Measure"))
    # the beat grid is anchored on the first full bar (a pickup bar starts before it)
    anchor = float(measures[1].offset) if len(measures) > 1 and measures[0].paddingLeft else 0.0
    bar_ql = float(measures[-1].barDuration.quarterLength) if measures else beat_ql * per_bar
    shift = (-anchor) % bar_ql  # move the first full bar onto a bar line of the grid
    notes: list[tuple[float, float, int]] = []
    for n in part.flatten().notes:
        on = float(Fraction(n.offset)) + shift
        end = on + float(Fraction(n.quarterLength))
        for p in n.pitches:
            notes.append((on, end, int(p.midi)))
    length = math.ceil((max(e for _, e, _ in notes)) / bar_ql) * bar_ql
    if meter == "duple" and bar_ql not in (2.0, 4.0):
        raise ValueError(f"{tune}: a duple tune with a bar of {bar_ql} quarters")
    return Tune(notes, beat_ql, round(bar_ql / beat_ql), length)


# ----------------------------------------------------------------------------- time map
class TimeMap:
    """Beats -> seconds for piecewise tempo (linear BPM ramps in beats), integrated on a fine grid."""

    STEP = 1.0 / 96.0  # beats

    def __init__(self, segments: tuple[tuple[float, float, float], ...], n_beats: float) -> None:
        n = math.ceil(n_beats / self.STEP) + 2
        b = np.arange(n) * self.STEP
        bpm = np.empty(n)
        start = 0.0
        for i, (length, b0, b1) in enumerate(segments):
            last = i == len(segments) - 1
            end = math.inf if last else start + length
            sel = (b >= start) & (b < end)
            frac = np.clip((b[sel] - start) / length, 0.0, 1.0)
            bpm[sel] = b0 + (b1 - b0) * frac
            start = end
        dt = 60.0 / bpm * self.STEP
        self._t = np.concatenate([[0.0], np.cumsum(dt)[:-1]]) + LEAD_IN_S  # t at grid points
        self._b = b

    def __call__(self, beats: np.ndarray | float) -> np.ndarray:
        return np.asarray(np.interp(beats, self._b, self._t))


def _swing(q: float, beat_ql: float) -> float:
    """Triplet swing of eighths inside each quarter: the off-beat eighth moves from 1/2 to 2/3."""
    if beat_ql != 1.0:
        return q
    base = math.floor(q)
    f = q - base
    return base + (f * 4.0 / 3.0 if f <= 0.5 else 2.0 / 3.0 + (f - 0.5) * 2.0 / 3.0)


# ----------------------------------------------------------------------------- MIDI
def _vlq(v: int) -> bytes:
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, events: list[tuple[float, int, int, int, float]], programs: dict[int, int]) -> None:
    """A type-0 MIDI file with 1 ms ticks (division 1000, tempo 1 s per quarter).

    ``events``: ``(time_s, channel, note, velocity, duration_s)``.
    """
    msgs: list[tuple[int, int, bytes]] = [(0, 0, b"\xff\x51\x03" + (1_000_000).to_bytes(3, "big"))]
    for ch, prog in programs.items():
        msgs.append((0, 1, bytes([0xC0 | ch, prog])))
    for t, ch, note, vel, dur in events:
        on = round(t * 1000)
        off = max(on + 1, round((t + dur) * 1000))
        msgs.append((on, 3, bytes([0x90 | ch, note, vel])))
        msgs.append((off, 2, bytes([0x80 | ch, note, 0])))  # note-offs before note-ons at one tick
    msgs.sort(key=lambda m: (m[0], m[1]))
    body = bytearray()
    last = 0
    for tick, _, data in msgs:
        body += _vlq(tick - last) + data
        last = tick
    body += b"\x00\xff\x2f\x00"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 1000) + b"MTrk" + struct.pack(">I", len(body)) + body)


def build_events(
    spec: ClipSpec, tune: Tune, duration_s: float = DEFAULT_CLIP_S
) -> tuple[list[tuple[float, int, int, int, float]], np.ndarray, np.ndarray]:
    """Note events and exact ground-truth beats/downbeats (seconds) for one clip of ``duration_s``."""
    # enough beats for the clip at the fastest tempo of the map
    max_bpm = max(max(b0, b1) for _, b0, b1 in spec.tempo)
    n_beats = duration_s * max_bpm / 60.0 + 8
    tm = TimeMap(spec.tempo, n_beats)
    bq = tune.beat_ql
    events: list[tuple[float, int, int, int, float]] = []
    reps = math.ceil(n_beats * bq / tune.length_ql)
    for r in range(reps):
        base = r * tune.length_ql
        for on, end, midi in tune.notes:
            q_on, q_end = base + on, base + end
            if swing := spec.swing:
                q_on, q_end = _swing(q_on, bq), _swing(q_end, bq)
            t_on, t_end = float(tm(q_on / bq)), float(tm(q_end / bq))
            if t_on > duration_s:
                continue
            accent = 12 if abs(q_on / bq - round(q_on / bq)) < 1e-6 else 0
            events.append((t_on, 0, midi, 84 + accent - (6 if swing else 0), max(0.05, 0.95 * (t_end - t_on))))
    beat_idx = np.arange(int(n_beats))
    beats = tm(beat_idx.astype(np.float64))
    keep = beats <= duration_s
    beats, beat_idx = beats[keep], beat_idx[keep]
    per_bar = tune.beats_per_bar
    downbeats = beats[beat_idx % per_bar == 0]
    # bass: lowest melody pitch of each bar, two octaves down, on the downbeat (and mid-bar in 4-beat bars)
    bar_ql = bq * per_bar
    for bar_start_beat in beat_idx[beat_idx % per_bar == 0]:
        q0 = (bar_start_beat * bq) % tune.length_ql
        bar_pitches = [m for on, _, m in tune.notes if q0 <= on < q0 + bar_ql]
        if not bar_pitches:
            continue
        root = min(bar_pitches)
        while root > 47:
            root -= 12
        t0 = float(tm(bar_start_beat))
        dur = float(tm(bar_start_beat + per_bar)) - t0
        events.append((t0, 1, root, 100, 0.9 * dur))
    if spec.drums:
        sub = 2 if bq == 1.0 else 3  # eighths per beat
        for k in range(int(n_beats) * sub):
            b = k / sub
            t = float(tm(_swing(b, 1.0) if spec.swing else b))
            if t > duration_s:
                break
            in_bar = int(b) % per_bar
            on_beat = k % sub == 0
            if on_beat and (in_bar == 0 or (per_bar == 4 and in_bar == 2)):
                events.append((t, 9, 36, 118, 0.1))  # kick
            elif on_beat and per_bar != 3:
                events.append((t, 9, 38, 105, 0.1))  # snare on the back beat
            elif on_beat:
                events.append((t, 9, 38, 80, 0.1))  # waltz: soft snare on 2 and 3
            events.append((t, 9, 42, 70 if on_beat else 55, 0.05))  # closed hat
    return events, beats, downbeats


def render_midi(mid: Path, wav: Path, rate: int = RENDER_RATE) -> None:
    if shutil.which("fluidsynth") is None:
        raise RuntimeError("fluidsynth is not installed (Debian package fluidsynth; scripts/setup.sh installs it)")
    if not SOUNDFONT.exists():
        raise RuntimeError(f"{SOUNDFONT} is missing (Debian package fluid-soundfont-gm)")
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(rate), "-F", str(wav), str(SOUNDFONT), str(mid)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
    )


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the rate of a PCM WAV (int16/int32/float)."""
    from scipy.io import wavfile

    sr, data = wavfile.read(str(path))
    x = data.astype(np.float32)
    if data.dtype == np.int16:
        x /= 32768.0
    elif data.dtype == np.int32:
        x /= 2147483648.0
    if x.ndim == 2:
        x = x.mean(axis=1)
    return x, int(sr)


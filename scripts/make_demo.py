"""Render engine/data/demo.wav: 30 s of a folk reel with bass and drums through fluidsynth (22.05 kHz mono 16-bit).

Usage: ``python3 scripts/make_demo.py [OUT.wav]``. Needs Debian fluidsynth + fluid-soundfont-gm and music21.
The tune is "The Alhambra -- Reel" from music21's corpus (Ryan's Mammoth Collection, public domain),
at a steady 118 BPM; the beat grid starts at 0.4 s.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from bench.analysis_beatset import ClipSpec, build_events, load_tune, read_wav, render_midi, write_midi

DEMO = ClipSpec("demo", "demo", "ryansMammoth/AlhambraReel.abc", "duple", ((1e9, 118.0, 118.0),), program=21)
DURATION_S = 30.0
RATE = 22050


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "engine" / "data" / "demo.wav"
    tune = load_tune(DEMO.tune, DEMO.meter)
    events, beats, _ = build_events(DEMO, tune, DURATION_S)
    with tempfile.TemporaryDirectory() as tmp:
        mid, raw = Path(tmp) / "demo.mid", Path(tmp) / "raw.wav"
        write_midi(mid, events, {0: DEMO.program, 1: 33})
        render_midi(mid, raw, RATE)
        x, sr = read_wav(raw)
    x = x[: int(DURATION_S * sr)]
    fade = int(0.5 * sr)  # short fade-out so the clip does not end on a click
    x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    x = x / (float(np.abs(x).max()) or 1.0) * 0.8
    out.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(str(out), sr, (x * 32767).astype(np.int16))
    print(f"wrote {out}: {len(x) / sr:.1f} s at {sr} Hz, {len(beats)} beats at 118 BPM")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

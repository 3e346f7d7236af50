"""Offline beat trackers for the real-music consensus reference; for the analysis benchmark only.

Runs inside the peers' virtual environment (``.venv-peers`` with ``essentia`` and ``librosa``):
``.venv-peers/bin/python bench/consensus_peer.py LIST.json OUT.json``. For each WAV path writes the beats (s)
of Essentia's ``RhythmExtractor2013(method="multifeature")``, Essentia's ``BeatTrackerDegara`` and
``librosa.beat.beat_track``: three offline trackers of different design. madmom is never used here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import essentia.standard as es  # type: ignore[import-not-found,unused-ignore]
    import librosa  # type: ignore[import-not-found,unused-ignore]
    import numpy as np

    paths = json.loads(Path(argv[0]).read_text())
    out = {}
    for p in paths:
        x44 = es.MonoLoader(filename=p, sampleRate=44100)()
        _, multi, _, _, _ = es.RhythmExtractor2013(method="multifeature")(x44)
        degara = es.BeatTrackerDegara()(x44)
        y, sr = librosa.load(p, sr=22050, mono=True)
        _, frames = librosa.beat.beat_track(y=y, sr=sr, units="frames")
        lib = librosa.frames_to_time(frames, sr=sr)
        out[p] = {"essentia_multifeature": [float(b) for b in multi], "essentia_degara": [float(b) for b in degara],
                  "librosa": [float(b) for b in np.asarray(lib)]}
        print(f"consensus {Path(p).stem}: {len(multi)} / {len(degara)} / {len(lib)} beats", file=sys.stderr, flush=True)
    Path(argv[1]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

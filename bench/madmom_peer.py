"""Run madmom's online beat tracker (RNN + causal DBN) on WAV files; for the analysis benchmark only.

Runs inside the peers' virtual environment (``.venv-peers``, see ../shared/peers/madmom/README.md), never
in the product's: ``.venv-peers/bin/python bench/madmom_peer.py LIST.json OUT.json``, where LIST.json is a
JSON list of WAV paths. Writes ``{path: {"beats": [...], "cpu_s": s, "audio_s": s}}``. madmom's models are
CC BY-NC-SA: nothing here is shipped, imported by the product, or used for training.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    import numpy as np
    from madmom.audio.signal import Signal  # type: ignore[import-not-found,unused-ignore]
    from madmom.features.beats import (  # type: ignore[import-not-found,unused-ignore]
        DBNBeatTrackingProcessor,
        RNNBeatProcessor,
    )
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    paths = json.loads(Path(argv[0]).read_text())
    rnn = RNNBeatProcessor(online=True)
    out = {}
    for p in paths:
        sr, data = wavfile.read(p)
        x = data.astype(np.float32) / (32768.0 if data.dtype == np.int16 else 1.0)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if sr != 44100:  # madmom's networks expect 44.1 kHz
            x = resample_poly(x, 44100, sr).astype(np.float32)
        t0 = time.process_time()
        act = rnn(Signal(x, sample_rate=44100, num_channels=1))
        dbn = DBNBeatTrackingProcessor(fps=100, online=True)  # a fresh causal DBN per clip
        beats = dbn(act)
        cpu = time.process_time() - t0
        out[p] = {"beats": [float(b) for b in beats], "cpu_s": cpu, "audio_s": len(x) / 44100}
        print(f"madmom {p.rsplit('/', 2)[-2]}: {len(beats)} beats, {cpu:.2f} s CPU", file=sys.stderr, flush=True)
    Path(argv[1]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

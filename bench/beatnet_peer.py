"""Run BeatNet online (causal CRNN + particle filter) on WAV files; for the analysis benchmark only.

Runs inside the peers' virtual environment (``.venv-peers``: ``pip install --no-deps beatnet==1.1.3``, with
librosa, pyaudio (after ``apt-get install portaudio19-dev``) and the madmom wheel; torch from the system),
never in the product's: ``.venv-peers/bin/python bench/beatnet_peer.py LIST.json OUT.json``. Writes
``{path: {"beats": [...], "downbeats": [...], "cpu_s": s, "audio_s": s}}``. BeatNet's weights are CC BY 4.0;
nothing here is shipped, imported by the product, or used for training.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    import numpy as np
    import torch
    from BeatNet.BeatNet import BeatNet  # type: ignore[import-not-found,unused-ignore]
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    torch.set_num_threads(1)
    paths = json.loads(Path(argv[0]).read_text())
    out = {}
    for p in paths:
        sr, data = wavfile.read(p)
        x = data.astype(np.float32) / (32768.0 if data.dtype == np.int16 else 1.0)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if sr != 22050:  # BeatNet runs at 22.05 kHz
            x = resample_poly(x, 22050, sr).astype(np.float32)
        # model 1 (trained on GTZAN-free data sets per its authors), online mode: causal network + particle filter
        tracker = BeatNet(1, mode="online", inference_model="PF", plot=[], thread=False)
        t0 = time.process_time()
        res = np.asarray(tracker.process(x))
        cpu = time.process_time() - t0
        beats = res[:, 0].tolist() if res.size else []
        downs = res[res[:, 1] == 1, 0].tolist() if res.size else []
        out[p] = {"beats": beats, "downbeats": downs, "cpu_s": cpu, "audio_s": len(x) / 22050}
        print(f"beatnet {p.rsplit('/', 2)[-2]}: {len(beats)} beats, {cpu:.2f} s CPU", file=sys.stderr, flush=True)
    Path(argv[1]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

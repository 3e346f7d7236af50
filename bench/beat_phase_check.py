"""Does the GPT's phase input line up with the motion it trains on? (issue 10 item 6 diagnostic)

For training sequences: where the predicted-phase input crosses 0 against the beats the music was rendered
on (offsets, the share of sequences where the tracker runs at double tempo), and the Beat Align Score of the
real motion against the rendered beats and against the tracker's predicted ones.

``python3 -m bench.beat_phase_check --data /work/runs/data3 [--sequences 24]`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.models.conditioning import FRAMES_PER_TOKEN, MUSIC_DIM, sequence_conditions
from engine.train import metrics as M
from engine.train.dataset import Sequence, load_packed
from engine.train.evaluate import points


def predicted_beats_s(seq: Sequence) -> np.ndarray:
    """Times where the phase input of the GPT's conditioning crosses 0 (sub-frame, linear), seconds."""
    n = seq.n_frames // FRAMES_PER_TOKEN
    m = seq.music
    cond = sequence_conditions(m.features, m.period_s, m.next_beat_s, n)
    sc = cond[:, FRAMES_PER_TOKEN * MUSIC_DIM :].reshape(n * FRAMES_PER_TOKEN, 2)
    ph = np.mod(np.arctan2(sc[:, 0], sc[:, 1]) / (2 * np.pi), 1.0)
    out = []
    for f in np.where(np.diff(ph) < -0.5)[0] + 1:
        a, b = ph[f - 1], ph[f]
        out.append((f - 1 + (1 - a) / ((1 - a) + b + 1e-9)) / 30.0)
    return np.asarray(out)


def check(seqs: list[Sequence]) -> dict:
    offsets, bas_grid, bas_pred, double = [], [], [], 0
    for s in seqs:
        grid = s.music.beats_s
        pred = predicted_beats_s(s)
        pos = points(s.upper, s.lower)
        bas_grid.append(M.beat_align_score(pos, 30.0, grid))
        bas_pred.append(M.beat_align_score(pos, 30.0, pred))
        late = pred[pred > 3.0]  # after the tracker's start-up
        if len(late):
            d = late[:, None] - grid[None]
            offsets.append(d[np.arange(len(late)), np.abs(d).argmin(1)])
        per = s.music.period_s[s.music.period_s > 0]
        if len(per) and np.median(per) < 0.75 * np.median(np.diff(grid)):
            double += 1
    o = np.concatenate(offsets) * 1000.0
    return {
        "sequences": len(seqs),
        "predicted_minus_rendered_ms": {"p10": float(np.percentile(o, 10)), "p50": float(np.median(o)),
                                        "p90": float(np.percentile(o, 90))},
        "share_within_50ms": float(np.mean(np.abs(o) < 50.0)),
        "sequences_at_double_tempo": double,
        "real_bas_vs_rendered_beats": float(np.mean(bas_grid)),
        "real_bas_vs_predicted_beats": float(np.mean(bas_pred)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.beat_phase_check", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with the packed train.npz")
    ap.add_argument("--sequences", type=int, default=24, help="random unmirrored training sequences (default 24)")
    args = ap.parse_args(argv)
    seqs = [s for s in load_packed(args.data / "train.npz") if not s.name.endswith("_m")]
    rng = np.random.default_rng(0)
    pick = [seqs[i] for i in sorted(rng.choice(len(seqs), min(args.sequences, len(seqs)), replace=False))]
    print(json.dumps(check(pick), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

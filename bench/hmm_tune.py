"""Tuning set for the beat filter (:class:`engine.analysis.beat_hmm.BeatHMM`): how its parameters were chosen.

48 clips rendered by the beat network's training renderer from training-pool tunes (``sample_clips(48,
seed=7)``: tunes the benchmark never uses, other random arrangements than the training run's seed 0), each
lightly and hard augmented as in training; per hop the shipped network's beat and downbeat activations and
the onset function are cached in ``.cache/hmm_tune/``. Each parameter set (JSON keyword arguments of
``BeatHMM``) is scored by mir_eval F (light, hard), downbeat F, and the re-lock (reference beats after a
tempo jump until every beat matches, median over the light jump clips; 99 = never).

    nice -n 10 python3 -m bench.hmm_tune '{}' '{"onset_weight": 0.0}' '{"tempo_weight": 0.0}'
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis_bench import beat_metrics, relock
from engine.analysis.beat_hmm import BeatHMM

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "hmm_tune"


def build(n: int = 48, seed: int = 7) -> list[dict[str, Any]]:
    """Render (once) and load the tuning clips: activations [T, 3] (beat, downbeat, onset) per version."""
    from engine.analysis.beat_net import BeatActivation
    from engine.analysis.music import shipped_beat_net
    from engine.analysis.onset import HOP, N_MEL, OnsetStrength
    from engine.train.beat_data import augment, hop_features, render_clip, sample_clips

    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for i, clip in enumerate(sample_clips(n, seed=seed)):
        path = CACHE / f"{seed}-{i:03d}.npz"
        if not path.exists():
            try:
                x, beats, downs = render_clip(clip)
            except Exception as exc:  # an unparsable tune: skip it, loudly
                print(f"skip {i}: {exc}", flush=True)
                continue
            rng = np.random.default_rng(clip.seed + 1)
            res = {}
            for hard in (False, True):
                y = augment(x, hard, rng)
                f = hop_features(y)
                act, onset = BeatActivation(shipped_beat_net()), OnsetStrength()
                odf = np.array([onset.process(y[k * HOP:(k + 1) * HOP]) for k in range(len(f))], np.float32)
                a = np.array([act.process(r[:N_MEL], r[N_MEL:]) for r in f], np.float32)
                res["hard" if hard else "light"] = np.concatenate([a, odf[:, None]], axis=1)
            np.savez(path, beats=beats, downs=downs, tempo=np.asarray(clip.spec.tempo, np.float64),
                     light=res["light"], hard=res["hard"])
            print(f"rendered {i + 1}/{n}", flush=True)
        with np.load(path) as z:
            out.append({k: z[k] for k in z.files})
    return out


def _jump_s(beats: np.ndarray) -> float | None:
    d = np.diff(beats)
    k = np.flatnonzero(np.abs(d / d[0] - 1.0) > 0.08)
    return float(beats[k[0]]) if len(k) else None


def evaluate(data: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    f: dict[str, list[float]] = {"light": [], "hard": []}
    down: list[float] = []
    rel: list[int] = []
    for z in data:
        for version in ("light", "hard"):
            hmm = BeatHMM(**kw)
            beats, downs = [], []
            for b, d, o in z[version]:
                r = hmm.process(float(b), float(d), float(o))
                if r is not None:
                    beats.append(r.time_s)
                    if r.beat_in_bar == 0:
                        downs.append(r.time_s)
            f[version].append(beat_metrics(z["beats"], beats)["f"])
            down.append(beat_metrics(z["downs"], downs)["f"])
            js = _jump_s(z["beats"]) if len(z["tempo"]) == 2 else None
            if version == "light" and js is not None and js < 25.0:
                k = relock(z["beats"], beats, js)[1]
                rel.append(99 if k is None else k)
    return {"light_f": round(float(np.mean(f["light"])), 4), "hard_f": round(float(np.mean(f["hard"])), 4),
            "downbeat_f": round(float(np.mean(down)), 4), "relock_beats_median": float(np.median(rel)) if rel
            else None, "relock_beats": rel}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("params", nargs="*", default=["{}"], help="BeatHMM keyword arguments as JSON")
    a = ap.parse_args(argv)
    data = build()
    print(f"{len(data)} clips", flush=True)
    for p in a.params:
        print(p, json.dumps(evaluate(data, **json.loads(p))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

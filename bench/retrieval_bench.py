"""Dance quality of the retrieval model beside the GPT and real motion, per style, on unseen music and held-out takes.

Run ``python3 -m bench.retrieval_bench``. Writes ``bench/reports/retrieval.{md,json}``.

For each style of the shared capture (salsa, Indian, modern): real motion = the style's validation takes
(salsa 12-13, both dancers; Indian 07; modern 06, 12, 17), read at their true frame rates by
:mod:`engine.models.capture` (the rates of :mod:`engine.models.capture_sources`; modern retargeted); the
retrieval index holds only the training takes. Music: a synthetic rhythm track rendered on each take's
kinetic beats (the training recipe), analysed causally as live. Each model dances to that music with the
style as its genre: retrieval through :func:`engine.runtime.offline.render` (the live model at batch 1),
the shipped GPT through the same render (beat-guided, the model card's setting; a genre the shipped model
has no row for is danced as salsa, and the report says so). Metrics are the evaluation's
(:mod:`engine.train.evaluate`): Beat Align Score against the music's beats, PFC, foot skating, longest
freeze, and FID_k / FID_g against the style's training takes as captured (per 4 s segment).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.latency_args import REPORT_DIR


def _progress(msg: str) -> None:
    print(f"[bench retrieval] {msg}", file=sys.stderr, flush=True)


def _points(motion: Any) -> np.ndarray:
    from engine.models.pose_repr import motion_to_vectors
    from engine.train.evaluate import points

    up, low = motion_to_vectors(motion)
    return points(up, low)


def run_style(style: str, data: Path, samples: int, gpt_genres: int) -> dict[str, Any]:
    """Real, retrieval and GPT dances on the held-out takes of ``style`` (see the module doc)."""
    from engine.analysis import analyze_signal
    from engine.frames import ENGINE_SAMPLE_RATE, MODEL_FPS
    from engine.models.capture import capture_files, load_take
    from engine.models.conditioning import GENRES
    from engine.models.pose_repr import motion_positions
    from engine.runtime.assemble import ModelSpec, build_model
    from engine.runtime.offline import render
    from engine.train import metrics as M
    from engine.train.evaluate import clip_metrics
    from engine.train.kinetic_beats import kinetic_beats
    from engine.train.synth_music import render_track

    gpt_genre = style if GENRES.index(style) < gpt_genres else "salsa"
    _progress(f"{style}: reference = training takes as captured (true frame rate)")
    ref = [_points(load_take(p, style).motion) for p in capture_files(data, style, "train")]
    rows: dict[str, dict[str, list[float]]] = {"real": {}, "retrieval": {}, "gpt": {}}
    clips: dict[str, list[np.ndarray]] = {k: [] for k in rows}
    val = capture_files(data, style, "val")
    for i, path in enumerate(val):
        tk = load_take(path, style)
        pos = motion_positions(tk.motion)
        beats = kinetic_beats([pos], MODEL_FPS).beats_s
        dur = tk.motion.n_frames / MODEL_FPS
        audio = render_track(beats, dur, seed=50 + i)
        a = analyze_signal(audio, ENGINE_SAMPLE_RATE)
        analysis = (a.features, a.period_s, a.next_beat_s, list(a.beats))
        _progress(f"{style} {tk.name}: {dur:.0f} s, {len(beats)} beats ({60 / np.median(np.diff(beats)):.0f} BPM)")
        variants = [("real", _points(tk.motion))]
        for s in range(samples):
            for name, spec in (("retrieval", ModelSpec(model="retrieval", seed=100 * i + s, data=data, genre=style)),
                               ("gpt", ModelSpec(backend="torch", seed=100 * i + s, genre=gpt_genre))):
                model = build_model(spec)
                variants.append((name, _points(render(model, audio, ENGINE_SAMPLE_RATE, analysis=analysis).motion)))
        for name, p in variants:
            n = min(len(p), int(dur * MODEL_FPS))
            clips[name].append(p[:n])
            for k, v in clip_metrics(p[:n], beats).items():
                rows[name].setdefault(k, []).append(v)
    ref_k, ref_g = M.segment_features(ref, MODEL_FPS)
    summary: dict[str, dict[str, float]] = {}
    for name in rows:
        fk, fg = M.segment_features(clips[name], MODEL_FPS)
        rk, gk = M.normalise_pair(ref_k, fk)
        rg, gg = M.normalise_pair(ref_g, fg)
        summary[name] = {"fid_k": M.frechet_distance(rk, gk), "fid_g": M.frechet_distance(rg, gg),
                         "div_k": M.diversity(gk), "div_g": M.diversity(gg),
                         **{k: float(np.mean(v)) for k, v in rows[name].items()},
                         "max_freeze_s": float(np.max(rows[name]["freeze_s"])), "clips": len(clips[name])}
        _progress(f"{style} {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in summary[name].items()))
    return {"summary": summary, "val_files": [p.name for p in val], "reference_files": len(ref),
            "gpt_genre": gpt_genre}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.models.capture import default_data_dir
    from engine.models.capture_sources import STYLES, resolve_folders
    from engine.models.dance_model import load_dance_model

    data = Path(args.data) if args.data else default_data_dir()
    gpt_genres = load_dance_model().gpt.cfg.n_genres
    styles = [s for s in STYLES if s in resolve_folders(data, STYLES)]
    load = [round(x, 2) for x in os.getloadavg()]
    return {"styles": {st: run_style(st, data, args.samples, gpt_genres) for st in styles},
            "samples_per_clip": args.samples, "load_average_at_start": load,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def throughput(sizes: tuple[int, ...], seconds: float = 6.0) -> list[dict[str, float]]:
    """End to end through the runtime (fast mode, a sink that discards): music seconds per wall second for N
    retrieval performers, i.e. model step + per-performer playout + PoseFrames. > 1 = faster than real time."""
    import time

    from bench.latency_bench import _blocks_fast, music
    from engine.runtime.assemble import EngineSpec, ModelSpec, build_runtime
    from engine.runtime.runtime import RuntimeConfig

    x, _ = music(seconds, [(seconds, 118.0, 118.0)])
    rows = []
    for n in sizes:
        rt = build_runtime(EngineSpec(ModelSpec(model="retrieval", performers=n), RuntimeConfig(realtime=False)),
                           [lambda f: None])
        t0 = time.perf_counter()
        st = rt.run(iter(_blocks_fast(x)))
        wall = time.perf_counter() - t0
        rows.append({"performers": n, "realtime_factor": seconds / wall,
                     "step_p50_ms": float(np.median(st.step_ms))})
        _progress(f"runtime end to end, {n} performers: {seconds / wall:.2f}x real time")
    return rows


def markdown(r: dict[str, Any]) -> str:
    keys = ("fid_k", "fid_g", "div_k", "div_g", "bas", "pfc", "skate_ms", "max_freeze_s")
    lines = ["# Retrieval beside the GPT and real motion, per style", "",
             "Each style's held-out takes at their true frame rates (modern retargeted); music synthesised on each "
             "take's kinetic beats; FID against the style's training takes as captured (4 s segments); "
             f"{r['samples_per_clip']} dances per clip and model, each with the style as its genre. Produced by "
             "`python3 -m bench.retrieval_bench`. Lower is better for FID, PFC, foot skating (m/s of feet near the "
             "floor) and freezes (longest still stretch, s); BAS is higher when motion beats sit on the music's "
             "beats.", ""]
    for style, res in r["styles"].items():
        gpt_note = "" if res["gpt_genre"] == style else (
            f" The shipped GPT has no {style} genre row: its row here danced as {res['gpt_genre']}.")
        lines += [f"## {style}", "",
                  f"Held out: {', '.join(res['val_files'])}; reference: {res['reference_files']} training files."
                  + gpt_note, "",
                  "| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for name, row in res["summary"].items():
            lines.append(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
        lines.append("")
    lines += ["## Performers through the whole runtime", "",
              "Model step alone: `latency.md` (capacity). Here the whole live path in fast mode (analysis, step, "
              "per-performer playout and PoseFrames, a sink that discards; salsa): music seconds per wall second.",
              "", "| performers | x real time | step p50 ms |", "|---|---|---|"]
    for t in r.get("throughput", []):
        lines.append(f"| {t['performers']} | {t['realtime_factor']:.2f} | {t['step_p50_ms']:.1f} |")
    if r.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r["notes"]]
    lines += ["", f"Load average (1, 5, 15 min) at the start {r.get('load_average_at_start')} and at the end "
              f"{r['load_average']}: a 2-core machine shared with other work.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="motion capture folder (default: ../shared/data)")
    p.add_argument("--samples", type=int, default=2, help="dances per clip and model (default 2)")
    p.add_argument("--throughput-sizes", default="100,300,1000", help="performers through the whole runtime")
    p.add_argument("--out", type=Path, default=REPORT_DIR, help="report directory ('-' writes nothing)")
    args = p.parse_args(argv)
    report = run(args)
    report["throughput"] = throughput(tuple(int(x) for x in args.throughput_sizes.split(",")))
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if str(args.out) != "-":
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "retrieval.json").write_text(json.dumps(report, indent=2))
        (args.out / "retrieval.md").write_text(markdown(report))
        _progress(f"wrote {args.out / 'retrieval.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

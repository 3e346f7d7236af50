"""Genre guidance (classifier-free, ``sampling.genre_guidance``): what it buys and what it costs.

Two parts, one report each:

``python -m bench.genre_guidance_bench step [--performers 1,8] [--seconds 30] [--scale 3] [--out bench/reports]``
    Live generator step cost with and without genre guidance (``genre_guidance_step.{md,json}``): the runtime's
    generator (shipped model, default backend, onnxruntime streaming decoder, one thread) built twice, once
    with guidance off and once at ``--scale``, stepped alternately over the conditioning of a synthetic
    100 BPM rhythm track, so both see the same load. Beat guidance as the model card says. Medians of wall
    clock and of the stepping thread's CPU time, and their ratio, from the same run.

``python -m bench.genre_guidance_bench table DIR... [--out bench/reports]``
    Collects the ``eval.json`` of ``groovecast eval --model-only --genre-guidance S --report DIR`` runs into
    ``genre_guidance.{md,json,png}``: style accuracy per style, FID_k / FID_g, beat alignment, speed ratio
    and the longest freeze against the scale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.latency_args import REPORT_DIR

TOKEN_MS = 4 * 1000.0 / 30.0
COLS = ("style_acc", "fid_k", "fid_g", "div_k", "bas", "speed_ratio", "max_freeze_s")


def _conditions(seconds: float) -> np.ndarray:
    from engine.analysis import analyze_signal
    from engine.frames import ENGINE_SAMPLE_RATE
    from engine.models.conditioning import sequence_conditions
    from engine.train.synth_music import render_track

    beats = np.arange(0.3, seconds, 0.6)
    a = analyze_signal(render_track(beats, seconds, seed=3), ENGINE_SAMPLE_RATE)
    return sequence_conditions(a.features, a.period_s, a.next_beat_s, len(a.features) // 4)


def step_cost(performers: int, cond: np.ndarray, scale: float) -> dict[str, Any]:
    """Median step times of the generator with guidance off and at ``scale``, stepped alternately."""
    from engine.runtime.assemble import ModelSpec, build_model

    gens: dict[str, Any] = {
        "off": build_model(ModelSpec(performers=performers, genre_guidance=1.0)),
        "on": build_model(ModelSpec(performers=performers, genre_guidance=scale)),
    }
    warm = 8  # the first steps include lazy initialisation: left out
    wall: dict[str, list[float]] = {k: [] for k in gens}
    cpu: dict[str, list[float]] = {k: [] for k in gens}
    for t, row in enumerate(cond):
        for k in (("off", "on") if t % 2 == 0 else ("on", "off")):
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            gens[k].step(row)
            if t >= warm:
                wall[k].append((time.perf_counter_ns() - t0) / 1e6)
                cpu[k].append((time.thread_time_ns() - c0) / 1e6)
    out: dict[str, Any] = {"performers": performers, "scale": scale, "steps": len(wall["on"]),
                           "backend": gens["on"].backend.name}
    for k in gens:
        out[f"{k}_ms_p50"] = float(np.median(wall[k]))
        out[f"{k}_ms_p99"] = float(np.percentile(wall[k], 99))
        out[f"{k}_cpu_ms_p50"] = float(np.median(cpu[k]))
    out["ratio_wall"] = out["on_ms_p50"] / out["off_ms_p50"]
    out["ratio_cpu"] = out["on_cpu_ms_p50"] / out["off_cpu_ms_p50"]
    return out


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def step_rows(seconds: float, cases: list[Any], measure: Any, note: str,
              **extra: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """The step benches' run: one torch thread, ``seconds`` of the synthetic track's conditioning, one row per case
    (``measure(case, cond)``, printed as JSON as it comes), and the report around them (machine, load, note)."""
    import torch

    torch.set_num_threads(1)
    cond = _conditions(seconds)
    rows = []
    for case in cases:
        rows.append(measure(case, cond))
        print(json.dumps(rows[-1]), flush=True)
    load = os.getloadavg()
    return cond, {"machine": _machine(), "load_average_after": load, "token_ms": TOKEN_MS, "note": note, **extra,
                  "rows": rows}


def run_step(args: argparse.Namespace) -> int:
    cond, report = step_rows(args.seconds, [int(x) for x in args.performers.split(",")],
                             lambda n, c: step_cost(n, c, args.scale), args.note)
    rows, load = report["rows"], report["load_average_after"]
    if str(args.out) == "-":
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "genre_guidance_step.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Genre guidance: live generator step cost", "",
             f"Machine: {report['machine']}; load average after the run {load[0]:.2f} / {load[1]:.2f} / "
             f"{load[2]:.2f}. Shipped model, the runtime's generator (backend `{rows[0]['backend']}`, onnxruntime "
             f"streaming decoder, 1 thread, the card's beat guidance), {len(cond)} tokens of a synthetic 100 BPM "
             "track; guidance off and on stepped alternately in one run. A token lasts "
             f"{TOKEN_MS:.0f} ms. Wall p50 / p99 ms, thread CPU p50 ms.", *([args.note] if args.note else []), "",
             "| performers | scale | off: wall p50 / p99 | off: CPU p50 | on: wall p50 / p99 | on: CPU p50 | "
             "ratio wall / CPU (p50) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['performers']} | {r['scale']:g} | {r['off_ms_p50']:.2f} / {r['off_ms_p99']:.2f} | "
                     f"{r['off_cpu_ms_p50']:.2f} | {r['on_ms_p50']:.2f} / {r['on_ms_p99']:.2f} | "
                     f"{r['on_cpu_ms_p50']:.2f} | {r['ratio_wall']:.2f} / {r['ratio_cpu']:.2f} |")
    (args.out / "genre_guidance_step.md").write_text("\n".join(lines) + "\n")
    return 0


def _scale_of(res: dict) -> float:
    s = res.get("notes", {}).get("sampling", {}).get("genre_guidance")
    return 1.0 if s is None else float(s)


def run_table(args: argparse.Namespace) -> int:
    runs = []
    for d in args.dirs:
        res = json.loads((Path(d) / "eval.json").read_text())
        runs.append((_scale_of(res), res, Path(d).name))
    runs.sort(key=lambda r: (r[0], r[2]))
    styles = sorted(runs[0][1]["by_style"])
    table: list[dict[str, Any]] = []
    for s, res, name in runs:
        row: dict[str, Any] = {"scale": s, "run": name, "pooled": {c: res["summary"]["model"].get(c) for c in COLS}}
        for st in styles:
            row[st] = {c: res["by_style"][st]["model"].get(c) for c in COLS}
        table.append(row)
    notes = runs[0][1]["notes"]
    report = {"dirs": [str(d) for d in args.dirs], "samples_per_clip": notes.get("samples_per_clip"),
              "sampling": {k: v for k, v in notes.get("sampling", {}).items() if k != "genre_guidance"},
              "val_clips": notes.get("val_clips"), "note": args.note, "rows": table}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "genre_guidance.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Genre guidance on the shipped model: style accuracy and quality against the scale", "",
             "Each row: `groovecast eval --model engine/data/models/default --data /work/runs/data3 --samples "
             f"{report['samples_per_clip']} --model-only --genre-guidance S` (the model card's other sampling: "
             "beat guidance, repetition guard); every style's dances under that style's genre row; style_acc is "
             "the share of 4 s windows the style classifier assigns to the intended style.",
             *([args.note] if args.note else []), ""]
    for key in ("pooled", *styles):
        lines += [f"## {key}", "", "| scale | run | " + " | ".join(COLS) + " |", "|---|---|" + "---|" * len(COLS)]
        for row in table:
            lines.append(f"| {row['scale']:g} | {row['run']} | " + " | ".join(
                "-" if row[key][c] is None else f"{row[key][c]:.3f}" for c in COLS) + " |")
        lines.append("")
    (args.out / "genre_guidance.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = sorted({r["scale"] for r in table})

    def mean(key: str, col: str, x: float) -> float:  # over the runs (seeds) at one scale
        return float(np.mean([r[key][col] for r in table if r["scale"] == x]))

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for key in (*styles, "pooled"):
        a1.plot(xs, [mean(key, "style_acc", x) for x in xs], "o-", label=key)
        a2.plot(xs, [mean(key, "fid_k", x) for x in xs], "o-", label=key)
    a1.axhline(0.8, color="r", lw=0.8, ls="--", label="goal 0.8")
    a1.set_xlabel("genre guidance scale s")
    a1.set_ylabel("style accuracy")
    a2.set_xlabel("genre guidance scale s")
    a2.set_ylabel("FID_k (log)")
    a2.set_yscale("log")
    a1.legend(fontsize=8)
    a2.legend(fontsize=8)
    fig.suptitle("Shipped model: genre guidance scale vs style accuracy and FID_k (mean over the runs of a scale)")
    fig.tight_layout()
    fig.savefig(args.out / "genre_guidance.png", dpi=90)
    plt.close(fig)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.genre_guidance_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("step", help="live step cost with and without genre guidance")
    s.add_argument("--performers", default="1,8", help="batch sizes (comma-separated)")
    s.add_argument("--seconds", type=float, default=30.0, help="music per run")
    s.add_argument("--scale", type=float, default=3.0, help="guidance scale of the 'on' generator")
    t = sub.add_parser("table", help="collect eval.json of a sweep")
    t.add_argument("dirs", nargs="+", type=Path)
    for p in (s, t):
        p.add_argument("--out", type=Path, default=REPORT_DIR, help="report directory ('-' writes nothing)")
        p.add_argument("--note", default="", help="a line on the conditions (what else ran), written in the report")
    args = ap.parse_args(argv)
    return run_step(args) if args.cmd == "step" else run_table(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""Cost of beat-guided sampling in the live generator: step time of steered vs plain tokens, per batch size.

``python -m bench.guidance_bench [--performers 1,8,32] [--seconds 30] [--keep-rewinds N] [--out bench/reports]``
writes ``guidance.{md,json,png}``. The generator is the runtime's (shipped model, staged, onnxruntime GPT step and
streaming decoder, one thread), stepped over the conditioning of a synthetic rhythm track at 100 BPM
exactly as the runtime steps it, once with the model card's beat guidance and once with plain sampling. It keeps
what the runtime asks it to keep for exact rewinds: nothing at the runtime's default lookahead 0 (before session 9
the bench kept the model's default, 8 steps, which the runtime at lookahead 0 does not: about 0.4-0.6 ms a step);
``--keep-rewinds N`` measures the step at lookahead N.
A step in which any performer is steered is a "steered step". Medians and p99 of each kind, and the ratio
of medians measured in the same run; wall-clock time and the stepping thread's CPU time (``thread_time``:
on a machine shared with other work the CPU time is what the step itself costs, the wall time adds the
waits for a core). The generator decodes at most ``guidance_rows`` (64) candidate rows per
step, shared by the performers steered in it, so the candidates per performer fall as the batch grows;
below 4 per performer the step samples plainly.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.genre_guidance_bench import _machine
from bench.latency_args import REPORT_DIR
from engine.models.gpt_dancer import MIN_GUIDED_CANDIDATES

TOKEN_MS = 4 * 1000.0 / 30.0


def _conditions(seconds: float) -> np.ndarray:
    from engine.analysis import analyze_signal
    from engine.frames import ENGINE_SAMPLE_RATE
    from engine.models.conditioning import sequence_conditions
    from engine.train.synth_music import render_track

    beats = np.arange(0.3, seconds, 0.6)
    a = analyze_signal(render_track(beats, seconds, seed=3), ENGINE_SAMPLE_RATE)
    return sequence_conditions(a.features, a.period_s, a.next_beat_s, len(a.features) // 4)


def measure(performers: int, cond: np.ndarray, guided: bool, backend: str = "onnxruntime", keep: int = 0) -> dict:
    from engine.runtime.assemble import ModelSpec, build_model

    gen: Any = build_model(ModelSpec(backend=backend, performers=performers, beat_guidance=None if guided else 0))
    # the runtime asks the model to keep what rewinds of its lookahead need (runtime.py: keep_rewinds(min(lookahead,
    # REWIND_STEPS))): nothing at its default lookahead 0; --keep-rewinds N measures a lookahead of N
    gen.keep_rewinds(keep)
    warm = 8  # the first steps include lazy initialisation: left out of every figure
    times: list[tuple[bool, float, float]] = []
    for row in cond:
        before = gen.guided_tokens
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        gen.step(row)
        t1 = time.perf_counter_ns()
        times.append((gen.guided_tokens > before, (t1 - t0) / 1e6, (time.thread_time_ns() - c0) / 1e6))
    times = times[warm:]
    allv = np.array([ms for _, ms, _ in times])
    allc = np.array([c for _, _, c in times])
    out: dict = {"performers": performers, "guided": guided, "steps": len(times), "keep_rewinds": keep,
                 "step_ms_p50": float(np.median(allv)), "step_ms_p99": float(np.percentile(allv, 99)),
                 "step_cpu_ms_p50": float(np.median(allc)), "step_cpu_ms_p99": float(np.percentile(allc, 99))}
    for name, want in (("steered", True), ("plain", False)):
        v = [ms for s, ms, _ in times if s == want]
        c = [cpu for s, _, cpu in times if s == want]
        if v:
            out[f"{name}_steps"] = len(v)
            out[f"{name}_ms_p50"] = float(np.median(v))
            out[f"{name}_ms_p99"] = float(np.percentile(v, 99))
            out[f"{name}_cpu_ms_p50"] = float(np.median(c))
            out[f"{name}_cpu_ms_p99"] = float(np.percentile(c, 99))
    if gen.guidance.enabled:
        share = min(gen.guidance.candidates, gen.guidance_rows // performers)
        out["candidates"] = share if share >= MIN_GUIDED_CANDIDATES else 0
        out["guidance_rows"] = gen.guidance_rows
        out["guided_tokens"] = gen.guided_tokens
        out["skipped_tokens"] = gen.guidance_skipped
    else:
        out["candidates"] = 1
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.guidance_bench", description=__doc__)
    ap.add_argument("--performers", default="1,8,32", help="batch sizes (comma-separated)")
    ap.add_argument("--seconds", type=float, default=30.0, help="music per run")
    ap.add_argument("--out", type=Path, default=REPORT_DIR, help="report directory ('-' writes nothing)")
    ap.add_argument("--note", default="", help="a line on the conditions (what else ran), written in the report")
    ap.add_argument("--keep-rewinds", type=int, default=0, metavar="N",
                    help="steps of exact rewinds kept every step, as the runtime keeps them at lookahead N "
                         "(default 0: the runtime's default lookahead keeps none)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    cond = _conditions(args.seconds)
    rows = []
    for n in (int(x) for x in args.performers.split(",")):
        for guided in (False, True):
            r = measure(n, cond, guided, keep=args.keep_rewinds)
            rows.append(r)
            print(json.dumps(r), flush=True)
    load = os.getloadavg()
    report = {"machine": _machine(),
              "load_average_after": load, "token_ms": TOKEN_MS, "rows": rows}
    if str(args.out) == "-":
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "guidance.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Beat-guided sampling: live generator step cost", "",
             f"Machine: {report['machine']}; load average after the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. "
             "Shipped model (staged), onnxruntime GPT step + onnxruntime streaming decoder, 1 thread, "
             f"rewinds kept: {args.keep_rewinds} steps (the runtime's lookahead; 0 is its default); "
             f"{len(cond)} tokens of a synthetic 100 BPM rhythm track per run. A token lasts {TOKEN_MS:.0f} ms. "
             "Each cell: wall-clock p50 / p99 ms, then in brackets the stepping thread's CPU time p50 / p99 ms "
             "(what the step costs without the waits for a core).", *([args.note] if args.note else []), "",
             "| performers | sampling | steps steered | steered step | other steps | all steps |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if not r["guided"]:
            kind = "plain"
        elif r["candidates"] >= MIN_GUIDED_CANDIDATES:
            kind = f"guided ({r['candidates']} candidates each)"
        else:
            kind = f"guided, row budget {r['guidance_rows']} spent: plain"
        def cell(key: str, r: dict = r) -> str:
            if f"{key}_ms_p50" not in r:
                return "-"
            return (f"{r[f'{key}_ms_p50']:.2f} / {r[f'{key}_ms_p99']:.2f} "
                    f"({r[f'{key}_cpu_ms_p50']:.2f} / {r[f'{key}_cpu_ms_p99']:.2f})")

        lines.append(f"| {r['performers']} | {kind} | {r.get('steered_steps', 0)} of {r['steps']} | "
                     f"{cell('steered')} | {cell('plain')} | {cell('step')} |")
    lines.append("")
    for n in sorted({r["performers"] for r in rows}):
        g = next(r for r in rows if r["performers"] == n and r["guided"])
        p = next(r for r in rows if r["performers"] == n and not r["guided"])
        if "steered_ms_p50" in g:
            lines.append(f"- {n} performer(s): a steered step costs {g['steered_ms_p50'] / p['step_ms_p50']:.1f}x "
                         f"a plain step (medians, same run); p99 of a steered step is "
                         f"{100 * g['steered_ms_p99'] / TOKEN_MS:.0f} % of the token's {TOKEN_MS:.0f} ms; CPU time "
                         f"steered {g['steered_cpu_ms_p50']:.2f} / {g['steered_cpu_ms_p99']:.2f} ms, plain "
                         f"{p['step_cpu_ms_p50']:.2f} / {p['step_cpu_ms_p99']:.2f} ms (p50 / p99).")
    (args.out / "guidance.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({r["performers"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4))
    for guided, label in ((False, "plain step"), (True, "steered step (guided)")):
        key = "steered_ms_p50" if guided else "step_ms_p50"
        ys = [next(r for r in rows if r["performers"] == n and r["guided"] == guided).get(key, np.nan) for n in ns]
        ax.plot(ns, ys, "o-", label=label)
    ax.axhline(TOKEN_MS, color="r", lw=0.8, ls="--", label="token period")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("performers (batch)")
    ax.set_ylabel("step time, median (ms)")
    ax.legend()
    ax.set_title("Live generator step: beat-guided vs plain sampling")
    fig.tight_layout()
    fig.savefig(args.out / "guidance.png", dpi=90)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

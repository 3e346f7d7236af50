"""What the live controls cost the generator step: text guidance's third row and the history rewrite of a switch.

``python -m bench.controls_step_bench [--model DIR] [--performers 1,8] [--seconds 30] [--out bench/reports]``

The runtime's generator (``build_model``: default backend, onnxruntime streaming decoder, one thread, the card's
beat guidance and genre guidance) built three times and stepped alternately over the conditioning of a synthetic
100 BPM track, so all see the same load, every performer with a text prompt:

* ``two rows``: genre guidance, the text sharing its scale (the card without ``text_guidance``);
* ``three rows``: the same with a separate text scale (``--text-guidance``; a genre-only row per performer with
  a text, stepped in the same batch);
* ``switch``: the two-row generator whose performers all switch genre every 8th step: before stepping, that step
  rewrites every performer's cached history (one batched forward over the newest positions per performer), or,
  with the card's ``genre_switch.context`` 0 (the shipped card since session 7), restarts its GPT window under the
  new genre (nothing to rewrite; the report counts the rewrites);
* ``replan``: the two-row generator where performer 0 alone switches genre every 8th step under a lookahead of
  ``--lookahead`` steps, as the runtime re-plans it: its ``L`` generated-but-unplayed steps are rewound and remade
  at once under the new genre (``step(cond, [0])``, the first switching), then the step of everyone;
  the whole control step is timed;
* ``no_keep``: the two-row generator without the per-step state kept for exact rewinds (decoder histories, foot
  locking, guidance memory, the GPT cache entries each step overwrites, the staging's state; ``keep_rewinds(0)``,
  what the runtime asks at lookahead 0), to measure what keeping it costs every step;
* ``no_text``: the two-row generator without a text: beat guidance's text term (card ``text_weight``) steers every
  token of a performer whose text names an attribute (candidates drawn, decoded and measured by one batched
  ``motion_measures.per_frame_measures`` call), where without a text only the tokens near a beat are steered; so
  ``two_rows`` against it is the live cost of a text, per step and per performer.

Medians (and p99) of wall clock and of the stepping thread's CPU time per step, from one run
(``controls_step.{md,json}``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.genre_guidance_bench import TOKEN_MS, step_rows
from bench.latency_args import REPORT_DIR

SWITCH_EVERY = 8


def step_cost(model: Path | None, performers: int, cond: np.ndarray, text_scale: float,
              lookahead: int = 4) -> dict[str, Any]:
    """Per-step wall / CPU times of the generators (see the module doc), stepped alternately."""
    from engine.runtime.assemble import ModelSpec, build_model

    prompt = "energetic, arms high"
    gens: dict[str, Any] = {
        "two_rows": build_model(ModelSpec(model=model, performers=performers, text=prompt)),
        "three_rows": build_model(ModelSpec(model=model, performers=performers, text=prompt,
                                            text_guidance=text_scale)),
        "switch": build_model(ModelSpec(model=model, performers=performers, text=prompt)),
        "replan": build_model(ModelSpec(model=model, performers=performers, text=prompt)),
        "no_keep": build_model(ModelSpec(model=model, performers=performers, text=prompt)),
        "no_text": build_model(ModelSpec(model=model, performers=performers)),
    }
    nk = gens["no_keep"]
    nk.keep_rewinds(0)  # what the runtime asks at lookahead 0: the generator and the staging keep nothing
    if gens["two_rows"].inner.genre_guidance is None:
        raise SystemExit("the model card has no genre guidance: nothing to measure (pass a model with it)")
    warm = 8
    wall: dict[str, list[float]] = {k: [] for k in gens}
    cpu: dict[str, list[float]] = {k: [] for k in gens}
    switch_wall: list[float] = []
    replan_wall: list[float] = []
    replan_cpu: list[float] = []
    genres = (1, 11, 12)  # salsa, indian, modern
    keys = list(gens)
    for t, row in enumerate(cond):
        for k in keys[t % len(keys):] + keys[: t % len(keys)]:
            g = gens[k]
            due = t >= max(warm, lookahead) and t % SWITCH_EVERY == 0
            if due and k == "switch":
                for pid in g.performer_ids():
                    g.inner.get(pid).controls.genre = genres[(t // SWITCH_EVERY) % 3]
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            if due and k == "replan":  # the runtime's control re-plan of performer 0, then the step of everyone
                g.rewind(0, lookahead)
                g.inner.get(0).controls.genre = genres[(t // SWITCH_EVERY) % 3]
                for s in range(t - lookahead, t):
                    g.step(cond[s], [0])
            g.step(row)
            ms = (time.perf_counter_ns() - t0) / 1e6
            if t >= warm:
                if due and k == "switch":
                    switch_wall.append(ms)
                elif due and k == "replan":
                    replan_wall.append(ms)
                    replan_cpu.append((time.thread_time_ns() - c0) / 1e6)
                elif k not in ("switch", "replan"):
                    wall[k].append(ms)
                    cpu[k].append((time.thread_time_ns() - c0) / 1e6)
    out: dict[str, Any] = {"performers": performers, "text_scale": text_scale, "steps": len(wall["two_rows"]),
                           "backend": gens["two_rows"].inner.backend.name,
                           "genre_scale": gens["two_rows"].inner.genre_guidance,
                           "rewrites": gens["switch"].inner.rewrites, "switch_steps": len(switch_wall)}
    for k in ("two_rows", "three_rows", "no_keep", "no_text"):
        out[f"{k}_ms_p50"] = float(np.median(wall[k]))
        out[f"{k}_ms_p99"] = float(np.percentile(wall[k], 99))
        out[f"{k}_cpu_ms_p50"] = float(np.median(cpu[k]))
    out["switch_step_ms_p50"] = float(np.median(switch_wall))
    out["switch_step_ms_max"] = float(np.max(switch_wall))
    out["lookahead"] = lookahead
    out["replan_steps"] = len(replan_wall)
    out["replan_step_ms_p50"] = float(np.median(replan_wall))
    out["replan_step_ms_max"] = float(np.max(replan_wall))
    out["replan_step_cpu_ms_p50"] = float(np.median(replan_cpu))
    out["ratio_three_two"] = out["three_rows_ms_p50"] / out["two_rows_ms_p50"]
    out["ratio_switch_two"] = out["switch_step_ms_p50"] / out["two_rows_ms_p50"]
    out["ratio_replan_two"] = out["replan_step_ms_p50"] / out["two_rows_ms_p50"]
    out["ratio_keep_cpu"] = out["two_rows_cpu_ms_p50"] / out["no_keep_cpu_ms_p50"]
    out["ratio_text"] = out["two_rows_ms_p50"] / out["no_text_ms_p50"]
    out["ratio_text_cpu"] = out["two_rows_cpu_ms_p50"] / out["no_text_cpu_ms_p50"]
    out["text_cpu_ms_per_performer"] = (out["two_rows_cpu_ms_p50"] - out["no_text_cpu_ms_p50"]) / performers
    for k in ("two_rows", "no_text"):  # share of performer-steps steered among candidates
        inner = gens[k].inner
        out[f"{k}_steered_share"] = inner.guided_tokens / max(1, inner.steps * performers)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--performers", default="1,8")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--text-guidance", type=float, default=12.0, help="the three-row generator's text scale")
    ap.add_argument("--lookahead", type=int, default=4, help="steps the replan generator remakes per control")
    ap.add_argument("--note", default="", help="a line for the report (what else ran on the machine)")
    ap.add_argument("--out", type=Path, default=REPORT_DIR)
    args = ap.parse_args(argv)
    cond, report = step_rows(args.seconds, [int(x) for x in args.performers.split(",")],
                             lambda n, c: step_cost(args.model, n, c, args.text_guidance, args.lookahead), args.note,
                             model=str(args.model or "the shipped model"))
    rows, load = report["rows"], report["load_average_after"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "controls_step.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Controls: live generator step cost", "",
             f"`python -m bench.controls_step_bench --model {report['model']} --performers {args.performers} "
             f"--seconds {args.seconds:g} --text-guidance {args.text_guidance:g} --lookahead {args.lookahead}`. "
             f"Machine: {report['machine']}; "
             f"load average after the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. The runtime's generator "
             f"(backend `{rows[0]['backend']}`, onnxruntime streaming decoder, 1 thread, the card's beat guidance and "
             f"genre guidance {rows[0]['genre_scale']:g}), every performer with a text, {len(cond)} tokens of a "
             f"synthetic 100 BPM track; the six generators stepped alternately in one run. A token lasts "
             f"{TOKEN_MS:.0f} ms. Wall p50 / p99 ms, thread CPU p50 ms. Switch: every performer's genre changed "
             f"every {SWITCH_EVERY}th step ({', '.join(str(r['rewrites']) for r in rows)} history rewrites: with "
             f"the card's `genre_switch.context` 0 a switch restarts the GPT window under the new genre instead of "
             f"rewriting it, since session 7). Re-plan: performer 0's genre "
             f"changed every {SWITCH_EVERY}th step under lookahead {args.lookahead}: its {args.lookahead} unplayed "
             f"steps rewound and remade alone, then everyone's step (the runtime's control re-plan; the whole "
             f"control step timed). No keep: the same two-row generator without the state kept per step for exact "
             f"rewinds. No text: the two-row generator without a text (beat guidance's text term steers no token; "
             f"with the text every token is steered).",
             *([args.note] if args.note else []), "",
             "| performers | two rows: wall p50 / p99 | CPU p50 | three rows (text scale): wall p50 / p99 | CPU p50 | "
             "ratio three / two | switch step: wall p50 / max | ratio switch / two |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['performers']} | {r['two_rows_ms_p50']:.2f} / {r['two_rows_ms_p99']:.2f} | "
                     f"{r['two_rows_cpu_ms_p50']:.2f} | {r['three_rows_ms_p50']:.2f} / {r['three_rows_ms_p99']:.2f} | "
                     f"{r['three_rows_cpu_ms_p50']:.2f} | {r['ratio_three_two']:.2f} | "
                     f"{r['switch_step_ms_p50']:.2f} / {r['switch_step_ms_max']:.2f} | {r['ratio_switch_two']:.2f} |")
    lines += ["", "| performers | control re-plan step (lookahead " + str(args.lookahead) + "): wall p50 / max | "
              "CPU p50 | ratio re-plan / two rows | two rows without the kept state: CPU p50 | ratio CPU kept / not |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['performers']} | {r['replan_step_ms_p50']:.2f} / {r['replan_step_ms_max']:.2f} | "
                     f"{r['replan_step_cpu_ms_p50']:.2f} | {r['ratio_replan_two']:.2f} | "
                     f"{r['no_keep_cpu_ms_p50']:.2f} | {r['ratio_keep_cpu']:.3f} |")
    lines += ["", "| performers | text set (two rows): wall p50 / p99 | CPU p50 | no text: wall p50 / p99 | CPU p50 | "
              "ratio text / none (wall, CPU) | text's CPU per performer and token | tokens steered: text / none |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['performers']} | {r['two_rows_ms_p50']:.2f} / {r['two_rows_ms_p99']:.2f} | "
                     f"{r['two_rows_cpu_ms_p50']:.2f} | {r['no_text_ms_p50']:.2f} / {r['no_text_ms_p99']:.2f} | "
                     f"{r['no_text_cpu_ms_p50']:.2f} | {r['ratio_text']:.2f}, {r['ratio_text_cpu']:.2f} | "
                     f"{r['text_cpu_ms_per_performer']:+.2f} ms | "
                     f"{100 * r['two_rows_steered_share']:.0f} % / {100 * r['no_text_steered_share']:.0f} % |")
    (args.out / "controls_step.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

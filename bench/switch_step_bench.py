"""What a live genre switch costs the generator step that makes it (the switch step's latency spike).

``python -m bench.switch_step_bench [--model DIR] [--switches 12] [--note TEXT] [--out bench/reports]``

One performer of the runtime's generator (``build_model``: the card's backend, beat guidance, genre guidance and
``sampling.genre_switch``), one torch thread, stepped over a synthetic 100 BPM track's conditioning. Each round
resets the dance, steps 16 tokens in one style and switches genre (salsa -> indian -> modern -> salsa) before the
17th, under four generators built alike, the order rotated per round so all see the same load:

* ``primed``: the card as shipped: the GPT window restarts primed with real dance of the new style, its conditional
  row (new genre) and unconditional row (no genre) rewritten in one batched forward (session 11);
* ``two_forwards``: the same, the unconditional row rewritten by its own forward first (sessions 10's switch step);
* ``bos``: the card with ``primer`` 0 (the window restarts from BOS: nothing to rewrite);
* ``no_switch``: the same 17th step without a switch (the step's ordinary cost).

Reports the median, p90 and max wall time and the median thread CPU time of the 17th step
(``switch_step.{md,json}``).
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

BEFORE = 16  # tokens danced before the switch (the primer needs a frame; the window holds 16 positions)
ORDER = ("salsa", "indian", "modern")


def _two_forwards(gen: Any) -> None:
    """Make ``gen`` rewrite a restarted window's unconditional row at once, by its own forward (session 10)."""
    inner = gen.inner
    plain = inner.restart_window

    def restart_window(p: Any, keep: int, primer: Any = None) -> None:
        plain(p, keep, primer)
        inner.flush_uncond()

    inner.restart_window = restart_window


def switch_cost(model: Path | None, switches: int, cond: np.ndarray) -> dict[str, Any]:
    """Wall and CPU ms of the switch step under each generator (see the module doc)."""
    from engine.models.conditioning import genre_id
    from engine.runtime.assemble import ModelSpec, build_model

    gens: dict[str, Any] = {k: build_model(ModelSpec(model=model)) for k in ("primed", "two_forwards", "bos",
                                                                              "no_switch")}
    if not gens["primed"].inner.switch_primer[0]:
        raise SystemExit("the model card has no switch primer (sampling.genre_switch.primer): nothing to compare")
    _two_forwards(gens["two_forwards"])
    gens["bos"].inner.switch_primer = (0, None)
    wall: dict[str, list[float]] = {k: [] for k in gens}
    cpu: dict[str, list[float]] = {k: [] for k in gens}
    keys = list(gens)
    for r in range(switches + 1):  # round 0 warms up (not counted)
        old, new = ORDER[r % 3], ORDER[(r + 1) % 3]
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            g = gens[k]
            pid = g.performer_ids()[0]
            g.reset(pid, np.zeros(2))
            p = g.inner.get(pid)
            p.controls.genre = genre_id(old)
            for t in range(BEFORE):
                g.step(cond[t])
            if k != "no_switch":
                p.controls.genre = genre_id(new)
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            g.step(cond[BEFORE])
            if r:
                wall[k].append((time.perf_counter_ns() - t0) / 1e6)
                cpu[k].append((time.thread_time_ns() - c0) / 1e6)
    out: dict[str, Any] = {"switches": switches, "backend": gens["primed"].inner.backend.name,
                           "primer_tokens": gens["primed"].inner.switch_primer[0],
                           "rewrites": {k: g.inner.rewrites for k, g in gens.items()}}
    for k in gens:
        out[f"{k}_ms_p50"] = float(np.median(wall[k]))
        out[f"{k}_ms_p90"] = float(np.percentile(wall[k], 90))
        out[f"{k}_ms_max"] = float(np.max(wall[k]))
        out[f"{k}_cpu_ms_p50"] = float(np.median(cpu[k]))
    out["ratio_primed_two_forwards"] = out["primed_ms_p50"] / out["two_forwards_ms_p50"]
    out["ratio_primed_no_switch"] = out["primed_ms_p50"] / out["no_switch_ms_p50"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--switches", type=int, default=12, help="switch steps measured per generator")
    ap.add_argument("--note", default="", help="a line for the report (what else ran on the machine)")
    ap.add_argument("--out", type=Path, default=REPORT_DIR)
    args = ap.parse_args(argv)
    if args.switches < 1:
        ap.error("--switches must be >= 1")
    _, report = step_rows(BEFORE * TOKEN_MS / 1000 + 1.0, [args.switches],
                          lambda n, c: switch_cost(args.model, n, c), args.note,
                          model=str(args.model or "the shipped model"))
    r, load = report["rows"][0], report["load_average_after"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "switch_step.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Genre switch: the switch step's cost", "",
             f"`python -m bench.switch_step_bench --switches {args.switches}` ({report['model']}). Machine: "
             f"{report['machine']}; load average after the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. "
             f"One performer of the runtime's generator (backend `{r['backend']}`, 1 thread, the card's beat and "
             f"genre guidance and genre switch, primer {r['primer_tokens']} tokens); each round {BEFORE} tokens of a "
             "synthetic 100 BPM track, then the step that switches genre (salsa -> indian -> modern -> salsa); the "
             "four generators stepped in rotated order in one run. A token lasts "
             f"{TOKEN_MS:.0f} ms. Wall ms of the switch step (p50 / p90 / max) and thread CPU p50.",
             *([args.note] if args.note else []), "",
             "| generator | wall p50 / p90 / max | CPU p50 |", "|---|---|---|"]
    names = {"primed": "primed, both rows in one forward (shipped)",
             "two_forwards": "primed, two forwards (session 10)", "bos": "restart from BOS (primer 0)",
             "no_switch": "the same step without a switch"}
    for k, name in names.items():
        lines.append(f"| {name} | {r[k + '_ms_p50']:.1f} / {r[k + '_ms_p90']:.1f} / {r[k + '_ms_max']:.1f} | "
                     f"{r[k + '_cpu_ms_p50']:.1f} |")
    lines += ["", f"Ratio one forward / two forwards (p50): {r['ratio_primed_two_forwards']:.2f}; switch step / "
              f"no switch: {r['ratio_primed_no_switch']:.2f}."]
    (args.out / "switch_step.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What a control re-plan and the state kept for it cost each model kind: solo GPT, couples, retrieval.

``python -m bench.replan_bench [--kinds gpt,couple,retrieval] [--performers 2] [--seconds 30] [--lookahead 4]``

For each kind the runtime's model (``build_model``: the shipped model's card, its beat and genre guidance, the
onnxruntime streaming decoder, 1 thread; couples: the shipped follower, ``--performers`` dancers = half as many
couples; retrieval: the three styles' capture) is built three times and stepped alternately over the conditioning
of a synthetic 100 BPM track, so all see the same load:

* ``plain``: keeps the state for exact rewinds of ``--lookahead`` steps (``keep_rewinds``, what the runtime asks at
  that lookahead), never rewound: the step cost at that lookahead;
* ``replan``: the same, and every 8th step performer 0's genre changes as the runtime re-plans it: its step group
  (a couple: both partners) is rewound by ``--lookahead`` steps and those steps are remade for it alone
  (``step(cond, pids)``), then everyone's step; the whole control step is timed;
* ``no_keep``: ``keep_rewinds(0)``, what the runtime asks at lookahead 0: no state kept.

Medians (and p99) of wall clock and of the stepping thread's CPU time per step, from one run (``replan.{md,json}``);
the state kept per step timed alone (the saves of one step, repeated: thread CPU per step, microseconds; for the
GPT kinds with the cache entries and history entries the step overwrites, read from the backend as a step reads
them), and the memory it takes per dancer (all kept steps; of which the GPT's cache entries).

Exactness past the attention window (GPT kinds): two more copies, one stepped ``EXACT_MADE`` tokens (past the GPT's
window) plus ``--lookahead``, then rewound by ``--lookahead`` as a re-plan does; the other stepped ``EXACT_MADE``
tokens only (a twin that never made the discarded steps); with the twin's random streams, both make ``EXACT_AFTER``
more steps of performer 0's group, and the frames that differ at all are counted (0: exact).
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
GENRES = (1, 11, 12)  # salsa, indian, modern
EXACT_MADE = 100  # tokens before the rewind of the exactness check (past the shipped GPT's 60-token window)
EXACT_AFTER = 40  # steps compared after it


def _spec(kind: str, performers: int) -> Any:
    from engine.runtime.assemble import ModelSpec

    if kind == "couple":
        return ModelSpec(performers=performers, couple=True)
    return ModelSpec(model="retrieval" if kind == "retrieval" else None, performers=performers)


def replan_cost(kind: str, performers: int, cond: np.ndarray, lookahead: int) -> dict[str, Any]:
    """Per-step wall / CPU times of the three models of ``kind`` (see the module doc), stepped alternately."""
    from engine.runtime.assemble import build_model

    models = {k: build_model(_spec(kind, performers)) for k in ("plain", "replan", "no_keep")}
    for k, m in models.items():
        m.keep_rewinds(0 if k == "no_keep" else lookahead)
    warm = max(8, lookahead)
    wall: dict[str, list[float]] = {k: [] for k in models}
    cpu: dict[str, list[float]] = {k: [] for k in models}
    keys = list(models)
    group = models["replan"].step_group([0])
    for t, row in enumerate(cond):
        for k in keys[t % len(keys):] + keys[: t % len(keys)]:
            m = models[k]
            due = k == "replan" and t >= warm and t % SWITCH_EVERY == 0
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            if due:  # the runtime's control re-plan of performer 0's group, then the step of everyone
                for pid in group:
                    m.rewind(pid, lookahead)
                m.controls(0).genre = GENRES[(t // SWITCH_EVERY) % 3]
                for s in range(t - lookahead, t):
                    m.step(cond[s], group)
            m.step(row)
            if t >= warm and (k != "replan" or due):
                wall[k].append((time.perf_counter_ns() - t0) / 1e6)
                cpu[k].append((time.thread_time_ns() - c0) / 1e6)
    out: dict[str, Any] = {"kind": kind, "performers": performers, "lookahead": lookahead, "group": group,
                           "steps": len(wall["plain"]), "replans": len(wall["replan"])}
    for k in keys:
        out[f"{k}_ms_p50"] = float(np.median(wall[k]))
        out[f"{k}_ms_p99"] = float(np.percentile(wall[k], 99))
        out[f"{k}_cpu_ms_p50"] = float(np.median(cpu[k]))
    out["ratio_replan_plain"] = out["replan_ms_p50"] / out["plain_ms_p50"]
    out["keep_cpu_ms"] = out["plain_cpu_ms_p50"] - out["no_keep_cpu_ms_p50"]
    out["save_alone_us"] = save_cost(kind, models["plain"])
    out["read_alone_us"] = read_cost(kind, models["plain"])
    out["kept_kb_per_dancer"], out["kept_cache_kb_per_dancer"] = kept_memory(kind, models["plain"])
    if kind != "retrieval":
        out["exact_frames_differing"], out["exact_frames"] = exact_check(kind, performers, cond, lookahead)
    return out


def exact_check(kind: str, performers: int, cond: np.ndarray, lookahead: int) -> tuple[int, int]:
    """Frames of a model rewound by ``lookahead`` past the GPT's window that differ from those of a twin that never
    made the discarded steps (see the module doc): (differing, compared)."""
    from engine.runtime.assemble import build_model

    made = min(EXACT_MADE, len(cond) - lookahead - EXACT_AFTER)
    a, b = (build_model(_spec(kind, performers)) for _ in range(2))
    for m in (a, b):
        m.keep_rewinds(lookahead)
    for t in range(made + lookahead):
        a.step(cond[t])
    for t in range(made):
        b.step(cond[t])
    group = a.step_group([0])
    for pid in group:
        a.rewind(pid, lookahead)
    for ga, gb in zip(_generators(kind, a), _generators(kind, b), strict=True):
        for pa, pb in zip(ga.performers, gb.performers, strict=True):
            pa.rng.set_state(pb.rng.get_state())
    differing = compared = 0
    for t in range(made, made + EXACT_AFTER):
        for x, y in zip(a.step(cond[t], group), b.step(cond[t], group), strict=True):
            same = np.all(x.quat == y.quat, axis=(1, 2)) & np.all(x.root == y.root, axis=1)
            differing += int((~same).sum())
            compared += len(same)
    return differing, compared


def _generators(kind: str, m: Any) -> list[Any]:
    """The GPT generators of a model of ``kind`` (none for retrieval)."""
    if kind == "couple":
        return [m.leader, m.follower]
    return [] if kind == "retrieval" else [m.inner]


def read_cost(kind: str, m: Any, repeats: int = 500) -> float:
    """Thread CPU (microseconds) per step of reading, for exact rewinds, the GPT cache entries and history entries a
    step overwrites (part of :func:`save_cost`; 0 for retrieval)."""
    gens = _generators(kind, m)
    c0 = time.thread_time_ns()
    for _ in range(repeats):
        for g in gens:
            g.ring_before_step(g.performers)
            g.hist_before_step(g.performers)
    return (time.thread_time_ns() - c0) / repeats / 1e3


def kept_memory(kind: str, m: Any) -> tuple[float, float]:
    """KB per dancer of the generators' snapshot rings as allocated (all kept steps), and of it the GPT cache entries
    (the ring slots each kept step overwrote, for exact rewinds past the attention window)."""
    gens = _generators(kind, m)
    dancers = max(1, len(m.performer_ids()))
    total = sum(g.snapshots.nbytes() for g in gens)
    cache = sum(g.snapshots.nbytes(("ring_k", "ring_v")) for g in gens)
    return total / dancers / 1024, cache / dancers / 1024


def save_cost(kind: str, m: Any, repeats: int = 500) -> float:
    """Thread CPU (microseconds) of the saves one step of ``m`` makes for exact rewinds, timed alone (repeated)."""
    def gpt_save(g: Any) -> None:  # what a step keeps: the entries it overwrites (read first), then the state
        ps = g.performers
        g.save_state(ps, g.ring_before_step(ps), g.hist_before_step(ps))

    def save() -> None:
        if kind == "couple":
            gpt_save(m.leader)
            gpt_save(m.follower)
            m.save_state(m.couples)
            return
        pids = m.performer_ids()
        if kind == "retrieval":
            m.inner.save_state(np.arange(len(pids)))
        else:
            gpt_save(m.inner)
        m.stager.save(pids, [m._steps[p] for p in pids])

    save()
    c0 = time.thread_time_ns()
    for _ in range(repeats):
        save()
    return (time.thread_time_ns() - c0) / repeats / 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", default="gpt,couple,retrieval")
    ap.add_argument("--performers", type=int, default=2, help="dancers per model (couples: two per couple)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--lookahead", type=int, default=4, help="steps remade per control (and kept for it)")
    ap.add_argument("--note", default="", help="a line for the report (what else ran on the machine)")
    ap.add_argument("--out", type=Path, default=REPORT_DIR)
    args = ap.parse_args(argv)
    cond, report = step_rows(args.seconds, args.kinds.split(","),
                             lambda kind, c: replan_cost(kind, args.performers, c, args.lookahead), args.note)
    rows, load = report["rows"], report["load_average_after"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replan.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Control re-plans per model kind: cost of the re-plan step and of the state kept for it", "",
             f"`python -m bench.replan_bench --kinds {args.kinds} --performers {args.performers} "
             f"--seconds {args.seconds:g} --lookahead {args.lookahead}`. Machine: {report['machine']}; load average "
             f"after the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. The runtime's model of each kind (the "
             f"shipped card: beat and genre guidance, onnxruntime streaming decoder, 1 thread; couples with the "
             f"shipped follower), {args.performers} dancers, {len(cond)} tokens of a synthetic 100 BPM track, three "
             f"copies stepped alternately in one run. A token lasts {TOKEN_MS:.0f} ms. Plain: the step with the "
             f"state kept for exact rewinds of {args.lookahead} steps; re-plan: every {SWITCH_EVERY}th step "
             f"performer 0's genre changes and its step group (a couple: both partners) is rewound by "
             f"{args.lookahead} steps and remade alone, then everyone's step (the whole control step timed); no "
             f"keep: nothing kept (lookahead 0). Wall p50 / p99 ms, thread CPU p50 ms. Last column: a copy rewound "
             f"by {args.lookahead} after {EXACT_MADE} tokens (past the GPT's attention window) against a twin that "
             f"never made the discarded steps, with the twin's random streams: frames of the next {EXACT_AFTER} "
             f"steps of performer 0's group that differ at all (0: exact; before session 8 the discarded steps' "
             f"ring slots were not put back).",
             *([args.note] if args.note else []), "",
             "| kind | re-planned | plain: wall p50 / p99 | CPU p50 | control re-plan step: wall p50 / p99 | CPU p50 | "
             "ratio re-plan / plain | no keep: CPU p50 | kept state: plain - no keep CPU p50 | "
             "kept state timed alone (of it reading the overwritten cache entries) | "
             "GPT snapshot ring per dancer (of it cache entries) | rewound past the window: frames differing "
             "from a twin |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['group']} | {r['plain_ms_p50']:.2f} / {r['plain_ms_p99']:.2f} | "
                     f"{r['plain_cpu_ms_p50']:.2f} | {r['replan_ms_p50']:.2f} / {r['replan_ms_p99']:.2f} | "
                     f"{r['replan_cpu_ms_p50']:.2f} | {r['ratio_replan_plain']:.2f} | "
                     f"{r['no_keep_cpu_ms_p50']:.2f} | {r['keep_cpu_ms']:+.2f} ms | {r['save_alone_us']:.0f} us "
                     f"({r['read_alone_us']:.0f} us) | "
                     + (f"{r['kept_kb_per_dancer']:.0f} KB ({r['kept_cache_kb_per_dancer']:.0f} KB) | "
                        f"{r['exact_frames_differing']} of {r['exact_frames']} |"
                        if r["kind"] != "retrieval" else "- | - |"))
    (args.out / "replan.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

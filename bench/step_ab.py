"""Before/after of the live step's CPU cost: two source trees' generators stepped alternately, one step each.

``python -m bench.step_ab BEFORE_TREE AFTER_TREE [--guided] [--keep-rewinds N] [--performers 1] [--seconds 30]
[--repeats 1] [--out FILE.json]``

Each tree (a checkout of groovecast, e.g. ``git worktree add /tmp/before COMMIT`` or ``git archive COMMIT | tar -x``)
runs its own generator in its own process (``build_model`` with the shipped card: staged, onnxruntime GPT step and
streaming decoder, one thread; ``--guided``: the card's beat guidance, else plain sampling) over the conditioning of
the synthetic 100 BPM track of ``bench.guidance_bench``. The two processes step in turn, one step each (the order
swapped every step), so both see the same load at the same moments: on a machine shared with other work this is the
way to compare two versions, where two runs one after the other see different loads. Each step's CPU time is the
stepping thread's (``thread_time``). Prints and writes the medians and p99 of each tree and their ratio, over all
steps and, guided, over the steered steps and the others. The first 8 steps (lazy initialisation) are left out.
``--repeats N`` steps the same two generators over the music N times in turn (the dance goes on) and reports each
repeat's figures and their medians over the repeats (``median``; the ratio is of those medians).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.decode_bench import _cpu_name

WARM = 8

# The worker runs inside a tree with only what every version since session 7 has (build_model, keep_rewinds, the
# guidance bench's conditions); it steps when told and answers with the step's CPU ms and whether it was steered.
_WORKER = """
import json, sys, time, torch
torch.set_num_threads(1)
from bench.guidance_bench import _conditions
from engine.runtime.assemble import ModelSpec, build_model
guided, keep, performers, seconds = sys.argv[1] == "1", int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
cond = _conditions(seconds)
gen = build_model(ModelSpec(backend="onnxruntime", performers=performers, beat_guidance=None if guided else 0))
gen.keep_rewinds(keep)
print("ready", len(cond), flush=True)
for line in sys.stdin:
    before = gen.guided_tokens
    c = time.thread_time_ns()
    gen.step(cond[int(line)])
    print(json.dumps([(time.thread_time_ns() - c) / 1e6, gen.guided_tokens > before]), flush=True)
"""


def _start(tree: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-c", _WORKER, "1" if args.guided else "0", str(args.keep_rewinds), str(args.performers),
           str(args.seconds)]
    p = subprocess.Popen(cmd, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    for line in p.stdout:
        if line.startswith("ready"):
            return p, int(line.split()[1])
    raise RuntimeError(f"{tree}: the generator did not start (exit {p.wait()})")


def summary(steps: list[tuple[float, bool]]) -> dict[str, float]:
    """p50 / p99 CPU ms over all steps, and over the steered steps and the others when some were steered."""
    cpu = np.array([c for c, _ in steps])
    steered = np.array([s for _, s in steps], dtype=bool)
    out = {"all_p50": float(np.median(cpu)), "all_p99": float(np.percentile(cpu, 99)), "steps": len(cpu)}
    if steered.any() and (~steered).any():
        for name, sel in (("steered", steered), ("other", ~steered)):
            out[f"{name}_p50"] = float(np.median(cpu[sel]))
            out[f"{name}_p99"] = float(np.percentile(cpu[sel], 99))
            out[f"{name}_steps"] = int(sel.sum())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.step_ab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path, help="source tree measured as 'before'")
    ap.add_argument("after", type=Path, help="source tree measured as 'after'")
    ap.add_argument("--guided", action="store_true", help="the card's beat guidance (default: plain sampling)")
    ap.add_argument("--keep-rewinds", type=int, default=0, metavar="N",
                    help="steps of exact rewinds kept (the runtime's lookahead; default 0, its default)")
    ap.add_argument("--performers", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=30.0, help="music per run")
    ap.add_argument("--repeats", type=int, default=1, help="runs over the music, each summarised (default 1)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file to write (default: print only)")
    args = ap.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for t in trees.values():
        if not (t / "engine").is_dir():
            ap.error(f"{t}: not a groovecast source tree (no engine/)")
    load_start = os.getloadavg()
    procs = {k: _start(t, args) for k, t in trees.items()}
    n = min(steps for _, steps in procs.values())
    runs: list[dict[str, list[tuple[float, bool]]]] = []
    order = list(procs)
    try:
        for _ in range(max(1, args.repeats)):
            res: dict[str, list[tuple[float, bool]]] = {k: [] for k in procs}
            for i in range(n):
                for k in order if i % 2 == 0 else order[::-1]:
                    p = procs[k][0]
                    assert p.stdin is not None and p.stdout is not None
                    p.stdin.write(f"{i}\n")
                    p.stdin.flush()
                    c, s = json.loads(p.stdout.readline())
                    res[k].append((float(c), bool(s)))
            runs.append(res)
    finally:
        for p, _ in procs.values():
            if p.stdin is not None:
                p.stdin.close()
            p.wait()
    reps = [{k: summary(v[WARM:]) for k, v in res.items()} for res in runs]
    rows = {k: {key: float(np.median([r[k][key] for r in reps if key in r[k]])) for key in reps[0][k]}
            for k in reps[0]}
    report: dict[str, Any] = {"trees": {k: str(t) for k, t in trees.items()}, "guided": args.guided,
                              "keep_rewinds": args.keep_rewinds, "performers": args.performers,
                              "repeats": len(reps),
                              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                          "processor": _cpu_name()},
                              "load_average_start": load_start, "load_average_after": os.getloadavg(),
                              **rows, "runs": reps,
                              "ratio": {key: rows["after"][key] / rows["before"][key] for key in rows["before"]
                                        if key.endswith(("p50", "p99")) and key in rows["after"]}}
    print(json.dumps(report, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

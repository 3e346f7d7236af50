"""Where the live step's CPU time goes: the same generator with one feature at a time taken away, stepped in turn.

``python -m bench.step_parts [--guided] [--seconds 30] [--out FILE.json]``

Builds the runtime's generator (``build_model`` with the shipped card: staged, onnxruntime GPT step and streaming
decoder, one thread, nothing kept for rewinds as at the runtime's default lookahead 0) and variants of it, and steps
them all in turn over the conditioning of ``bench.guidance_bench``'s synthetic track, one step each, so they see the
same load: kept rewinds (8 steps, a lookahead of 8), staging steering off (the speed limit alone), no staging at all
(the generator the staging wraps), then that one without genre guidance (one GPT row instead of two), without the
repetition guard, and without either. Medians and p99 of the stepping thread's CPU time, and each variant's median
as a share of the default's. A variant changes the dance (except the kept rewinds), so it prices a feature; it is
not a setting to run with.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

WARM = 8


def variants(guided: bool) -> dict[str, tuple[Any, int, bool]]:
    """name -> (ModelSpec, rewinds kept, step the inner generator without the staging)."""
    from engine.models.staging import StagingConfig
    from engine.runtime.assemble import ModelSpec

    base = ModelSpec(backend="onnxruntime", performers=1, beat_guidance=None if guided else 0)
    return {
        "default": (base, 0, False),
        "rewinds kept (8 steps)": (base, 8, False),
        "staging: speed limit only (no steering)": (replace(base, staging=StagingConfig(steer=False)), 0, False),
        "no staging": (base, 0, True),
        "no staging, no genre guidance": (replace(base, genre_guidance=1.0), 0, True),
        "no staging, no repetition guard": (replace(base, max_repeat=0), 0, True),
        "no staging, neither": (replace(base, genre_guidance=1.0, max_repeat=0), 0, True),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.step_parts", description=__doc__)
    ap.add_argument("--guided", action="store_true", help="the card's beat guidance (default: plain sampling)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=None, help="JSON file to write (default: print only)")
    args = ap.parse_args(argv)
    import torch

    from bench.guidance_bench import _conditions
    from engine.runtime.assemble import build_model

    torch.set_num_threads(1)
    cond = _conditions(args.seconds)
    gens: dict[str, Any] = {}
    for name, (spec, keep, inner) in variants(args.guided).items():
        g: Any = build_model(spec)
        g.keep_rewinds(keep)
        gens[name] = g.inner if inner else g
    cpu: dict[str, list[float]] = {k: [] for k in gens}
    for row in cond:
        for name, g in gens.items():
            c = time.thread_time_ns()
            g.step(row)
            cpu[name].append((time.thread_time_ns() - c) / 1e6)
    ref = float(np.median(cpu["default"][WARM:]))
    rows = {k: {"cpu_ms_p50": float(np.median(v[WARM:])), "cpu_ms_p99": float(np.percentile(v[WARM:], 99)),
                "share_of_default": float(np.median(v[WARM:])) / ref} for k, v in cpu.items()}
    report = {"guided": args.guided, "steps": len(cond) - WARM, "load_average_after": os.getloadavg(), "rows": rows}
    for k, r in rows.items():
        print(f"{k:42s} CPU p50 {r['cpu_ms_p50']:.2f} p99 {r['cpu_ms_p99']:.2f} ms ({r['share_of_default']:.2f})")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

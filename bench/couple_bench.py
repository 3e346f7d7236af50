"""Salsa couples against the real ones: partner distances, holds, interpenetration (``engine.train.couple_eval``).

On the held-out salsa takes (12, 13) and their music: the couple model, the same follower without the
run-time pull and floor, an untrained follower and two independent solo dancers, beside the real couples.
Writes ``OUT/couple.{json,md,png}``.

    python -m bench.couple_bench [--model DIR] [--seeds 2] [--seconds S] [--out bench/reports]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from engine.models.dance_model import DEFAULT_MODEL_DIR
from engine.train.couple_eval import evaluate_couples, write_couple_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="couple model folder (default: shipped)")
    ap.add_argument("--data", type=Path, default=None, help="data root or cmu_salsa folder (default: shared data)")
    ap.add_argument("--seeds", type=int, default=2, help="generated couples per take and row (default 2)")
    ap.add_argument("--seconds", type=float, default=None, help="only the first S seconds of each take")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", type=Path, default=Path("bench/reports"), help="report folder (default bench/reports)")
    ap.add_argument("--note", default="", help="a line for the report (machine, load)")
    a = ap.parse_args(argv)
    if a.seeds < 1:
        ap.error("--seeds must be >= 1")
    t0 = time.perf_counter()
    res = evaluate_couples(a.model, a.data, seeds=a.seeds, seconds=a.seconds, threads=a.threads)
    res["wall_seconds"] = time.perf_counter() - t0
    res["model"] = os.path.relpath(a.model)
    write_couple_report(res, a.out, a.note)
    print(json.dumps(res["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Salsa couples against the real ones: partner distances, holds, interpenetration (``engine.train.couple_eval``).

On the held-out salsa takes (12, 13) and their music: the couple model, the same follower without the
run-time pull and floor, an untrained follower and two independent solo dancers, beside the real couples.
Writes ``OUT/couple.{json,md,png}``.

    python -m bench.couple_bench [--model DIR] [--seeds 2] [--first-seed 0] [--rows couple,unstaged,...] [--seconds S]
                                 [--out bench/reports]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from engine.models.dance_model import DEFAULT_MODEL_DIR
from engine.train.couple_eval import ROWS, evaluate_couples, write_couple_report

#: ``--rows`` names of the generated rows (the rows' own names hold commas).
ROW_KEYS = dict(zip(("couple", "unstaged", "no-pull", "untrained", "solos"), ROWS, strict=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="couple model folder (default: shipped)")
    ap.add_argument("--data", type=Path, default=None, help="data root or cmu_salsa folder (default: shared data)")
    ap.add_argument("--seeds", type=int, default=2, help="generated couples per take and row (default 2)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds first-seed .. first-seed + seeds - 1 (default 0: tune on some, check on others)")
    ap.add_argument("--rows", default=",".join(ROW_KEYS),
                    help=f"comma-separated generated rows (default all: {','.join(ROW_KEYS)})")
    ap.add_argument("--seconds", type=float, default=None, help="only the first S seconds of each take")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", type=Path, default=Path("bench/reports"), help="report folder (default bench/reports)")
    ap.add_argument("--note", default="", help="a line for the report (machine, load)")
    a = ap.parse_args(argv)
    if a.seeds < 1:
        ap.error("--seeds must be >= 1")
    if a.first_seed < 0:
        ap.error("--first-seed must be >= 0")
    keys = [r.strip() for r in a.rows.split(",") if r.strip()]
    bad = [r for r in keys if r not in ROW_KEYS]
    if bad or not keys:
        ap.error(f"--rows: unknown {bad or 'none given'}; known: {','.join(ROW_KEYS)}")
    rows = tuple(ROW_KEYS[r] for r in keys)
    t0 = time.perf_counter()
    res = evaluate_couples(a.model, a.data, seeds=a.seeds, seconds=a.seconds, threads=a.threads, rows=rows,
                           first_seed=a.first_seed)
    res["wall_seconds"] = time.perf_counter() - t0
    res["model"] = os.path.relpath(a.model)
    write_couple_report(res, a.out, a.note)
    print(json.dumps(res["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

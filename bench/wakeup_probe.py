"""How late the operating system wakes a sleeping thread, with no engine at all: the floor under playout jitter.

Run ``python3 -m bench.wakeup_probe [--seconds 60] [--fps 30]`` (``--json`` prints the result). One thread sleeps
to a fixed 30 fps grid with the engine's own clock (:class:`engine.clock.SystemClock`, as the playout thread
does) and records how late each wake-up is, beside the machine's load average. Whatever this thread misses,
the playout thread misses too on the same machine at the same time; what the playout misses beyond it is the
engine's own doing (GIL, steps, the event loop). It writes no report: ``bench latency`` quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

from engine.clock import SYSTEM_CLOCK


def probe(seconds: float, fps: int = 30, late_ms: float = 2.0) -> dict[str, Any]:
    """Sleep to ``seconds * fps`` grid slots; lateness of each wake-up in ms, summarised."""
    period = 1_000_000_000 // fps
    start = SYSTEM_CLOCK.monotonic_ns() + period
    lag = np.empty(int(seconds * fps), dtype=np.float64)
    load = [os.getloadavg()[0]]
    for k in range(len(lag)):
        slot = start + k * period
        SYSTEM_CLOCK.sleep_until_ns(slot)
        lag[k] = (SYSTEM_CLOCK.monotonic_ns() - slot) / 1e6
        if k % (10 * fps) == 0:
            load.append(os.getloadavg()[0])
    return {"seconds": seconds, "fps": fps, "wakeups": len(lag), "p50_ms": float(np.percentile(lag, 50)),
            "p99_ms": float(np.percentile(lag, 99)), "max_ms": float(lag.max()),
            f"over_{late_ms:g}_ms": int(np.sum(lag > late_ms)), "load_average_mean": float(np.mean(load)),
            "load_average_max": float(np.max(load)), "nice": os.nice(0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = probe(args.seconds, args.fps)
    if args.json:
        print(json.dumps(r))
    else:
        print(", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command-line arguments of the decode benchmark (standard library only, so ``groovecast --help`` stays fast)."""

from __future__ import annotations

import argparse
from pathlib import Path

REPORT_DIR = Path(__file__).resolve().parent / "reports"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    p.add_argument("--models", default="default,bailando", help="presets to measure (default: default,bailando)")
    p.add_argument("--backends", default="torch,onnxruntime", help="backends (default: torch,onnxruntime)")
    p.add_argument("--batches", default="1,16,256", help="batch sizes (default: 1,16,256)")
    p.add_argument("--threads", type=int, default=1, help="torch and onnxruntime intra-op threads (default 1)")
    p.add_argument("--quick", action="store_true", help="5 iterations per case (smoke test, not a measurement)")
    p.add_argument("--out", type=Path, default=REPORT_DIR,
                   help=f"write decode.md/.json/.png here (default {REPORT_DIR}); '-' to write nothing")

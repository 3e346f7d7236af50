"""Command-line arguments of the runtime latency benchmark (standard library only: ``--help`` stays fast)."""

from __future__ import annotations

import argparse
from pathlib import Path

REPORT_DIR = Path(__file__).resolve().parent / "reports"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--backend", default="onnxruntime", help="GPT step backend (default onnxruntime)")
    p.add_argument("--pacing-seconds", type=float, default=600.0,
                   help="each steady-playout run: 30/60 fps x guided/plain (default 600 = 10 min)")
    p.add_argument("--soak-seconds", type=float, default=600.0, help="input-stall run (default 600 = 10 min)")
    p.add_argument("--blocksize", type=int, default=256, metavar="N",
                   help="audio block of the paced source, samples at 22.05 kHz (default 256 = 11.6 ms, as play/live)")
    p.add_argument("--rows", default="30g,60g,30p,60p",
                   help="steady-playout rows: fps + g (beat-guided) or p (plain), comma-separated (default all four)")
    p.add_argument("--rt-priority", type=int, default=0, metavar="N",
                   help="playout thread at real-time priority N (SCHED_FIFO) in the steady-playout rows (default 0)")
    p.add_argument("--pacing-only", action="store_true",
                   help="only the steady-playout rows (no reaction, beat sync, stalls or capacity)")
    p.add_argument("--beat-guidance", type=int, default=None, metavar="N",
                   help="beat-guidance candidates (0: plain sampling; default: the model card's)")
    p.add_argument("--capacity-sizes", default="1,2,4,8,16,32,64,128,256", help="GPT performer counts to try")
    p.add_argument("--retrieval-sizes", default="250,500,1000,2000,4000", help="retrieval performer counts to try")
    p.add_argument("--out", type=Path, default=REPORT_DIR, help="report directory ('-' writes nothing)")

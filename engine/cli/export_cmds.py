"""``groovecast export onnx|tensorrt`` and ``groovecast bench decode``: model export and the decode benchmark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.cli import CliError

#: Where the shipped default model lives (written by the training issue).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "data" / "models" / "default"


def register(sub: Any) -> None:
    ex = sub.add_parser("export", help="export the GPT step to ONNX or build a TensorRT engine",
                        description="Export the single-token GPT step (ring KV cache as explicit I/O).")
    exs = ex.add_subparsers(dest="export_command", metavar="FORMAT")
    ex.set_defaults(handler=lambda _args: _usage(ex))

    on = exs.add_parser("onnx", help="export the step to ONNX and check it (checker, ops, onnxruntime parity)")
    on.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                    help=f"model directory with gpt.safetensors + gpt.json (default {DEFAULT_MODEL_DIR})")
    on.add_argument("--out", type=Path, required=True, help="output directory (step.onnx + export.json)")
    on.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17; default 17)")
    on.add_argument("--json", action="store_true", help="print the summary as JSON")
    on.set_defaults(handler=_export_onnx)

    tr = exs.add_parser("tensorrt", help="build an FP16 TensorRT engine from an exported step (needs TensorRT 10+)")
    tr.add_argument("--onnx", type=Path, required=True, help="step.onnx written by `groovecast export onnx`")
    tr.add_argument("--out", type=Path, required=True, help="engine cache directory")
    tr.add_argument("--capacity", type=int, default=256, help="largest batch (performers) the engine serves")
    tr.add_argument("--fp32", action="store_true", help="build without FP16")
    tr.set_defaults(handler=_export_tensorrt)

    bench = _bench_group(sub)
    bd = bench.add_parser("decode", help="decode step latency: KV-cached vs full-window recompute, per backend",
                          description="Decode step p50/p99 per backend, batch size and model size; writes "
                                      "bench/reports/decode.{md,json,png}.")
    from bench.decode_args import add_arguments

    add_arguments(bd)
    bd.set_defaults(handler=_bench_decode)


def _bench_group(sub: Any) -> Any:
    """The ``bench`` sub-command group, shared with other modules that add benchmarks to it."""
    existing = sub.choices.get("bench")
    if existing is not None:
        for action in existing._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
    bp = sub.add_parser("bench", help="benchmarks that write a report under bench/reports/")
    bp.set_defaults(handler=lambda _args: _usage(bp))
    return bp.add_subparsers(dest="bench_command", metavar="BENCH")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _step(i: int, n: int, text: str) -> None:
    print(f"[{i}/{n}] {text}", flush=True)


def _export_onnx(args: argparse.Namespace) -> int:
    import numpy as np
    import onnxruntime as ort
    import torch

    from engine.models.gpt import load_gpt
    from export.onnx_export import MIN_OPSET, StepForExport, example_step_inputs, export_onnx

    if args.opset < MIN_OPSET:
        raise CliError(f"--opset must be >= {MIN_OPSET}, got {args.opset}")
    _step(1, 4, f"loading model from {args.model}")
    try:
        model = load_gpt(args.model)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    cfg = model.cfg
    _step(2, 4, f"exporting the step ({cfg.n_layer} layers, {cfg.n_embd} wide, context {cfg.context}, "
                f"{cfg.n_keyframe_slots} keyframe slots) to ONNX opset {args.opset}")
    try:
        exp = export_onnx(model, args.out / "step.onnx", opset=args.opset)
    except (ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from exc
    _step(3, 4, "checking onnxruntime against torch on fresh random inputs (batch 1, 3, 8)")
    sess = ort.InferenceSession(str(exp.path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    seed = int(np.random.default_rng().integers(1 << 31))
    worst = 0.0
    for b in (1, 3, 8):
        x = example_step_inputs(model, b, torch.Generator().manual_seed(seed + b))
        got = sess.run(None, {n: t.numpy() for n, t in zip(names, x, strict=True)})
        with torch.no_grad():
            want = StepForExport(model)(*x)
        worst = max(worst, *(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True)))
    if worst > 1e-4:
        raise CliError(f"onnxruntime differs from torch by {worst:.2e} (> 1e-4); the export is not trustworthy")
    exp.checks.append(f"onnxruntime parity with torch: max |diff| {worst:.1e} <= 1e-4 (batch 1, 3, 8)")
    _step(4, 4, f"writing {args.out / 'export.json'}")
    summary = {
        "onnx": str(exp.path), "bytes": exp.size_bytes, "opset": exp.opset, "model_sha256": exp.model_sha256,
        "config": cfg.to_dict(), "cache_bytes_per_performer": cfg.cache_bytes_per_performer(4),
        "inputs": exp.inputs, "outputs": exp.outputs, "ops": exp.op_counts, "checks": exp.checks,
    }
    (args.out / "export.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"\n{exp.path}: {exp.size_bytes / 2**20:.2f} MiB, opset {exp.opset}, model {exp.model_sha256[:12]}")
    print("inputs:")
    for name, dims in exp.inputs.items():
        print(f"  {name:14s} {dims}")
    print("outputs:")
    for name, dims in exp.outputs.items():
        print(f"  {name:14s} {dims}")
    print("checks passed:")
    for c in exp.checks:
        print(f"  - {c}")
    return 0


def _export_tensorrt(args: argparse.Namespace) -> int:
    from export.base import BackendUnavailable
    from export.onnx_export import read_metadata
    from export.trt_backend import build_engine

    if not args.onnx.is_file():
        raise CliError(f"ONNX file {args.onnx} does not exist (make one with: groovecast export onnx)")
    if "groovecast.model_sha256" not in read_metadata(args.onnx):
        raise CliError(f"{args.onnx} is not a groovecast step export (no groovecast metadata)")
    if args.capacity < 1:
        raise CliError(f"--capacity must be >= 1, got {args.capacity}")
    _step(1, 2, f"building a {'FP32' if args.fp32 else 'FP16'} TensorRT engine for batch 1..{args.capacity} "
                "(minutes on first build)")
    try:
        built = build_engine(args.onnx, args.out, capacity=args.capacity, fp16=not args.fp32)
    except BackendUnavailable as exc:
        raise CliError(f"TensorRT backend unavailable: {exc}") from exc
    _step(2, 2, "done")
    print(f"\n{built.path}: {built.path.stat().st_size / 2**20:.2f} MiB, "
          f"{'reused from cache' if built.cached else f'built in {built.seconds:.1f} s'}")
    print(f"profiles (min, opt, max batch): {built.profiles}; fp16: {built.fp16}; key {built.key}")
    return 0


def _bench_decode(args: argparse.Namespace) -> int:
    from bench.decode_bench import execute

    try:
        return execute(args)
    except ValueError as exc:
        raise CliError(str(exc)) from exc

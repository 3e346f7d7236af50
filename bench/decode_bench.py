"""Decode-step benchmark: KV-cached step vs full-window recompute, per backend, batch size and model size."""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.decode_args import add_arguments
from engine.clock import SYSTEM_CLOCK, Clock
from engine.models.gpt import GPT_PRESETS, CrossCondGPT, GPTConfig

#: One token covers 4 frames at 30 fps: each performer needs one step per 133 ms.
TOKEN_MS = 4 * 1000.0 / 30.0

GPU_NOTE = (
    "No GPU figure exists yet: the machine that ran this bench has no CUDA device (and no TensorRT). "
    "The CUDA-graph torch path and the TensorRT backend are written and unit-tested where runnable; "
    "run `groovecast bench decode` on a GPU machine to add their rows."
)


@dataclass
class Row:
    """One measured case (the schema of ``rows`` in the JSON report)."""

    backend: str
    model: str
    batch: int
    cached: bool
    context: int
    p50_ms: float
    p99_ms: float
    device: str
    iters: int
    tokens_per_s: float


@dataclass(frozen=True)
class Plan:
    """Iteration counts: fewer for the big cases so the run stays sane on 2 cores."""

    warmup: int
    iters: int


def plan_for(cfg: GPTConfig, batch: int, cached: bool, quick: bool) -> Plan | None:
    """Warm-up and timed iterations for a case, or None to skip it (stated in the report)."""
    if quick:
        return Plan(1, 5)
    # Work per timed step, in token-layer-widths: a rough cost model to keep each case to a few seconds.
    tokens = batch * (1 if cached else cfg.context)
    work = tokens * cfg.n_layer * cfg.n_embd**2 / 1e9  # ~ GFLOP / 24
    if not cached and work > 100:
        return None  # ~ minutes per step on 2 cores; nothing live would ever do this
    iters = int(np.clip(3.0 / max(work, 1e-4), 5, 300))
    if work > 1:
        iters = min(iters, 3)
    return Plan(max(1, min(10, iters // 10)), iters)


def _percentiles(times_ms: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(times_ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _time_interleaved(
    fns: dict[bool, Callable[[], Any]], plans: dict[bool, Plan], clock: Clock
) -> dict[bool, list[float]]:
    """Time the cached and the recompute case in alternating chunks (warm-up first).

    Load from other processes comes and goes; interleaving makes it hit both cases alike, so their ratio
    stays meaningful on a shared machine.
    """
    for c, fn in fns.items():
        for _ in range(plans[c].warmup):
            fn()
    left = {c: p.iters for c, p in plans.items()}
    rounds = min(left.values()) if left else 0
    out: dict[bool, list[float]] = {c: [] for c in fns}
    while any(left.values()):
        for c, fn in fns.items():
            chunk = max(1, -(-plans[c].iters // max(rounds, 1)))  # ceil(iters / rounds)
            for _ in range(min(chunk, left[c])):
                t0 = clock.monotonic_ns()
                fn()
                out[c].append((clock.monotonic_ns() - t0) / 1e6)
            left[c] -= min(chunk, left[c])
    return out


def _recompute_case(
    backend_name: str, model: CrossCondGPT, window_onnx: Path | None, cfg: GPTConfig, batch: int, threads: int,
    rng: np.random.Generator,
) -> Callable[[], Any]:
    """The full-window recompute without a cache over ``context`` tokens; one call = one token's logits."""
    x = _window_inputs(cfg, batch, rng)
    if backend_name == "torch":
        xt = {k: torch.from_numpy(v) for k, v in x.items()}

        def run_torch() -> Any:
            with torch.inference_mode():
                return model(**xt)[0][:, -1]

        return run_torch
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(window_onnx), opts, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, x)


def _cached_case(backend: Any, cfg: GPTConfig, batch: int, rng: np.random.Generator) -> Callable[[], Any]:
    """All ``batch`` performers mid-stream (ring full, positions past the wrap); one call = one step."""
    states = [backend.new_state() for _ in range(batch)]
    for i, st in enumerate(states):
        st.pos = 3 * cfg.context + i
        st.feed(int(rng.integers(cfg.vocab_size)), int(rng.integers(cfg.vocab_size)))
    _fill_random(backend, rng)
    cond = rng.standard_normal((batch, cfg.cond_dim)).astype(np.float32)
    genre = rng.integers(0, cfg.n_genres, batch)
    text = rng.standard_normal((batch, cfg.text_dim)).astype(np.float32)
    return lambda: backend.step(states, cond, genre, text)


def _fill_random(backend: Any, rng: np.random.Generator) -> None:
    """Random cache contents (zeros could hit faster paths and flatter the numbers)."""
    if isinstance(backend.k, np.ndarray):
        for buf in (backend.k, backend.v):
            buf[...] = rng.standard_normal(buf.shape, dtype=np.float32)
    else:
        g = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
        backend.k.normal_(generator=g)
        backend.v.normal_(generator=g)


def _window_inputs(cfg: GPTConfig, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = cfg.context
    return {
        "up_in": rng.integers(0, cfg.vocab_size, (batch, t)),
        "down_in": rng.integers(0, cfg.vocab_size, (batch, t)),
        "cond": rng.standard_normal((batch, t, cfg.cond_dim)).astype(np.float32),
        "genre": rng.integers(0, cfg.n_genres, batch),
        "text": rng.standard_normal((batch, cfg.text_dim)).astype(np.float32),
    }


def run(
    models: Sequence[str] = ("default", "bailando"),
    backends: Sequence[str] = ("torch", "onnxruntime"),
    batches: Sequence[int] = (1, 16, 256),
    quick: bool = False,
    work_dir: Path | None = None,
    threads: int = 1,
    clock: Clock = SYSTEM_CLOCK,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure every case; returns the report object (``rows``, ``memory``, ``ratios``, ``skipped``, ...)."""
    import onnxruntime as ort

    from export.onnx_export import export_onnx, export_window_onnx
    from export.ort_backend import OnnxRuntimeBackend
    from export.torch_backend import TorchBackend

    load_start = _loadavg()
    rows: list[Row] = []
    skipped: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    tmp = tempfile.TemporaryDirectory(prefix="groovecast-decode-bench-")
    wd = work_dir or Path(tmp.name)
    # One thread by default: live, the model shares 2 cores with audio and analysis, and spinning OpenMP
    # workers on a busy machine make every figure worse and noisier.
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    for name in models:
        cfg = GPT_PRESETS[name]
        torch.manual_seed(0)
        model = CrossCondGPT(GPTConfig(**{**cfg.to_dict(), "dropout": 0.0})).eval()
        n_params = sum(p.numel() for p in model.parameters())
        memory.append({"model": name, "params": n_params, "context": cfg.context,
                       "cache_slots": cfg.cache_slots, "cache_bytes_per_performer": cfg.cache_bytes_per_performer(4)})
        log(f"== {name}: {cfg.n_layer} layers, {cfg.n_embd} wide, context {cfg.context}, "
            f"{n_params / 1e6:.1f} M params, cache {cfg.cache_bytes_per_performer(4) / 2**20:.2f} MiB per performer")
        step_onnx = window_onnx = None
        if "onnxruntime" in backends:
            log(f"   exporting {name} to ONNX (step + full window)")
            step_onnx = export_onnx(model, wd / name / "step.onnx").path
            window_onnx = export_window_onnx(model, wd / name / "window.onnx")
        for backend_name in backends:
            for batch in batches:
                plans = {c: plan_for(cfg, batch, c, quick) for c in (True, False)}
                fns: dict[bool, Callable[[], Any]] = {}
                devices: dict[bool, str] = {}
                be: Any = None
                for cached, plan in plans.items():
                    if plan is None:
                        reason = "full-window recompute at this size takes minutes per step on 2 cores"
                        skipped.append({"backend": backend_name, "model": name, "batch": batch, "cached": cached,
                                        "reason": reason})
                        log(f"   skip {backend_name:11s} b={batch:<4d} recompute: {reason}")
                    elif cached:
                        if backend_name == "torch":
                            be = TorchBackend(model, batch)
                        else:
                            be = OnnxRuntimeBackend(model, batch, step_onnx or "", threads=threads)
                        fns[True] = _cached_case(be, cfg, batch, rng)
                        devices[True] = be.device
                    else:
                        fns[False] = _recompute_case(backend_name, model, window_onnx, cfg, batch, threads, rng)
                        devices[False] = "cpu"
                active = {c: p for c, p in plans.items() if p is not None}
                times = _time_interleaved({c: fns[c] for c in active}, active, clock)
                for cached, plan in active.items():
                    p50, p99 = _percentiles(times[cached])
                    rows.append(Row(backend_name, name, batch, cached, cfg.context, round(p50, 4), round(p99, 4),
                                    devices[cached], plan.iters, round(batch / (p50 / 1e3), 1)))
                    log(f"   {backend_name:11s} b={batch:<4d} {'cached   ' if cached else 'recompute'} "
                        f"p50 {p50:9.3f} ms  p99 {p99:9.3f} ms  ({plan.iters} iters)")
                del fns, be  # free the cache pool before the next case
                gc.collect()
    tmp.cleanup()
    torch.set_num_threads(saved_threads)
    ratios = []
    for r in rows:
        if not r.cached:
            continue
        key = (r.backend, r.model, r.batch)
        base = next((x for x in rows if not x.cached and (x.backend, x.model, x.batch) == key), None)
        if base is not None:
            ratios.append({"backend": r.backend, "model": r.model, "batch": r.batch,
                           "speedup_p50": round(base.p50_ms / r.p50_ms, 1)})
    return {
        "bench": "decode",
        "rows": [asdict(r) for r in rows],
        "memory": memory,
        "ratios": ratios,
        "skipped": skipped,
        "gpu": None,
        "gpu_note": GPU_NOTE if not torch.cuda.is_available() else "",
        "host": {"cpu": _cpu_name(), "threads": threads, "loadavg_1min": [load_start, _loadavg()],
                 "python": platform.python_version(),
                 "torch": torch.__version__, "onnxruntime": ort.__version__},
        "quick": quick,
    }


def _loadavg() -> float | None:
    """1-minute load average (other processes competing for the cores make every figure slower)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write decode.json, decode.md and decode.png into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "decode.json", out_dir / "decode.md", out_dir / "decode.png"]
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(markdown(report))
    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(11, 4.8))
    labels = sorted({(r["model"], r["backend"], r["batch"]) for r in rows},
                    key=lambda k: (k[0] != "default", k[1], k[2]))
    xs = np.arange(len(labels))
    for off, cached, color in ((-0.2, True, "tab:green"), (0.2, False, "tab:red")):
        vals = [next((r["p50_ms"] for r in rows if (r["model"], r["backend"], r["batch"]) == lab
                      and r["cached"] == cached), np.nan) for lab in labels]
        ax.bar(xs + off, vals, 0.4, color=color, label="KV-cached step" if cached else "full-window recompute")
    ax.set_yscale("log")
    ax.set_ylabel("p50 per step (ms, log)")
    ax.set_xticks(xs, [f"{m}\n{b}\nB={n}" for m, b, n in labels], fontsize=7)
    ax.set_title(f"Decode step on {report['host']['cpu']} ({report['host']['threads']} threads); missing red = skipped")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths


def markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    h = report["host"]
    lines = [
        "# Decode step: KV-cached vs full-window recompute",
        "",
        f"Host: {h['cpu']}, {h['threads']} threads; torch {h['torch']}, onnxruntime {h['onnxruntime']}. "
        "Produced by `groovecast bench decode` (bench/decode_bench.py). Randomly initialised weights of each preset "
        "(latency does not depend on the weight values); cached rows are performers mid-stream with a full ring. "
        f"1-minute load average at start/end: {h.get('loadavg_1min', 'not recorded')} on a 2-core machine "
        "shared with other jobs, so absolute figures are inflated and noisy; each ratio compares two cases of "
        "the same run.",
        "",
        "| backend | model | batch | cached | context | p50 ms | p99 ms | per-performer ms | device | iters |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['backend']} | {r['model']} | {r['batch']} | {'yes' if r['cached'] else 'no (recompute)'} | "
            f"{r['context']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['p50_ms'] / r['batch']:.4f} | "
            f"{r['device']} | {r['iters']} |"
        )
    lines += ["", "## Cached speed-up over recompute (p50 ratio, same run)", "",
              "Goal on CPU: the cached step at least 10x faster than recompute at full context.", "",
              "| backend | model | batch | speed-up | goal >= 10x |", "|---|---|---:|---:|---|"]
    for q in report["ratios"]:
        met = "met" if q["speedup_p50"] >= 10 else "**not met**"
        lines.append(f"| {q['backend']} | {q['model']} | {q['batch']} | {q['speedup_p50']}x | {met} |")
    missed = [q for q in report["ratios"] if q["speedup_p50"] < 10]
    if missed:
        cases = ", ".join(f"{q['backend']} {q['model']} batch {q['batch']}" for q in missed)
        lines += ["", f"Goal missed for: {cases}. A single-token step of a small model is not bound by arithmetic "
                  "but by reading every fp32 weight once per token (the default model: 15 MB) and by per-operator "
                  "overhead (about 180 operators; TorchScript dispatch costs more per operator than onnxruntime), "
                  "while the recompute of 60 tokens is arithmetic-bound. Batching amortises both, which is why "
                  "the ratio grows with the batch and with the model size. Other jobs competing for memory "
                  "bandwidth on this machine hit the memory-bound cached step harder than the recompute."]
    lines += ["", f"## Performers in real time (one step per {TOKEN_MS:.0f} ms token, p99 within it)", "",
              "| backend | model | largest measured batch with p99 <= one token |", "|---|---|---:|"]
    for backend, model in dict.fromkeys((r["backend"], r["model"]) for r in report["rows"]):
        ok = [r["batch"] for r in report["rows"] if r["cached"] and (r["backend"], r["model"]) == (backend, model)
              and r["p99_ms"] <= TOKEN_MS]
        lines.append(f"| {backend} | {model} | {max(ok) if ok else 'none'} |")
    if report["skipped"]:
        lines += ["", "Skipped cases:", ""]
        lines += [f"- {s['backend']} {s['model']} batch {s['batch']} "
                  f"{'cached' if s['cached'] else 'recompute'}: {s['reason']}" for s in report["skipped"]]
    lines += ["", "## Memory per performer (fp32 keys + values)", "",
              "| model | params | context | slots (keyframes + ring) | cache bytes | MiB |",
              "|---|---:|---:|---:|---:|---:|"]
    for m in report["memory"]:
        lines.append(f"| {m['model']} | {m['params']:,} | {m['context']} | {m['cache_slots']} | "
                     f"{m['cache_bytes_per_performer']:,} | {m['cache_bytes_per_performer'] / 2**20:.2f} |")
    lines += ["", "## GPU", "", report["gpu_note"] or f"GPU: {report['gpu']}", "", "![decode](decode.png)", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="decode_bench", description=__doc__)
    add_arguments(p)
    return execute(p.parse_args(argv))


def execute(args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in GPT_PRESETS]
    if unknown:
        raise ValueError(f"unknown model presets {unknown}; known: {sorted(GPT_PRESETS)}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in backends if b not in ("torch", "onnxruntime")]
    if bad:
        raise ValueError(f"the CPU decode bench measures torch and onnxruntime, not {bad}")
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError as exc:
        raise ValueError(f"--batches must be comma-separated integers, got {args.batches!r}") from exc
    if any(b < 1 for b in batches):
        raise ValueError(f"batch sizes must be >= 1, got {batches}")
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    report = run(models, backends, batches, quick=args.quick, threads=args.threads, log=log)
    if str(args.out) != "-":
        for path in write_report(report, Path(args.out)):
            log(f"wrote {path}")
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Backend selection for ``--backend torch|onnxruntime|tensorrt|auto``: build, export on demand, probe speed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from engine.clock import SYSTEM_CLOCK, Clock
from engine.models.gpt import CrossCondGPT, load_gpt
from export.base import BackendUnavailable, DecodeBackend

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "tensorrt")
CHOICES = (*BACKENDS, "auto")


def default_work_dir() -> Path:
    """Where exported ONNX files and TensorRT engines are cached (``$XDG_CACHE_HOME/groovecast/export``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "groovecast" / "export"


def availability() -> dict[str, str | None]:
    """Each backend -> None if it can run here, else the reason it cannot."""
    out: dict[str, str | None] = {"torch": None}
    try:
        import onnxruntime  # noqa: F401
        out["onnxruntime"] = None
    except ImportError as exc:  # pragma: no cover - core dependency
        out["onnxruntime"] = f"onnxruntime not importable: {exc}"
    try:
        from export.trt_backend import import_tensorrt

        import_tensorrt()
        out["tensorrt"] = None
    except BackendUnavailable as exc:
        out["tensorrt"] = str(exc)
    return out


def ensure_onnx(model: CrossCondGPT, work_dir: Path) -> Path:
    """The exported step of ``model`` under ``work_dir/<model hash>/step.onnx``, exported if missing."""
    from export.onnx_export import export_onnx, model_hash

    path = work_dir / model_hash(model)[:16] / "step.onnx"
    if not path.is_file():
        log.info("exporting the GPT step to %s", path)
        tmp = path.with_name("step.tmp.onnx")
        export_onnx(model, tmp)
        tmp.replace(path)
    return path


def create_backend(
    name: str,
    model: CrossCondGPT | str | Path,
    capacity: int,
    work_dir: str | Path | None = None,
    device: str | None = None,
    threads: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> DecodeBackend:
    """A ready backend by name; ``auto`` builds the available ones and keeps the fastest (a short probe).

    Args:
        name: one of :data:`CHOICES`.
        model: a loaded model or a model directory (``gpt.safetensors`` + ``gpt.json``).
        capacity: most performers served at once.
        work_dir: cache for exported files (default :func:`default_work_dir`).
        device: torch device for the torch backend (default: cuda if available, else cpu).
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).

    Raises:
        ValueError: unknown name (the message lists the choices).
        BackendUnavailable: the named backend cannot run here (the message says why).
    """
    if name not in CHOICES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(CHOICES)}")
    gpt = model if isinstance(model, CrossCondGPT) else load_gpt(model)
    wd = Path(work_dir) if work_dir is not None else default_work_dir()
    if name == "torch":
        from export.torch_backend import TorchBackend

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return TorchBackend(gpt, capacity, device=dev)
    if name == "onnxruntime":
        from export.ort_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(gpt, capacity, ensure_onnx(gpt, wd), threads=threads)
    if name == "tensorrt":
        from export.trt_backend import TensorRTBackend, import_tensorrt

        import_tensorrt()  # fail fast, with the reason, before exporting anything
        return TensorRTBackend(gpt, capacity, ensure_onnx(gpt, wd), wd / "tensorrt")
    return _fastest(gpt, capacity, wd, device, threads, clock)


def probe_ms(backend: DecodeBackend, batch: int, steps: int = 12, clock: Clock = SYSTEM_CLOCK) -> float:
    """Median step time (ms) over ``steps`` steps of ``batch`` fresh performers, after two warm-up steps."""
    cfg = backend.config
    states = [backend.new_state() for _ in range(batch)]
    rng = np.random.default_rng(0)
    cond = rng.standard_normal((batch, cfg.cond_dim)).astype(np.float32)
    genre = np.zeros(batch, np.int64)
    times = []
    for i in range(steps + 2):
        t0 = clock.monotonic_ns()
        backend.step(states, cond, genre)
        if i >= 2:
            times.append((clock.monotonic_ns() - t0) / 1e6)
    for st in reversed(states):
        backend.release(st)
    return float(np.median(times))


def _fastest(
    gpt: CrossCondGPT, capacity: int, wd: Path, device: str | None, threads: int | None, clock: Clock
) -> DecodeBackend:
    avail = availability()
    best: tuple[float, DecodeBackend] | None = None
    for name in BACKENDS:
        if avail[name] is not None:
            log.info("backend %s unavailable: %s", name, avail[name])
            continue
        try:
            be = create_backend(name, gpt, capacity, wd, device, threads, clock)
        except BackendUnavailable as exc:
            log.info("backend %s unavailable: %s", name, exc)
            continue
        ms = probe_ms(be, min(capacity, 4), clock=clock)
        log.info("backend %s: %.3f ms per step (probe)", name, ms)
        if best is None or ms < best[0]:
            best = (ms, be)
    assert best is not None  # torch is always available
    log.info("auto backend: %s", best[1].name)
    return best[1]

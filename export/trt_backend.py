"""TensorRT backend (GPU, optional): builds an FP16 engine from the exported step and runs it on device buffers.

TensorRT is imported lazily; nothing here runs unless ``tensorrt`` (10+) and a CUDA build of torch are
present. Device memory is held in torch CUDA tensors, so no further CUDA binding is needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.clock import SYSTEM_CLOCK, Clock
from engine.models.gpt import CrossCondGPT
from export.base import ArrayLike, BackendUnavailable, DecodeBackend
from export.onnx_export import STEP_INPUTS, STEP_OUTPUTS, cache_input_names, model_hash, read_metadata

log = logging.getLogger(__name__)

#: Default batch-size profiles: each (min, opt, max) gets its own optimisation profile and context.
DEFAULT_PROFILES: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (2, 16, 32), (33, 256, 1024))


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module (10 or newer), or :class:`BackendUnavailable` saying why not."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(
            f"tensorrt is not importable ({exc}); install the optional extra groovecast[tensorrt] on a machine "
            "with an NVIDIA GPU and driver"
        ) from exc
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise BackendUnavailable(f"TensorRT {trt.__version__} found; the backend needs TensorRT 10 or newer")
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs a CUDA device, and torch.cuda.is_available() is False")
    return trt


def clip_profiles(profiles: tuple[tuple[int, int, int], ...], capacity: int) -> list[tuple[int, int, int]]:
    """Keep the profiles that serve batches up to ``capacity``, the last one capped at it."""
    out: list[tuple[int, int, int]] = []
    for lo, opt, hi in profiles:
        if lo > capacity:
            break
        hi = min(hi, capacity)
        out.append((lo, min(opt, hi), hi))
    if not out:
        raise ValueError(f"no batch profile covers capacity {capacity}: {profiles}")
    return out


def engine_cache_key(onnx_bytes: bytes, trt_version: str, device_name: str, profiles: list[tuple[int, int, int]],
                     fp16: bool) -> str:
    """Engines are valid only for one ONNX file, TensorRT version, GPU model, profile set and precision."""
    h = hashlib.sha256(onnx_bytes)
    h.update(json.dumps([trt_version, device_name, profiles, fp16]).encode())
    return h.hexdigest()[:32]


@dataclass
class TrtBuild:
    """A built (or cached) engine file and what it was built for."""

    path: Path
    key: str
    cached: bool
    profiles: list[tuple[int, int, int]]
    fp16: bool
    seconds: float


def build_engine(
    onnx_path: str | Path,
    cache_dir: str | Path,
    capacity: int = 256,
    profiles: tuple[tuple[int, int, int], ...] = DEFAULT_PROFILES,
    fp16: bool = True,
    workspace_bytes: int = 2 << 30,
    clock: Clock = SYSTEM_CLOCK,
) -> TrtBuild:
    """Build a serialized engine from the exported step, or reuse the cached one with the same key.

    The key covers the ONNX bytes (hence the model hash in its metadata), the TensorRT version, the GPU,
    the batch profiles and the precision. LayerNorm and Softmax stay in FP32 (overflow risk in FP16).
    """
    trt = import_tensorrt()
    onnx_path = Path(onnx_path)
    data = onnx_path.read_bytes()
    prof = clip_profiles(profiles, capacity)
    dev = torch.cuda.get_device_name()
    key = engine_cache_key(data, str(trt.__version__), dev, prof, fp16)
    out = Path(cache_dir) / f"step-{key}.engine"
    if out.is_file():
        return TrtBuild(out, key, True, prof, fp16, 0.0)
    t0 = clock.monotonic_ns()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type in (trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX):
                layer.precision = trt.float32
    for lo, opt, hi in prof:
        p = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            t = network.get_input(i)
            rest = tuple(t.shape)[1:]
            p.set_shape(t.name, (lo, *rest), (opt, *rest), (hi, *rest))
        config.add_optimization_profile(p)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT engine build failed for {onnx_path} (see the TensorRT log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(out)
    (out.with_suffix(".json")).write_text(json.dumps({
        "onnx": str(onnx_path), "tensorrt": str(trt.__version__), "device": dev, "profiles": prof, "fp16": fp16,
        "model_sha256": read_metadata(onnx_path).get("groovecast.model_sha256"),
    }, indent=2))
    return TrtBuild(out, key, False, prof, fp16, (clock.monotonic_ns() - t0) / 1e9)


def _torch_dtype(trt: Any, dt: Any) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int64: torch.int64,
             trt.int32: torch.int32, trt.bool: torch.bool}
    if dt not in table:
        raise RuntimeError(f"unsupported TensorRT I/O dtype {dt}")
    return table[dt]


class TensorRTBackend(DecodeBackend):
    """Runs a TensorRT engine of the step; cache pool and I/O live in device memory (torch CUDA tensors).

    One execution context per optimisation profile; addresses of rows ``[0, n)`` do not depend on ``n``,
    so with ``cuda_graph=True`` each batch size is captured once and replayed.
    """

    name = "tensorrt"

    def __init__(
        self,
        model: CrossCondGPT,
        capacity: int,
        onnx_path: str | Path,
        cache_dir: str | Path,
        profiles: tuple[tuple[int, int, int], ...] = DEFAULT_PROFILES,
        fp16: bool = True,
        cuda_graph: bool = True,
    ) -> None:
        trt = import_tensorrt()
        super().__init__(model, capacity)
        meta = read_metadata(onnx_path)
        if meta.get("groovecast.model_sha256") != model_hash(model):
            raise ValueError(f"{onnx_path} was not exported from the loaded model; re-export it")
        self.build = build_engine(onnx_path, cache_dir, capacity, profiles, fp16)
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(self.build.path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"could not deserialize TensorRT engine {self.build.path}")
        self.stream = torch.cuda.Stream()
        self.contexts = []
        for i in range(len(self.build.profiles)):
            ctx = self.engine.create_execution_context()
            ctx.set_optimization_profile_async(i, self.stream.cuda_stream)
            self.contexts.append(ctx)
        cfg, dev = self.config, torch.device("cuda")
        shape = (capacity, cfg.n_head, cfg.cache_slots, cfg.head_dim)
        self.k = [torch.zeros(shape, device=dev) for _ in range(cfg.n_layer)]  # L x [N, H, S, D]
        self.v = [torch.zeros(shape, device=dev) for _ in range(cfg.n_layer)]
        # Static I/O buffers sized for the whole pool; batch n uses their first n rows.
        self._io: dict[str, Tensor] = {}
        for name in (*STEP_INPUTS, *STEP_OUTPUTS):
            dims = tuple(self.engine.get_tensor_shape(name))
            dt = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            n = int(np.prod([capacity if d < 0 else d for d in dims]))
            self._io[name] = torch.zeros(n, dtype=dt, device=dev)
        self._dims = {name: tuple(self.engine.get_tensor_shape(name)) for name in (*STEP_INPUTS, *STEP_OUTPUTS)}
        self.cuda_graph = cuda_graph
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}

    @property
    def device(self) -> str:
        return torch.cuda.get_device_name()

    def _shape(self, name: str, b: int) -> tuple[int, ...]:
        return tuple(b if d < 0 else d for d in self._dims[name])

    def _view(self, name: str, b: int) -> Tensor:
        shape = self._shape(name, b)
        return self._io[name][: int(np.prod(shape))].view(shape)

    def _context(self, b: int) -> Any:
        for (lo, _, hi), ctx in zip(self.build.profiles, self.contexts, strict=True):
            if lo <= b <= hi:
                return ctx
        raise ValueError(f"batch {b} is outside the engine's profiles {self.build.profiles}")

    def _bind(self, ctx: Any, b: int, caches: list[Tensor]) -> None:
        for name in STEP_INPUTS:
            ctx.set_input_shape(name, self._shape(name, b))
            ctx.set_tensor_address(name, self._io[name].data_ptr())
        for name, buf in zip(cache_input_names(self.config.n_layer), caches, strict=True):
            ctx.set_input_shape(name, tuple(buf.shape))
            ctx.set_tensor_address(name, buf.data_ptr())
        for name in STEP_OUTPUTS:
            ctx.set_tensor_address(name, self._io[name].data_ptr())

    def _run(
        self,
        rows: np.ndarray,
        contiguous: bool,
        up: np.ndarray,
        down: np.ndarray,
        cond: np.ndarray,
        genre: np.ndarray,
        text: np.ndarray,
        pos: np.ndarray,
        kv_mask: np.ndarray,
    ) -> tuple[Tensor, Tensor]:
        b = len(rows)
        with torch.cuda.stream(self.stream):
            for name, arr in zip(STEP_INPUTS, (up, down, cond, genre, text, pos, kv_mask), strict=True):
                self._view(name, b).copy_(torch.from_numpy(arr), non_blocking=False)
            ctx = self._context(b)
            if contiguous:
                caches = [buf[:b] for buf in (*self.k, *self.v)]  # same addresses for every b
                graph = self._graphs.get(b)
                if graph is None:
                    self._bind(ctx, b, caches)
                    if not ctx.execute_async_v3(self.stream.cuda_stream):
                        raise RuntimeError("TensorRT execution failed")
                    if self.cuda_graph:
                        # Capture after one plain run (TensorRT flushes deferred work on the first enqueue).
                        g = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(g, stream=self.stream):
                            ctx.execute_async_v3(self.stream.cuda_stream)
                        self._graphs[b] = g
                        # The first run already wrote the outputs; the captured launch did not run.
                else:
                    graph.replay()  # the kernels were captured with this batch's shapes and addresses
            else:
                rows_t = torch.from_numpy(rows).cuda()
                caches = [buf.index_select(0, rows_t) for buf in (*self.k, *self.v)]  # gathered copies
                self._bind(ctx, b, caches)
                if not ctx.execute_async_v3(self.stream.cuda_stream):
                    raise RuntimeError("TensorRT execution failed")
            rows_d = torch.from_numpy(rows).cuda()
            slot = torch.from_numpy(self.slots_for(pos)).cuda()
            k_new, v_new = self._view("k_new", b), self._view("v_new", b)  # [L, B, H, D]
            for i in range(self.config.n_layer):
                self.k[i][rows_d, :, slot] = k_new[i]
                self.v[i][rows_d, :, slot] = v_new[i]
            lu = self._view("logits_up", b).float().cpu()
            ld = self._view("logits_down", b).float().cpu()
        return lu, ld

    def _copy_row(self, src: int, dst: int) -> None:
        for buf in (*self.k, *self.v):
            buf[dst] = buf[src]

    def _write_keyframes(self, row: int, k: Tensor, v: Tensor) -> None:
        n = k.shape[2]
        for i in range(self.config.n_layer):
            self.k[i][row, :, :n] = k[i].to(self.k[i])
            self.v[i][row, :, :n] = v[i].to(self.v[i])

    def _write_ring(self, row: int, slots: np.ndarray, k: Tensor, v: Tensor) -> None:
        idx = torch.as_tensor(slots, device=self.k[0].device)
        for i in range(self.config.n_layer):
            self.k[i][row, :, idx] = k[i].to(self.k[i])  # torch: the int is a basic index, [H, T, D]
            self.v[i][row, :, idx] = v[i].to(self.v[i])

    def _read_slots(self, rows: np.ndarray, slots: np.ndarray) -> tuple[Tensor, Tensor]:
        # On the step's stream, so the read follows its writes. Untested here (no TensorRT on this machine).
        with torch.cuda.stream(self.stream):
            r = torch.from_numpy(rows).cuda()
            s = torch.from_numpy(slots).cuda()
            k = torch.stack([buf[r, :, s] for buf in self.k], dim=1)  # L x [B, H, D] -> [B, L, H, D]
            v = torch.stack([buf[r, :, s] for buf in self.v], dim=1)
        return k, v

    def _write_slots(self, rows: np.ndarray, slots: np.ndarray, k: ArrayLike, v: ArrayLike) -> None:
        with torch.cuda.stream(self.stream):
            r = torch.from_numpy(rows).cuda()
            s = torch.from_numpy(slots).cuda()
            kt, vt = torch.as_tensor(k).cuda(), torch.as_tensor(v).cuda()
            for i in range(self.config.n_layer):
                self.k[i][r, :, s] = kt[:, i].to(self.k[i])
                self.v[i][r, :, s] = vt[:, i].to(self.v[i])

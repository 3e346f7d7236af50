"""ONNX export of the single-token GPT step with the ring KV cache as explicit inputs and outputs."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from engine.models.gpt import CrossCondGPT

#: Lowest opset we emit (LayerNormalization is a single op from 17 on).
MIN_OPSET = 17

#: ONNX operators the step may contain: each is in the ONNX-TensorRT parser's supported-operator list
#: (TensorRT 10). The export fails if anything else appears, so a model change cannot silently produce a
#: graph TensorRT refuses.
TENSORRT_OPS: frozenset[str] = frozenset({
    "Add", "And", "Cast", "Concat", "Constant", "ConstantOfShape", "Cos", "Div", "Equal", "Erf", "Expand",
    "Gather", "Gemm", "Greater", "GreaterOrEqual", "Identity", "LayerNormalization", "Less", "LessOrEqual",
    "MatMul", "Mod", "Mul", "Neg", "Not", "Or", "Pow", "Range", "ReduceMean", "ReduceSum", "Reshape", "Shape",
    "Sin", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Where",
})

#: Names of the graph's inputs before the per-layer caches, in call order.
STEP_INPUTS = ("up_prev", "down_prev", "cond", "genre", "text", "pos", "kv_mask")
STEP_OUTPUTS = ("logits_up", "logits_down", "k_new", "v_new")


def cache_input_names(n_layer: int) -> list[str]:
    """Per-layer cache inputs: ``k_cache.0 .. k_cache.{L-1}, v_cache.0 .. v_cache.{L-1}``."""
    return [f"k_cache.{i}" for i in range(n_layer)] + [f"v_cache.{i}" for i in range(n_layer)]


class StepForExport(nn.Module):
    """``CrossCondGPT.step_delta`` with one cache input per layer.

    Per-layer inputs [B, H, S, D] let a backend pass contiguous row ranges of its cache pool without a copy;
    the outputs are the new entries [L, B, H, D], written by the backend at slot ``K + pos % context``.
    """

    def __init__(self, model: CrossCondGPT) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, up_prev: Tensor, down_prev: Tensor, cond: Tensor, genre: Tensor, text: Tensor, pos: Tensor,
        kv_mask: Tensor, *caches: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n = self.model.cfg.n_layer
        return self.model.step_delta(
            up_prev, down_prev, cond, genre, text, pos, list(caches[:n]), list(caches[n:]), kv_mask
        )


def model_hash(model: CrossCondGPT) -> str:
    """sha256 over the config JSON and every weight's name, shape and bytes."""
    h = hashlib.sha256(model.cfg.to_json().encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def example_step_inputs(model: CrossCondGPT, batch: int, generator: torch.Generator) -> list[Tensor]:
    """Random valid inputs for the exported step (tokens, positions past the ring wrap, random caches)."""
    cfg = model.cfg
    g = generator
    caches = [
        torch.randn(batch, cfg.n_head, cfg.cache_slots, cfg.head_dim, generator=g) for _ in range(2 * cfg.n_layer)
    ]
    return [
        torch.randint(0, cfg.vocab_size + 1, (batch,), generator=g),
        torch.randint(0, cfg.vocab_size + 1, (batch,), generator=g),
        torch.randn(batch, cfg.cond_dim, generator=g),
        torch.randint(0, cfg.n_genres, (batch,), generator=g),
        torch.randn(batch, cfg.text_dim, generator=g),
        torch.randint(0, 3 * cfg.context, (batch,), generator=g),
        torch.rand(batch, cfg.n_keyframe_slots, generator=g) < 0.5,
        *caches,
    ]


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote and checked."""

    path: Path
    opset: int
    model_sha256: str
    inputs: dict[str, list[int | str]] = field(default_factory=dict)
    outputs: dict[str, list[int | str]] = field(default_factory=dict)
    op_counts: dict[str, int] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def _dims(value_info: object) -> list[int | str]:
    shape = value_info.type.tensor_type.shape  # type: ignore[attr-defined]
    return [d.dim_param if d.dim_param else int(d.dim_value) for d in shape.dim]


def export_onnx(model: CrossCondGPT, path: str | Path, opset: int = MIN_OPSET) -> OnnxExport:
    """Export the step of ``model`` to ``path`` with the batch as the only dynamic axis, then check it.

    Checks: ``onnx.checker`` (full), shape inference, every operator in :data:`TENSORRT_OPS`, and all
    non-batch dimensions static.

    Raises:
        ValueError: on an opset below :data:`MIN_OPSET` or a model without keyframe slots (a zero-sized
            input is not portable).
        RuntimeError: when a check fails (the message names the offending operator or dimension).
    """
    import onnx

    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset}")
    cfg = model.cfg
    if cfg.n_keyframe_slots < 1:
        raise ValueError("export needs n_keyframe_slots >= 1 (a zero-sized kv_mask input is not portable)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    wrapper = StepForExport(model).eval()
    args = tuple(example_step_inputs(model, 2, torch.Generator().manual_seed(0)))
    in_names = [*STEP_INPUTS, *cache_input_names(cfg.n_layer)]
    dyn = {n: {0: "batch"} for n in in_names}
    dyn.update({"logits_up": {0: "batch"}, "logits_down": {0: "batch"}, "k_new": {1: "batch"}, "v_new": {1: "batch"}})
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript;
        # this graph has no control flow, so the TorchScript exporter is exact and needs nothing extra.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper, args, str(path), dynamo=False, opset_version=opset, input_names=in_names,
            output_names=list(STEP_OUTPUTS), dynamic_axes=dyn, do_constant_folding=True,
        )
    proto = onnx.load(str(path))
    # Declare the outputs' shapes (the tracer names static dims it cannot follow through reshapes);
    # strict shape inference below fails if the graph disagrees with them.
    expected: dict[str, list[int | str]] = {
        "logits_up": ["batch", cfg.vocab_size], "logits_down": ["batch", cfg.vocab_size],
        "k_new": [cfg.n_layer, "batch", cfg.n_head, cfg.head_dim],
        "v_new": [cfg.n_layer, "batch", cfg.n_head, cfg.head_dim],
    }
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        for dim, want in zip(dims, expected[out.name], strict=True):
            if isinstance(want, str):
                dim.dim_param = want
            else:
                dim.dim_value = want
    digest = model_hash(model)
    for key, value in (("groovecast.model_sha256", digest), ("groovecast.gpt_config", cfg.to_json())):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))

    checks = []
    onnx.checker.check_model(str(path), full_check=True)
    checks.append("onnx.checker (full_check) clean")
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    checks.append("strict shape inference")
    ops = Counter(n.op_type for n in inferred.graph.node)
    bad = sorted(set(ops) - TENSORRT_OPS)
    if bad:
        raise RuntimeError(f"exported step uses operators outside the TensorRT-supported set: {bad}")
    checks.append(f"all {len(ops)} operator types TensorRT-supported")
    inputs = {i.name: _dims(i) for i in inferred.graph.input}
    outputs = {o.name: _dims(o) for o in inferred.graph.output}
    for name, dims in {**inputs, **outputs}.items():
        dynamic = [d for d in dims if isinstance(d, str)]
        if dynamic != ["batch"]:
            raise RuntimeError(f"{name} must have exactly one dynamic axis 'batch', got dims {dims}")
    checks.append("batch is the only dynamic axis")
    return OnnxExport(path, opset, digest, inputs, outputs, dict(sorted(ops.items())), checks)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The groovecast metadata of an exported step (model hash, GPT config JSON)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def summary_json(exp: OnnxExport) -> str:
    """Machine-readable summary for the CLI."""
    return json.dumps(
        {"path": str(exp.path), "bytes": exp.size_bytes, "opset": exp.opset, "model_sha256": exp.model_sha256,
         "inputs": exp.inputs, "outputs": exp.outputs, "ops": exp.op_counts, "checks": exp.checks},
        indent=2,
    )


class WindowForExport(nn.Module):
    """The full-window recompute without a cache (the bench's baseline): last position's logits."""

    def __init__(self, model: CrossCondGPT) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, up_in: Tensor, down_in: Tensor, cond: Tensor, genre: Tensor, text: Tensor
    ) -> tuple[Tensor, Tensor]:
        lu, ld = self.model(up_in, down_in, cond, genre, text)  # [B, T, V]
        return lu[:, -1], ld[:, -1]


def export_window_onnx(model: CrossCondGPT, path: str | Path, opset: int = MIN_OPSET) -> Path:
    """Export :class:`WindowForExport` over ``context`` tokens (batch dynamic), checker-verified."""
    import onnx

    cfg = model.cfg
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    t = cfg.context
    args = (
        torch.randint(0, cfg.vocab_size, (2, t), generator=g), torch.randint(0, cfg.vocab_size, (2, t), generator=g),
        torch.randn(2, t, cfg.cond_dim, generator=g), torch.zeros(2, dtype=torch.long),
        torch.randn(2, cfg.text_dim, generator=g),
    )
    names = ["up_in", "down_in", "cond", "genre", "text"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        # The forward's input validation converts tensors to Python numbers; tracing keeps it out of the graph.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            WindowForExport(model.eval()), args, str(path), dynamo=False, opset_version=opset, input_names=names,
            output_names=["logits_up", "logits_down"],
            dynamic_axes={**{n: {0: "batch"} for n in names}, "logits_up": {0: "batch"}, "logits_down": {0: "batch"}},
        )
    onnx.checker.check_model(str(path), full_check=True)
    return path

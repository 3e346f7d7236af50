"""ONNX export of the step: checker-clean, TensorRT-supported ops, dynamic batch, parity with torch at 1e-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engine.models.gpt import CrossCondGPT, GPTConfig, save_gpt
from export.onnx_export import (
    TENSORRT_OPS,
    StepForExport,
    example_step_inputs,
    export_onnx,
    model_hash,
    read_metadata,
)
from export.ort_backend import OnnxRuntimeBackend

CFG = GPTConfig(
    vocab_size=24, n_layer=2, n_head=2, n_embd=16, cond_dim=7, n_genres=4, text_dim=6, context=5,
    n_keyframe_slots=3, dropout=0.0,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[CrossCondGPT, Path]:
    torch.manual_seed(11)
    model = CrossCondGPT(CFG).eval()
    path = tmp_path_factory.mktemp("onnx") / "step.onnx"
    export_onnx(model, path)
    return model, path


def test_export_checks_and_metadata(exported: tuple[CrossCondGPT, Path]) -> None:
    model, path = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    assert {n.op_type for n in proto.graph.node} <= TENSORRT_OPS
    meta = read_metadata(path)
    assert meta["groovecast.model_sha256"] == model_hash(model)
    assert GPTConfig.from_json(meta["groovecast.gpt_config"]) == CFG
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims["k_cache.1"] == ["batch", CFG.n_head, CFG.cache_slots, CFG.head_dim]
    assert dims["kv_mask"] == ["batch", CFG.n_keyframe_slots]
    assert len(dims) == 7 + 2 * CFG.n_layer


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_onnxruntime_matches_torch_on_fresh_random_inputs(exported: tuple[CrossCondGPT, Path], batch: int) -> None:
    model, path = exported
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    # A fresh seed per draw (never zeros): random tokens, positions past the ring wrap, random caches/masks.
    seed = int(np.random.default_rng().integers(1 << 31))
    x = example_step_inputs(model, batch, torch.Generator().manual_seed(seed))
    assert all(float(t.float().abs().sum()) > 0 for t in x[2:3] + x[7:])
    got = sess.run(None, {n: t.numpy() for n, t in zip(names, x, strict=True)})
    with torch.no_grad():
        want = StepForExport(model)(*x)
    for g, w, name in zip(got, want, ("logits_up", "logits_down", "k_new", "v_new"), strict=True):
        assert g.shape == tuple(w.shape), name
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=0, err_msg=f"{name} (seed {seed})")


def test_export_refuses_bad_settings(tmp_path: Path) -> None:
    model = CrossCondGPT(CFG).eval()
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(model, tmp_path / "a.onnx", opset=13)
    no_kf = CrossCondGPT(GPTConfig(**{**CFG.to_dict(), "n_keyframe_slots": 0}))
    with pytest.raises(ValueError, match="n_keyframe_slots >= 1"):
        export_onnx(no_kf, tmp_path / "b.onnx")


def test_backend_refuses_onnx_of_another_model(exported: tuple[CrossCondGPT, Path], tmp_path: Path) -> None:
    _, path = exported
    torch.manual_seed(99)
    other = CrossCondGPT(CFG).eval()
    with pytest.raises(ValueError, match="re-export"):
        OnnxRuntimeBackend(other, 1, path)
    with pytest.raises(FileNotFoundError, match="groovecast export onnx"):
        OnnxRuntimeBackend(other, 1, tmp_path / "missing.onnx")
    save_gpt(other, tmp_path / "m")  # model_hash is stable across save/load
    from engine.models.gpt import load_gpt

    assert model_hash(load_gpt(tmp_path / "m")) == model_hash(other)

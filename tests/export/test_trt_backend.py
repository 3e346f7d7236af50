"""TensorRT backend: engine-cache keys and profiles everywhere; build and parity only where TensorRT runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models.gpt import CrossCondGPT, GPTConfig
from export.trt_backend import DEFAULT_PROFILES, clip_profiles, engine_cache_key

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()
NO_TRT = "TensorRT 10+ and a CUDA GPU are needed; tensorrt is not installable on the CI machines"


def test_profiles_are_clipped_to_capacity() -> None:
    assert clip_profiles(DEFAULT_PROFILES, 1) == [(1, 1, 1)]
    assert clip_profiles(DEFAULT_PROFILES, 16) == [(1, 1, 1), (2, 16, 16)]
    assert clip_profiles(DEFAULT_PROFILES, 300) == [(1, 1, 1), (2, 16, 32), (33, 256, 300)]
    with pytest.raises(ValueError, match="no batch profile"):
        clip_profiles(((2, 2, 2),), 1)


def test_engine_cache_key_changes_with_everything_it_depends_on() -> None:
    base = engine_cache_key(b"onnx", "10.3.0", "H100", [(1, 1, 1)], True)
    assert base == engine_cache_key(b"onnx", "10.3.0", "H100", [(1, 1, 1)], True)
    others = {
        engine_cache_key(b"onnx2", "10.3.0", "H100", [(1, 1, 1)], True),
        engine_cache_key(b"onnx", "10.4.0", "H100", [(1, 1, 1)], True),
        engine_cache_key(b"onnx", "10.3.0", "L4", [(1, 1, 1)], True),
        engine_cache_key(b"onnx", "10.3.0", "H100", [(1, 2, 2)], True),
        engine_cache_key(b"onnx", "10.3.0", "H100", [(1, 1, 1)], False),
    }
    assert base not in others and len(others) == 5


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason=NO_TRT)
def test_tensorrt_matches_torch_and_caches_engine(tmp_path: Path) -> None:  # pragma: no cover - needs TensorRT
    from export.onnx_export import export_onnx
    from export.torch_backend import TorchBackend
    from export.trt_backend import TensorRTBackend, build_engine

    cfg = GPTConfig(vocab_size=32, n_layer=2, n_head=2, n_embd=32, cond_dim=8, n_genres=3, text_dim=8,
                    context=6, n_keyframe_slots=2, dropout=0.0)
    torch.manual_seed(0)
    model = CrossCondGPT(cfg).eval()
    onnx_path = export_onnx(model, tmp_path / "step.onnx").path
    trt_be = TensorRTBackend(model, 40, onnx_path, tmp_path / "engines")
    assert not trt_be.build.cached
    assert build_engine(onnx_path, tmp_path / "engines", 40).cached
    ref = TorchBackend(model, 40)
    rng = np.random.default_rng(1)
    for n in (1, 5, 40):
        a = [trt_be.new_state() for _ in range(n)]
        b = [ref.new_state() for _ in range(n)]
        for _ in range(2 * cfg.context + 1):
            cond = rng.standard_normal((n, cfg.cond_dim)).astype(np.float32)
            genre = rng.integers(0, cfg.n_genres, n)
            x, y = trt_be.step(a, cond, genre), ref.step(b, cond, genre)
            # FP16 engine: compare the distributions, not bits.
            torch.testing.assert_close(x.logits_up.softmax(-1), y.logits_up.softmax(-1), atol=2e-2, rtol=0)
            tok = y.logits_up.argmax(-1).tolist()
            for s1, s2, t in zip(a, b, tok, strict=True):
                s1.feed(t, t)
                s2.feed(t, t)
        for s in a:
            trt_be.release(s)
        for s in b:
            ref.release(s)

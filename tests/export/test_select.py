"""Backend selection by name, auto, and honest unavailability reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.models.gpt import CrossCondGPT, GPTConfig, save_gpt
from export.base import BackendUnavailable
from export.select import availability, create_backend, ensure_onnx

CFG = GPTConfig(vocab_size=8, n_layer=1, n_head=2, n_embd=8, cond_dim=3, n_genres=2, text_dim=4, context=3,
                n_keyframe_slots=1, dropout=0.0)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_gpt(CrossCondGPT(CFG), tmp_path / "model")


def test_named_backends_and_export_cache(model_dir: Path, tmp_path: Path) -> None:
    be = create_backend("torch", model_dir, 2, tmp_path / "wd", device="cpu")
    assert be.name == "torch" and be.device == "cpu"
    ort_be = create_backend("onnxruntime", model_dir, 2, tmp_path / "wd", threads=1)
    assert ort_be.name == "onnxruntime"
    path = ensure_onnx(ort_be.model, tmp_path / "wd")
    mtime = path.stat().st_mtime_ns
    assert ensure_onnx(ort_be.model, tmp_path / "wd").stat().st_mtime_ns == mtime  # reused, not re-exported


def test_auto_picks_an_available_backend(model_dir: Path, tmp_path: Path) -> None:
    be = create_backend("auto", model_dir, 2, tmp_path / "wd", device="cpu", threads=1)
    assert be.name in {n for n, why in availability().items() if why is None}
    assert be.states == []  # the probe's performers were released


def test_unknown_and_unavailable(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of torch, onnxruntime, tensorrt, auto"):
        create_backend("tflite", model_dir, 1)
    with pytest.raises(FileNotFoundError, match="lacks"):
        create_backend("torch", tmp_path, 1)
    why = availability()["tensorrt"]
    if why is None:  # pragma: no cover - only where TensorRT and a GPU exist
        pytest.skip("TensorRT is available here")
    with pytest.raises(BackendUnavailable, match=r"tensorrt|TensorRT|CUDA"):
        create_backend("tensorrt", model_dir, 1, tmp_path / "wd")

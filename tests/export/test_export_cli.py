"""``groovecast export onnx|tensorrt`` and ``groovecast bench decode`` end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.models.gpt import CrossCondGPT, GPTConfig, save_gpt
from export.select import availability

CFG = GPTConfig(vocab_size=20, n_layer=2, n_head=2, n_embd=16, cond_dim=5, n_genres=3, text_dim=4, context=4,
                n_keyframe_slots=2, dropout=0.0)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_gpt(CrossCondGPT(CFG), tmp_path / "model")


def test_export_onnx_writes_checked_step(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["export", "onnx", "--model", str(model_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[4/4]" in text and "checks passed:" in text and "k_cache.1" in text
    summary = json.loads((out / "export.json").read_text())
    assert summary["bytes"] == (out / "step.onnx").stat().st_size
    assert summary["inputs"]["k_cache.0"] == ["batch", 2, 6, 8]
    assert summary["outputs"]["k_new"] == [2, "batch", 2, 8]
    assert any("parity" in c for c in summary["checks"])
    assert any("TensorRT-supported" in c for c in summary["checks"])


def test_export_onnx_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "onnx", "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "lacks ['gpt.safetensors', 'gpt.json']" in capsys.readouterr().err
    assert main(["export", "onnx", "--model", str(tmp_path), "--out", str(tmp_path / "o"), "--opset", "13"]) == 2
    assert "--opset must be >= 17" in capsys.readouterr().err


def test_export_tensorrt_says_why_it_cannot_run(model_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "tensorrt", "--onnx", str(tmp_path / "nope.onnx"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    if availability()["tensorrt"] is None:  # pragma: no cover - only where TensorRT runs
        pytest.skip("TensorRT is available here; the build itself is covered in test_trt_backend")
    main(["export", "onnx", "--model", str(model_dir), "--out", str(tmp_path / "o")])
    capsys.readouterr()
    assert main(["export", "tensorrt", "--onnx", str(tmp_path / "o" / "step.onnx"), "--out", str(tmp_path)]) == 2
    assert "TensorRT backend unavailable" in capsys.readouterr().err


def test_bench_decode_quick_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "decode", "--json", "--quick", "--models", "tiny", "--batches", "1,3", "--out",
               str(tmp_path)])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    keys = {"backend", "model", "batch", "cached", "context", "p50_ms", "p99_ms", "device"}
    assert len(report["rows"]) == 2 * 2 * 2
    for row in report["rows"]:
        assert keys <= set(row)
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert {(r["backend"], r["batch"], r["cached"]) for r in report["rows"]} == {
        (b, n, c) for b in ("torch", "onnxruntime") for n in (1, 3) for c in (True, False)
    }
    assert report["memory"][0]["cache_bytes_per_performer"] > 0
    assert report["gpu_note"]
    for name in ("decode.json", "decode.md", "decode.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert main(["bench", "decode", "--models", "huge"]) == 2

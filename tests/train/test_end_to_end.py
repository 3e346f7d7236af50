"""CLI end to end on a tiny data set: data -> VQ-VAE -> GPT -> generate (BVH) -> eval, a few steps each."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from dance_helpers import write_cmu_like

from engine.cli import main
from engine.frames import ENGINE_SAMPLE_RATE
from engine.skeleton.bvh import read_bvh
from engine.train.synth_music import render_track

TINY = {
    "vqvae": {"train": {"steps": 6, "batch": 4, "window": 32, "threads": 1, "log_every": 2, "ckpt_every": 3,
                        "val_every": 6},
              "model": {"n_codes": 32, "code_dim": 16, "hidden": 32}},
    "gpt": {"train": {"steps": 6, "batch": 4, "threads": 1, "log_every": 2, "ckpt_every": 3, "val_every": 6},
            "model": {"preset": "default", "n_layer": 1, "n_head": 2, "n_embd": 32, "context": 8,
                      "vocab_size": 32}},
}


def _wav(path: Path, seconds: float) -> Path:
    x = render_track(np.arange(0.2, seconds, 0.55), seconds, seed=5)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(ENGINE_SAMPLE_RATE)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return path


@pytest.mark.slow
def test_tiny_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_cmu_like(tmp_path / "cmu", {"01": 96.0, "12": 110.0}, seconds=5.0)
    out = tmp_path / "model"
    cache = tmp_path / "cache"
    for what in ("vqvae", "gpt"):
        cfg = tmp_path / f"{what}.json"
        cfg.write_text(json.dumps(TINY[what]))
        extra = ["--no-text"] if what == "gpt" else []
        rc = main(["train", what, "--data", str(data), "--config", str(cfg), "--out", str(out), "--cache", str(cache),
                   *extra])
        assert rc == 0
    for f in ("vqvae.safetensors", "vqvae.json", "gpt.safetensors", "gpt.json", "train_vqvae.log", "train_gpt.log"):
        assert (out / f).is_file(), f
    rep = json.loads((out / "gpt_train_report.json").read_text())
    assert rep["step"] == 6 and rep["final"] and len(rep["history"]) == 3

    # Resume: asking for more steps continues from the checkpoint instead of starting over.
    cfg = tmp_path / "gpt.json"
    more = json.loads(cfg.read_text())
    more["train"]["steps"] = 9
    cfg.write_text(json.dumps(more))
    assert main(["train", "gpt", "--data", str(data), "--config", str(cfg), "--out", str(out), "--cache", str(cache),
                 "--no-text"]) == 0
    rep = json.loads((out / "gpt_train_report.json").read_text())
    assert rep["step"] == 9 and rep["history"][0]["step"] == 8  # steps 7..9 only

    wav = _wav(tmp_path / "song.wav", 6.0)
    bvh = tmp_path / "dance.bvh"
    capsys.readouterr()
    assert main(["generate", str(wav), "--out", str(bvh), "--model", str(out), "--seconds", "4"]) == 0
    info = json.loads(capsys.readouterr().out)
    motion = read_bvh(bvh)
    assert motion.num_frames == info["frames"] == 120  # 4 s at 30 fps = 30 tokens of 4 frames
    assert motion.skeleton.num_joints == 43
    assert np.isfinite(motion.data).all()

    # Beat-guided generation through the same CLI (the tiny run has no model card: guidance off by default).
    assert main(["generate", str(wav), "--out", str(bvh), "--model", str(out), "--seconds", "4",
                 "--beat-guidance", "6"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 120

    # Keyframes (the first frame of the dance just written, pinned at 2 s, then the upper body at 3 s) through
    # the live generator; energy is refused by a model trained without it.
    kf = tmp_path / "kf.bvh"
    assert main(["generate", str(wav), "--out", str(kf), "--model", str(out), "--seconds", "4",
                 "--keyframe", f"{bvh}@2", "--keyframe", f"{bvh}@3:upper"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 120 and len(info["keyframes"]) == 2
    assert main(["generate", str(wav), "--out", str(kf), "--model", str(out), "--energy", "0.5"]) == 2
    assert "energy" in capsys.readouterr().err
    assert main(["generate", str(wav), "--out", str(kf), "--model", str(out), "--keyframe", "pose.bvh"]) == 2
    assert "POSE.bvh@SECONDS" in capsys.readouterr().err

    assert main(["eval", "--model", str(out), "--data", str(data), "--json", "--beat-guidance", "4"]) == 0
    res = json.loads(capsys.readouterr().out)
    for row in ("real", "model", "untrained", "model_plain", "untrained_plain"):
        assert {"fid_k", "fid_g", "bas", "pfc"} <= set(res[row])
    assert res["model"]["vq_mpjpe_mm"] > 0


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(tmp_path / "nope.wav"), "--out", str(tmp_path / "x.bvh")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "vqvae", "--data", str(tmp_path)]) == 2
    assert "no motion source folders" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": {"stepz": 3}}))
    data = write_cmu_like(tmp_path / "cmu", {"01": 96.0, "12": 110.0}, seconds=3.0)
    assert main(["train", "vqvae", "--data", str(data), "--config", str(bad), "--cache", str(tmp_path / "c"),
                 "--out", str(tmp_path / "m")]) == 2
    assert "unknown train setting(s) ['stepz']" in capsys.readouterr().err

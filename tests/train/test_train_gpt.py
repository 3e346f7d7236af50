"""GPT training loop: early stopping keeps the weights of the best validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.models.conditioning import TEXT_DIM
from engine.models.gpt import GPT_PRESETS
from engine.train.train_gpt import GPTTrainConfig, TokenSequence, train_gpt

TINY = replace(GPT_PRESETS["tiny"], text_dim=TEXT_DIM)  # validation runs without text: zeros of TEXT_DIM


def _seqs(n: int, seed: int) -> list[TokenSequence]:
    cfg = TINY
    rng = np.random.default_rng(seed)
    return [
        TokenSequence(name=f"take{i:02d}_x1.00_d60", up=rng.integers(0, cfg.vocab_size, 20),
                      down=rng.integers(0, cfg.vocab_size, 20),
                      cond=rng.standard_normal((20, cfg.cond_dim)).astype(np.float32), genre=1,
                      text=np.zeros(cfg.text_dim, np.float32), caption="")
        for i in range(n)
    ]


def test_keep_best_restores_the_lowest_validation_loss(tmp_path: Path) -> None:
    cfg = GPTTrainConfig(steps=6, batch=2, warmup=1, threads=1, cond_channels="all", text_dropout=0.0, log_every=2,
                         ckpt_every=3, val_every=2, keep_best=True)
    rep = train_gpt(_seqs(3, 0), _seqs(2, 1), tmp_path, cfg, TINY, progress=False)
    losses = [v["val_loss"] for v in rep["val_history"]]
    assert len(losses) == 3
    assert rep["best"]["step"] == rep["val_history"][int(np.argmin(losses))]["step"]
    assert (tmp_path / "gpt.safetensors").read_bytes() == (tmp_path / "best" / "gpt.safetensors").read_bytes()


def test_without_keep_best_the_last_weights_stay(tmp_path: Path) -> None:
    cfg = GPTTrainConfig(steps=2, batch=2, warmup=1, threads=1, cond_channels="all", text_dropout=0.0, val_every=2)
    rep = train_gpt(_seqs(2, 0), _seqs(1, 1), tmp_path, cfg, TINY, progress=False)
    assert "best" not in rep
    assert not (tmp_path / "best").exists()

"""The GPT's auxiliary beat loss: beat frames as the live guidance reads them, speed contrast, gradients."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from engine.models.beat_guidance import beat_frames
from engine.models.conditioning import COND_DIM, FRAMES_PER_TOKEN, sequence_conditions
from engine.models.gpt import GPT_PRESETS
from engine.models.vqvae import VQVAE, VQVAEConfig
from engine.train.beat_loss import BeatSpeedLoss, predicted_beat_frames
from engine.train.train_gpt import GPTTrainConfig, TokenSequence, train_gpt


def _conditions(n_tokens: int = 40, bpm: float = 117.0, offset_s: float = 0.23) -> np.ndarray:
    frames = n_tokens * FRAMES_PER_TOKEN
    period = np.full(frames, 60.0 / bpm)
    t = np.arange(frames) / 30.0
    nxt = offset_s + np.ceil((t - offset_s) / period) * period  # next beat after each frame
    return sequence_conditions(np.zeros((frames, 40), np.float32), period, nxt, n_tokens)


def test_beat_frames_match_the_live_guidance_token_by_token() -> None:
    cond = _conditions()
    frames = predicted_beat_frames(torch.from_numpy(cond)[None])[0].numpy()
    live = np.zeros_like(frames)
    for t, row in enumerate(cond):
        for k in beat_frames(row):
            live[t * FRAMES_PER_TOKEN + k] = True
    assert frames.sum() == 10  # one frame per beat: a beat every 15.4 frames over 160 frames
    assert np.array_equal(frames, live)
    # no tempo belief (zero phase entries, e.g. padding): no beats
    assert not predicted_beat_frames(torch.zeros(1, 5, COND_DIM)).any()


def test_contrast_is_lower_for_speed_minima_on_the_beats() -> None:
    loss = BeatSpeedLoss(VQVAE(VQVAEConfig(n_codes=16, code_dim=8, hidden=16)), radius=4)
    n = 200
    beats = torch.zeros(1, n, dtype=torch.bool)
    beats[0, 20::16] = True
    valid = torch.ones(1, n, dtype=torch.bool)
    t = torch.arange(n - 1, dtype=torch.float32)
    on = 1.0 - 0.8 * torch.cos(2 * np.pi * (t - 20) / 16).clamp_min(0) ** 4  # dips at the beats
    off = 1.0 - 0.8 * torch.cos(2 * np.pi * (t - 28) / 16).clamp_min(0) ** 4  # dips half a beat later
    flat = torch.ones(n - 1)
    c_on = float(loss.contrast(on[None], beats, valid))
    c_off = float(loss.contrast(off[None], beats, valid))
    c_flat = float(loss.contrast(flat[None], beats, valid))
    assert c_on < 0.7 < c_flat - 0.2 < c_off
    # padded frames around a beat are not scored: nothing scored -> neutral 1.0
    assert float(loss.contrast(on[None], beats, torch.zeros(1, n, dtype=torch.bool))) == 1.0
    # the default objective: distance from the beat to the soft minimum of the speed (radius 7)
    soft = BeatSpeedLoss(loss.vq)
    o_on, o_off = (float(soft.offset(c[None], beats, valid)) for c in (on, off))
    o_flat = float(soft.offset(flat[None], beats, valid))
    assert o_on < 0.05 and o_off > 0.5 and abs(o_flat - float(((torch.arange(-7, 8) / 7.0) ** 2).mean())) < 1e-6


def test_loss_is_differentiable_through_the_frozen_decoder() -> None:
    torch.manual_seed(0)
    vq = VQVAE(VQVAEConfig(n_codes=16, code_dim=8, hidden=16))
    loss = BeatSpeedLoss(vq)
    n = 24
    logits_up = torch.randn(2, n, 16, requires_grad=True)
    logits_down = torch.randn(2, n, 16, requires_grad=True)
    cond = torch.from_numpy(_conditions(n)).expand(2, -1, -1)
    value = loss(logits_up, logits_down, cond, torch.zeros(2, n, dtype=torch.long))
    value.backward()
    assert torch.isfinite(value)
    assert logits_up.grad is not None and float(logits_up.grad.abs().sum()) > 0
    assert logits_down.grad is not None and float(logits_down.grad.abs().sum()) > 0
    assert all(p.grad is None for p in vq.parameters())  # the VQ-VAE stays frozen


def test_speed_counts_root_travel() -> None:
    loss = BeatSpeedLoss(VQVAE(VQVAEConfig(n_codes=16, code_dim=8, hidden=16)), sigma=0.5)
    up = torch.zeros(1, 10, 72)
    up[..., 0::6] = 1.0  # 6D identity rotations (columns x = (1,0,0), y = (0,1,0))
    up[..., 4::6] = 1.0
    low = torch.zeros(1, 10, 61)
    low[..., 3:57:6] = 1.0
    low[..., 7:57:6] = 1.0
    low[..., 1] = 0.9
    still = loss.speed(up, low)
    low[..., 0] = 1.5  # travelling at 1.5 m/s along x, the pose unchanged
    moving = loss.speed(up, low)
    assert float(still.abs().max()) < 1e-4
    assert torch.allclose(moving, torch.full_like(moving, 1.5), atol=1e-3)


def test_training_with_the_beat_loss_logs_it(tmp_path: Path) -> None:
    gcfg = replace(GPT_PRESETS["tiny"], vocab_size=16, cond_dim=COND_DIM, context=12)
    rng = np.random.default_rng(0)
    seqs = [TokenSequence(name=f"take0{i}_x1.00_d60", up=rng.integers(0, 16, 30), down=rng.integers(0, 16, 30),
                          cond=_conditions(30), genre=1, text=np.zeros(gcfg.text_dim, np.float32), caption="")
            for i in range(2)]
    vq = VQVAE(VQVAEConfig(n_codes=16, code_dim=8, hidden=16))
    cfg = GPTTrainConfig(steps=2, batch=2, warmup=1, threads=1, log_every=1, val_every=2, beat_loss=0.5)
    rep = train_gpt(seqs, seqs[:1], tmp_path, cfg, gcfg, progress=False, vq=vq)
    assert all("beat" in h and "ce" in h for h in rep["history"])
    assert "val_beat" in rep["val_history"][-1]
    try:
        train_gpt(seqs, seqs[:1], tmp_path / "x", cfg, gcfg, progress=False)
    except ValueError as exc:
        assert "VQ-VAE" in str(exc)
    else:
        raise AssertionError("beat_loss without a VQ-VAE must fail")

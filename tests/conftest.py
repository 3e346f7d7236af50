"""Fixtures shared by every test directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.models.gpt import CrossCondGPT, GPTConfig, save_gpt
from engine.models.vqvae import VQVAE, VQVAEConfig, save_vqvae


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    """A model directory with small random weights (gpt.* + vqvae.*).

    For tests of the live path (scheduling, I/O, CLI), not of dance quality: the shipped model has its own tests.
    """
    torch.manual_seed(0)
    d = tmp_path / "model"
    save_gpt(CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, n_keyframe_slots=2)), d)
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16))
    vq.down_mean[1] = 0.95  # a standing height, so the idle pose is above the floor
    save_vqvae(vq, d)
    return d

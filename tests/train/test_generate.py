"""Offline generation: plain vs beat-guided sampling through the cached step API."""

from __future__ import annotations

import numpy as np
import torch

from engine.models.beat_guidance import GuidanceConfig
from engine.models.conditioning import COND_DIM, sequence_conditions
from engine.models.gpt import CrossCondGPT, GPTConfig
from engine.models.vqvae import VQVAE, VQVAEConfig
from engine.train.generate import generate_tokens, generate_tokens_guided


def _cond(n_tokens: int, period: float = 0.5, first_beat: float = 0.1) -> np.ndarray:
    n = 4 * n_tokens
    t = np.arange(n) / 30.0
    nxt = first_beat + period * np.ceil((t - first_beat) / period)
    return sequence_conditions(np.zeros((n, 40), np.float32), np.full(n, period), nxt, n_tokens)


def _tiny() -> tuple[CrossCondGPT, VQVAE]:
    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(vocab_size=16, n_layer=1, n_head=2, n_embd=16, cond_dim=COND_DIM, context=8,
                                 dropout=0.0)).eval()
    vq = VQVAE(VQVAEConfig(n_codes=16, code_dim=8, hidden=16)).eval()
    vq.q_up.codebook.normal_()
    vq.q_down.codebook.normal_()
    return gpt, vq


def test_guided_with_one_candidate_is_plain_sampling() -> None:
    gpt, vq = _tiny()
    cond = _cond(20)
    a = generate_tokens(gpt, cond, 1, None, 1.0, None, seed=3)
    b = generate_tokens_guided(gpt, vq, cond, 1, None, 1.0, None, seed=3,
                               guidance=GuidanceConfig(candidates=1))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_guided_sampling_stays_in_vocab_and_makes_other_choices() -> None:
    gpt, vq = _tiny()
    cond = _cond(20)
    up, down = generate_tokens_guided(gpt, vq, cond, 1, None, 1.0, None, seed=3,
                                      guidance=GuidanceConfig(candidates=6, weight=5.0))
    assert up.shape == down.shape == (20,)
    assert ((up >= 0) & (up < 16)).all() and ((down >= 0) & (down < 16)).all()
    plain = generate_tokens(gpt, cond, 1, None, 1.0, None, seed=3)
    assert not np.array_equal(up, plain[0])  # the guided choices differ somewhere

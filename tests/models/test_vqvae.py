"""FreqVQ-VAE: shapes, causal decoding, codebook upkeep, save/load, and that training lowers the loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.models.vqvae import DOWN, VQVAE, EMAQuantizer, VQVAEConfig, load_vqvae, save_vqvae

TINY = VQVAEConfig(upper_dim=12, lower_dim=10, lower_contact=[8, 9], n_codes=16, code_dim=8, hidden=16)


def _data(b: int = 4, t: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    time = torch.arange(t).float()[None, :, None] / 6.0
    up = torch.sin(time + torch.rand(b, 1, 12, generator=g) * 6) + 0.05 * torch.randn(b, t, 12, generator=g)
    down = torch.cos(time + torch.rand(b, 1, 10, generator=g) * 6)
    down[..., 8:] = (down[..., 8:] > 0).float()
    return up, down


def test_shapes_and_token_rate() -> None:
    torch.manual_seed(0)
    m = VQVAE(TINY)
    up, down = _data()
    out = m(up, down)
    assert out["up"].shape == up.shape and out["down"].shape == down.shape
    assert out["idx_up"].shape == (4, 32 // DOWN)
    m.eval()
    iu, idn = m.encode(up, down)
    ru, rd = m.decode(iu, idn)
    assert ru.shape == up.shape and rd.shape == down.shape
    assert ((rd[..., 8:] >= 0) & (rd[..., 8:] <= 1)).all()  # contacts come back as probabilities


def test_decoder_is_causal_with_bounded_context() -> None:
    torch.manual_seed(0)
    m = VQVAE(VQVAEConfig()).eval()
    n = 40
    iu = torch.randint(0, 512, (1, n))
    idn = torch.randint(0, 512, (1, n))
    base_u, _ = m.decode(iu, idn)
    t0 = 20
    iu2 = iu.clone()
    iu2[0, t0] = (iu2[0, t0] + 1) % 512
    new_u, _ = m.decode(iu2, idn)
    changed = (new_u - base_u).abs().sum(-1)[0] > 0
    frames = torch.nonzero(changed)[:, 0]
    assert int(frames.min()) == DOWN * t0  # nothing before the token's own frames changes
    ctx = m.decode_context()
    assert int(frames.max()) < DOWN * (t0 + ctx)  # and nothing beyond the decoder's receptive field


def test_ema_codebook_moves_toward_data_and_reseeds_dead_codes() -> None:
    torch.manual_seed(0)
    cfg = VQVAEConfig(n_codes=8, code_dim=2, ema_decay=0.5, dead_usage=0.3)
    q = EMAQuantizer(cfg).train()
    z = torch.tensor([[[5.0, 5.0]] * 16])  # every vector at one point
    for _ in range(10):
        q(z)
    used = q.indices(z)[0, 0]
    assert torch.allclose(q.codebook[used], torch.tensor([5.0, 5.0]), atol=1e-3)
    # All other codes went unused, fell below dead_usage and were re-seeded from the data.
    assert torch.allclose(q.codebook, torch.tensor([5.0, 5.0]).expand(8, 2), atol=1e-3)


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = VQVAE(TINY)
    up, down = _data()
    m.set_stats(up.reshape(-1, 12), down.reshape(-1, 10))
    m.train()
    m(up, down)  # initialise codebooks from data
    m.eval()
    save_vqvae(m, tmp_path, {"note": "test"})
    m2 = load_vqvae(tmp_path)
    assert m2.cfg == m.cfg
    a = m.decode(*m.encode(up, down))
    b = m2.decode(*m2.encode(up, down))
    torch.testing.assert_close(a, b)
    with pytest.raises(FileNotFoundError, match=r"vqvae\.json"):
        load_vqvae(tmp_path / "missing")


def test_training_steps_reduce_loss() -> None:
    torch.manual_seed(0)
    m = VQVAE(TINY)
    up, down = _data(8, 32)
    m.set_stats(up.reshape(-1, 12), down.reshape(-1, 10))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = None
    for _ in range(80):
        loss = m(up, down)["loss"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.75 * first


def test_frequency_branch_sees_the_window_spectrum() -> None:
    torch.manual_seed(0)
    m = VQVAE(TINY)
    t = torch.arange(32).float()
    slow = torch.sin(2 * torch.pi * t / 16)[None, :, None].expand(1, 32, 12)
    fast = torch.sin(2 * torch.pi * t / 4)[None, :, None].expand(1, 32, 12)
    fs = m.enc_up.freq_features(slow)
    ff = m.enc_up.freq_features(fast)
    assert fs.shape == (1, 8, 12 * (TINY.freq_window // 2 + 1))
    bins = TINY.freq_window // 2 + 1
    # Energy sits in a low bin for the slow wave and a high bin for the fast one.
    assert int(fs[0, 4].reshape(12, bins)[0].argmax()) < int(ff[0, 4].reshape(12, bins)[0].argmax())

"""Building the genre switch's primer bank from training sequences (``engine.train.primer_bank``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.models.conditioning import genre_id
from engine.models.switch_primer import PrimerBank, pose_feature
from engine.models.vqvae import VQVAE, VQVAEConfig
from engine.train.dataset import Sequence
from engine.train.primer_bank import bank_from_sequences


def test_the_bank_holds_each_styles_tokens_and_the_pose_ending_each(tmp_path: Path) -> None:
    """Every sequence is encoded by the given VQ-VAE into its style's tokens; a primer's last pose is looked up in
    the real frame ending its last token: asked with exactly that frame, the bank returns the snippet ending there."""
    torch.manual_seed(0)
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    rng = np.random.default_rng(0)
    seqs = [Sequence(name=f"take{i}", upper=rng.normal(size=(48, 72)).astype(np.float32),
                     lower=rng.normal(size=(48, 61)).astype(np.float32), music=None,  # type: ignore[arg-type]
                     genre=genre_id(st)) for i, st in enumerate(("salsa", "salsa", "modern"))]
    bank = bank_from_sequences(seqs, vq, hip_weight=3.0, components=127)
    assert sorted(bank.styles) == ["modern", "salsa"]
    with torch.inference_mode():
        iu, idn = vq.encode(torch.from_numpy(seqs[1].upper[None]), torch.from_numpy(seqs[1].lower[None]))
    sb = bank.styles["salsa"]
    assert len(sb.up) == 24 and np.array_equal(sb.up[12:], iu[0].numpy())
    assert np.array_equal(sb.down[12:], idn[0].numpy())
    assert np.array_equal(sb.pos, np.r_[np.arange(12), np.arange(12)])
    end = 7  # the second take's token 7 ends at its frame 31
    got = bank.choose("salsa", seqs[1].upper[31], seqs[1].lower[31], 5)
    assert got is not None
    np.testing.assert_array_equal(got[0], iu[0, end - 4 : end + 1].numpy())
    q = pose_feature(seqs[1].upper[31], seqs[1].lower[31], 3.0)
    assert q.shape == (127,)
    bank.save(tmp_path / "bank.safetensors")
    assert sorted(PrimerBank.load(tmp_path / "bank.safetensors").styles) == ["modern", "salsa"]


def test_a_decoded_bank_matches_on_the_frames_the_vqvae_decodes() -> None:
    """``decoded``: an end's feature is that of the frame the VQ-VAE decodes from the take's tokens (what a primed
    switch shows), so asked with that decoded frame the bank returns the snippet ending there."""
    torch.manual_seed(0)
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    rng = np.random.default_rng(1)
    seqs = [Sequence(name=f"take{i}", upper=rng.normal(size=(48, 72)).astype(np.float32),
                     lower=rng.normal(size=(48, 61)).astype(np.float32), music=None,  # type: ignore[arg-type]
                     genre=genre_id("salsa")) for i in range(2)]
    bank = bank_from_sequences(seqs, vq, hip_weight=3.0, components=127, decoded=True)
    with torch.inference_mode():
        iu, idn = vq.encode(torch.from_numpy(seqs[0].upper[None]), torch.from_numpy(seqs[0].lower[None]))
        du, dd = vq.decode(iu, idn)
    got = bank.choose("salsa", du[0, 31].numpy(), dd[0, 31].numpy(), 5)  # token 7 of the first take ends at 31
    assert got is not None
    np.testing.assert_array_equal(got[0], iu[0, 3:8].numpy())
    plain = bank_from_sequences(seqs, vq, hip_weight=3.0, components=127)
    assert not np.allclose(plain.styles["salsa"].proj.astype(np.float32), bank.styles["salsa"].proj.astype(np.float32))

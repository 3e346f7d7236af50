"""The tokenizer-timing diagnostic: BAS exactly as ``groovecast eval`` computes it, of motion and its reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.vq_timing import reconstruct, score_clip, table
from engine.models.pose_repr import motion_to_vectors
from engine.models.vqvae import VQVAE, VQVAEConfig
from engine.train import metrics as M
from engine.train.evaluate import points
from tests.train.dance_helpers import stepping_motion


def _vectors() -> tuple[np.ndarray, np.ndarray]:
    up, low = motion_to_vectors(stepping_motion(8.0, 30.0, 120.0))  # every joint stops on t = k * 0.5 s
    return up.astype(np.float32), low.astype(np.float32)


def test_score_is_the_eval_bas_with_its_chance_level() -> None:
    up, low = _vectors()
    beats = 0.5 * np.arange(1, 16)
    on = score_clip(up, low, beats, 8)
    off = score_clip(up, low, beats + 0.25, 8)
    assert on["bas"] == pytest.approx(M.beat_align_score(points(up, low), 30.0, beats))
    assert on["bas"] > 0.8 and on["excess"] > 0.4 and off["excess"] < -0.2


def test_reconstruction_keeps_whole_tokens_and_thresholds_contacts() -> None:
    torch.manual_seed(0)
    up, low = _vectors()
    vq = VQVAE(VQVAEConfig(n_codes=16, code_dim=8, hidden=16))
    vq.set_stats(torch.from_numpy(up), torch.from_numpy(low))
    ru, rl = reconstruct(vq.eval(), up[:-2], low[:-2])  # 238 frames -> 59 tokens -> 236 frames
    assert ru.shape == (236, 72) and rl.shape == (236, 61)
    assert set(np.unique(rl[:, -4:])) <= {0.0, 1.0}
    cu, cl = reconstruct(vq, up[:-2], low[:-2], quantize=False)  # the encoder's outputs, no codebook
    assert cu.shape == ru.shape and cl.shape == rl.shape and not np.allclose(cu, ru)


def test_table_names_every_style_and_the_errors() -> None:
    row = {"bas": 0.3, "chance": 0.2, "excess": 0.1, "motion_beats_per_beat": 0.8, "clips": 1}
    res = {"rows": {"real": {"pooled": row, "by_style": {"salsa": row}},
                    "vq": {"pooled": row, "by_style": {"salsa": row}, "mpjpe_mm": 67.2, "contact_acc": 0.836}}}
    lines = table(res)
    assert "salsa BAS" in lines[0]
    assert lines[3].startswith("| vq | 67.2 | 0.836 | 0.300 | 0.200 | +0.100 | 0.80 | 0.300 |")


def test_a_beat_conditioned_decoder_reconstructs_with_the_clips_beat_features() -> None:
    from engine.models.conditioning import sequence_beat_features

    torch.manual_seed(0)
    up, low = _vectors()
    vq = VQVAE(VQVAEConfig(n_codes=16, code_dim=8, hidden=16, beat_dim=4)).eval()
    with torch.no_grad():
        assert vq.dec_up.beat is not None
        vq.dec_up.beat.out.weight.normal_()
    n = len(up)
    beat = sequence_beat_features(np.full(n, 0.5), 0.5 * np.ceil(np.arange(n) / 15.0 + 1e-9), n // 4)
    with pytest.raises(ValueError, match="beat features"):
        reconstruct(vq, up, low)
    a, _ = reconstruct(vq, up, low, beat=beat)
    b, _ = reconstruct(vq, up, low, beat=np.roll(beat, 7, axis=0))
    assert a.shape == (n // 4 * 4, 72) and not np.allclose(a, b)  # the features reach the decoder

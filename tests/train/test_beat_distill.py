"""Beat-alignment distillation: guided dances become GPT training sequences; they make up a share of batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.models.conditioning import COND_DIM, sequence_conditions
from engine.models.dance_model import DanceModel
from engine.models.gpt import CrossCondGPT, GPTConfig
from engine.models.vqvae import VQVAE, VQVAEConfig
from engine.train.beat_distill import GUIDED_SUFFIX, continue_run, guided_sequences
from engine.train.dataset import MusicTrack, Sequence
from engine.train.generate import sample_dance


def _model() -> DanceModel:
    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(vocab_size=16, n_layer=1, n_head=2, n_embd=16, cond_dim=COND_DIM, context=8,
                                 dropout=0.0, text_dim=8)).eval()
    vq = VQVAE(VQVAEConfig(n_codes=16, code_dim=8, hidden=16)).eval()
    vq.q_up.codebook.normal_()
    vq.q_down.codebook.normal_()
    card = {"sampling": {"foot_lock": False, "beat_guidance": {"candidates": 4, "weight": 20.0}, "max_repeat": 3}}
    return DanceModel(vq=vq, gpt=gpt, card=card)


def _sequence(name: str, n_frames: int = 48) -> Sequence:
    t = np.arange(n_frames) / 30.0
    nxt = 0.1 + 0.5 * np.ceil((t - 0.1) / 0.5)
    music = MusicTrack(audio=np.zeros(0, np.float32), features=np.zeros((n_frames, 40), np.float32),
                       period_s=np.full(n_frames, 0.5), next_beat_s=nxt, bpm=np.full(n_frames, 120.0),
                       beats_s=0.1 + 0.5 * np.arange(4))
    return Sequence(name=name, upper=np.zeros((n_frames, 72), np.float32), lower=np.zeros((n_frames, 61), np.float32),
                    music=music, genre=11)


def test_guided_sequences_are_the_card_sampled_dances_with_their_conditioning() -> None:
    model = _model()
    seqs = [_sequence("indian04_x1.00_solo"), _sequence("take01_x1.00_d60", 40)]
    out = guided_sequences(model, seqs, seed=5)
    assert [o.name for o in out] == [s.name + GUIDED_SUFFIX for s in seqs]
    for i, (o, s) in enumerate(zip(out, seqs, strict=True)):
        n = s.n_frames // 4
        cond = sequence_conditions(s.music.features, s.music.period_s, s.music.next_beat_s, n)
        np.testing.assert_array_equal(o.cond, cond)
        ref = sample_dance(model, cond, 11, None, seed=5 + i)  # the card's sampling: beat-guided, guarded
        np.testing.assert_array_equal(o.up, ref.tokens_up)
        np.testing.assert_array_equal(o.down, ref.tokens_down)
        assert o.genre == 11 and o.text.shape == (8,) and not o.text.any()


def test_continue_run_needs_a_finished_run(tmp_path: Path) -> None:
    try:
        continue_run(tmp_path, tmp_path / "out")
    except FileNotFoundError as exc:
        assert "gpt.json" in str(exc)
    else:
        raise AssertionError("an empty folder is not a GPT run")

"""Beat-alignment distillation: guided dances become GPT training sequences; they make up a share of batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.models.conditioning import COND_DIM, sequence_conditions
from engine.models.dance_model import DanceModel
from engine.models.gpt import CrossCondGPT, GPTConfig
from engine.models.pose_repr import motion_to_vectors
from engine.models.vqvae import VQVAE, VQVAEConfig
from engine.train.beat_distill import (
    GUIDED_SUFFIX,
    Naturalness,
    Scored,
    continue_run,
    guided_sequences,
    load_dances,
    reencode,
    save_dances,
    scored_sequences,
    select_natural,
)
from engine.train.dataset import MusicTrack, Sequence
from engine.train.generate import sample_dance
from engine.train.train_gpt import TokenSequence
from tests.train.dance_helpers import stepping_motion


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


def _moving_sequence(name: str, n_frames: int = 160, seed: int = 0, bpm: float = 120.0) -> Sequence:
    """A take of a dancer swinging once per beat (tests/train/dance_helpers.stepping_motion) as model vectors."""
    s = _sequence(name, n_frames)
    up, low = motion_to_vectors(stepping_motion(n_frames / 30.0, 30.0, bpm, seed=seed))
    return Sequence(name=name, upper=up.astype(np.float32), lower=low.astype(np.float32), music=s.music, genre=s.genre)


def test_naturalness_is_zero_for_the_take_itself_and_sees_a_faster_dance() -> None:
    takes = [_moving_sequence("take01_x1.00_d60", seed=1), _moving_sequence("take02_x1.00_d60", seed=2)]
    nat = Naturalness(takes)
    d0, r0 = nat("take01_x1.00_d60", takes[0].upper, takes[0].lower)
    assert d0 < 1e-6 and abs(r0 - 1.0) < 1e-6
    fast = _moving_sequence("x", seed=1, bpm=240.0)  # the same swing at twice the tempo
    d1, r1 = nat("take01_x1.00_d60", fast.upper, fast.lower)
    assert d1 > 0.1 and r1 > 1.5


def test_select_natural_keeps_the_share_in_speed_first_then_closest() -> None:
    def sc(name: str, dist: float, ratio: float) -> Scored:
        z = np.zeros(3, np.int64)
        return Scored(TokenSequence(name, z, z, np.zeros((3, COND_DIM), np.float32), 1, np.zeros(8, np.float32), ""),
                      dist, ratio)

    ds = [sc("a", 0.5, 1.0), sc("b", 0.1, 2.0), sc("c", 0.3, 0.9), sc("d", 0.9, 1.1)]
    assert [d.seq.name for d in select_natural(ds, 0.5)] == ["c", "a"]
    assert [d.seq.name for d in select_natural(ds, 1.0)] == ["c", "a", "d", "b"]
    assert len(select_natural(ds, 0.01)) == 1


def test_scored_dances_pick_the_most_natural_candidate_and_survive_a_round_trip(tmp_path: Path) -> None:
    model = _model()
    seqs = [_moving_sequence("indian04_x1.00_solo", 48, seed=3)]
    one = scored_sequences(model, seqs, candidates=1, seed=10)  # candidate k of sequence 0 has seed 10 + k
    three = scored_sequences(model, seqs, candidates=3, seed=10)
    assert three[0].distance <= one[0].distance + 1e-12
    cond = sequence_conditions(seqs[0].music.features, seqs[0].music.period_s, seqs[0].music.next_beat_s, 12)
    ref = sample_dance(model, cond, 11, None, seed=10)
    np.testing.assert_array_equal(one[0].seq.up, ref.tokens_up)
    path = tmp_path / "d.npz"
    save_dances(path, three)
    back = load_dances(path)
    assert back[0].seq.name == three[0].seq.name and back[0].distance == three[0].distance
    np.testing.assert_array_equal(back[0].seq.down, three[0].seq.down)
    np.testing.assert_array_equal(back[0].seq.cond, three[0].seq.cond)


def test_reencode_gives_the_tokens_of_the_decoded_motion() -> None:
    model = _model()
    up, down = np.array([1, 5, 5, 9]), np.array([0, 2, 3, 3])
    with torch.no_grad():
        u, d = model.vq.decode(torch.from_numpy(up)[None], torch.from_numpy(down)[None])
        iu, idn = model.vq.encode(u, d)
    ru, rd = reencode(model.vq, u[0].numpy(), d[0].numpy())
    assert ru.shape == (4,) and rd.shape == (4,) and ru.dtype == np.int64
    np.testing.assert_array_equal(ru, iu[0].numpy())
    np.testing.assert_array_equal(rd, idn[0].numpy())

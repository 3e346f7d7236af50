"""Offline generation = the live generator at batch 1: plain sampling is the cached step + sampling; guided differs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models.beat_guidance import GuidanceConfig
from engine.models.conditioning import COND_DIM, sequence_conditions
from engine.models.dance_model import DanceModel
from engine.models.gpt import CrossCondGPT, GPTConfig, save_gpt
from engine.models.sampling import sample_tokens
from engine.models.vqvae import VQVAE, VQVAEConfig, save_vqvae
from engine.train.generate import decode_tokens, load_dance_model, sample_dance


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


def _model(foot_lock: bool = False) -> DanceModel:
    gpt, vq = _tiny()
    return DanceModel(vq=vq, gpt=gpt, card={"sampling": {"foot_lock": foot_lock}})


@torch.no_grad()
def _reference_plain(gpt: CrossCondGPT, cond: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain sampling written out: one cached GPT step per row, upper then lower token from one random stream."""
    cache = gpt.new_cache(1)
    gen = torch.Generator().manual_seed(seed)
    up, down = torch.tensor([gpt.cfg.bos_id]), torch.tensor([gpt.cfg.bos_id])
    c = torch.from_numpy(cond)
    ups, downs = [], []
    for t in range(len(cond)):
        lu, ld, _, _ = gpt.step(up, down, c[t : t + 1], torch.tensor([1]), torch.zeros(1, gpt.cfg.text_dim),
                                torch.tensor([t]), cache.k, cache.v, cache.kv_mask, inplace=True)
        up, down = sample_tokens(lu, 1.0, None, gen), sample_tokens(ld, 1.0, None, gen)
        ups.append(int(up[0]))
        downs.append(int(down[0]))
    return np.array(ups), np.array(downs)


def test_plain_sampling_is_the_cached_step_and_the_streaming_decode() -> None:
    m = _model()
    cond = _cond(20)
    d = sample_dance(m, cond, 1, seed=3, guidance=GuidanceConfig(candidates=0))
    ref_up, ref_down = _reference_plain(m.gpt, cond, 3)
    np.testing.assert_array_equal(d.tokens_up, ref_up)
    np.testing.assert_array_equal(d.tokens_down, ref_down)
    # The streaming decoder's frames are the full (non-streaming) decode of the same tokens.
    up, low = decode_tokens(m.vq, d.tokens_up, d.tokens_down)
    assert d.upper.shape == up.shape and d.lower.shape == low.shape
    np.testing.assert_allclose(d.upper, up, atol=1e-4)
    np.testing.assert_allclose(d.lower[:, :-4], low[:, :-4], atol=1e-4)
    assert d.root.shape == (80, 3) and d.quat.shape[0] == 80


def test_guided_with_one_candidate_is_plain_sampling() -> None:
    m = _model()
    cond = _cond(20)
    a = sample_dance(m, cond, 1, seed=3, guidance=GuidanceConfig(candidates=0))
    b = sample_dance(m, cond, 1, seed=3, guidance=GuidanceConfig(candidates=1))
    np.testing.assert_array_equal(a.tokens_up, b.tokens_up)
    np.testing.assert_array_equal(a.tokens_down, b.tokens_down)


def test_guided_sampling_stays_in_vocab_and_makes_other_choices() -> None:
    m = _model()
    cond = _cond(20)
    g = sample_dance(m, cond, 1, seed=3, guidance=GuidanceConfig(candidates=6, weight=5.0))
    up, down = g.tokens_up, g.tokens_down
    assert up.shape == down.shape == (20,)
    assert ((up >= 0) & (up < 16)).all() and ((down >= 0) & (down < 16)).all()
    plain = sample_dance(m, cond, 1, seed=3, guidance=GuidanceConfig(candidates=0))
    assert not np.array_equal(up, plain.tokens_up)  # the guided choices differ somewhere


def test_guided_select_sample_is_seeded_and_differs_from_argmax() -> None:
    """``select`` "sample" draws its choice from the performer's own stream: the same seed gives the same dance,
    and the choices are not argmax's."""
    m = _model()
    cond = _cond(20)
    cfg = GuidanceConfig(candidates=6, weight=5.0, select="sample")
    a = sample_dance(m, cond, 1, seed=3, guidance=cfg)
    b = sample_dance(m, cond, 1, seed=3, guidance=cfg)
    np.testing.assert_array_equal(a.tokens_up, b.tokens_up)
    np.testing.assert_array_equal(a.tokens_down, b.tokens_down)
    assert ((a.tokens_up >= 0) & (a.tokens_up < 16)).all() and ((a.tokens_down >= 0) & (a.tokens_down < 16)).all()
    g = sample_dance(m, cond, 1, seed=3, guidance=GuidanceConfig(candidates=6, weight=5.0))
    assert not (np.array_equal(a.tokens_up, g.tokens_up) and np.array_equal(a.tokens_down, g.tokens_down))


def _stuck_model_dir(tmp_path: Path, sampling: dict) -> Path:
    """A small model folder whose GPT strongly prefers one upper and one lower token (the freeze of
    docs/models.md: a GPT collapsing onto a repeated token), with ``sampling`` as its card's block."""
    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, dropout=0.0))
    with torch.no_grad():
        gpt.head_up.bias[5] += 9.0
        gpt.head_down.bias[7] += 9.0
    d = tmp_path / "model"
    save_gpt(gpt, d)
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16))
    vq.q_up.codebook.normal_()
    vq.q_down.codebook.normal_()
    save_vqvae(vq, d)
    (d / "model.json").write_text(json.dumps({"sampling": sampling}))
    return d


def _longest_run(tokens: np.ndarray) -> int:
    best = run = 1
    for a, b in itertools.pairwise(tokens):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best


def _live_tokens(model_dir: Path, cond: np.ndarray, seed: int, max_repeat: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The live generator the runtime builds from the folder (engine.runtime.assemble), stepped row by row."""
    from engine.models.gpt_dancer import DanceGenerator
    from engine.models.staging import StagedModel
    from engine.runtime.assemble import ModelSpec, build_model

    model = build_model(ModelSpec(model=model_dir, backend="torch", decode="torch", seed=seed, max_repeat=max_repeat))
    assert isinstance(model, StagedModel)  # every kind is staged; the tokens are the inner generator's
    gen = model.inner
    assert isinstance(gen, DanceGenerator)
    p = gen.get(gen.performer_ids()[0])
    ups, downs = [], []
    for row in cond:
        model.step(row)
        ups.append(int(p.tok_up[-1]))
        downs.append(int(p.tok_down[-1]))
    return np.array(ups), np.array(downs)


@pytest.mark.parametrize("guidance", [None, {"candidates": 8, "weight": 20.0}])
def test_repeat_guard_is_the_same_offline_and_live(tmp_path: Path, guidance: dict | None) -> None:
    d = _stuck_model_dir(tmp_path, {"max_repeat": 3, "beat_guidance": guidance})
    model = load_dance_model(d)
    assert model.max_repeat == 3
    cond = _cond(40)
    got = sample_dance(model, cond, 1, None, seed=5)
    up, down = got.tokens_up, got.tokens_down
    assert _longest_run(up) <= 3 and _longest_run(down) <= 3
    live_up, live_down = _live_tokens(d, cond, seed=5)
    np.testing.assert_array_equal(up, live_up)
    np.testing.assert_array_equal(down, live_down)
    # Without the guard (override 0) the same GPT holds its favourite tokens much longer, offline and live.
    free = sample_dance(model, cond, 1, None, seed=5, max_repeat=0)
    free_up, free_down = free.tokens_up, free.tokens_down
    assert _longest_run(free_up) > 3 and _longest_run(free_down) > 3
    live_free = _live_tokens(d, cond, seed=5, max_repeat=0)
    np.testing.assert_array_equal(free_up, live_free[0])
    np.testing.assert_array_equal(free_down, live_free[1])


def test_a_card_without_max_repeat_samples_unguarded(tmp_path: Path) -> None:
    d = _stuck_model_dir(tmp_path, {"beat_guidance": None})
    model = load_dance_model(d)
    assert model.max_repeat is None
    cond = _cond(40)
    got = sample_dance(model, cond, 1, None, seed=5)
    up, down = got.tokens_up, got.tokens_down
    ref = _reference_plain(model.gpt, cond, 5)  # plain sampling written out, without any guard
    np.testing.assert_array_equal(up, ref[0])
    np.testing.assert_array_equal(down, ref[1])
    assert _longest_run(up) > 3  # the stuck GPT repeats freely: nothing masked
    live = _live_tokens(d, cond, seed=5)
    np.testing.assert_array_equal(up, live[0])
    np.testing.assert_array_equal(down, live[1])


def test_repeat_guard_survives_a_rewind() -> None:
    """After a rewind the guard still sees the kept tokens: a kept full run is not extended."""
    from engine.models.gpt_dancer import DanceGenerator
    from export.torch_backend import TorchBackend

    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, dropout=0.0)).eval()
    with torch.no_grad():
        gpt.head_up.bias[3] += 9.0  # token 3 drawn ~95 % of the time unless masked
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    gen = DanceGenerator(TorchBackend(gpt, capacity=1, device="cpu"), vq, seed=1, max_repeat=2)
    p = gen.get(gen.add_performer())
    cond = _cond(40)
    t = 0
    while t < 30 and not (t >= 4 and p.tok_up[-1] == p.tok_up[-2] == 3):
        gen.step(cond[t])
        t += 1
    assert p.tok_up[-1] == p.tok_up[-2] == 3  # a full run of the favourite token
    for _ in range(3):
        gen.step(cond[t])
        t += 1
    gen.rewind(p.pid, 3)
    assert p.tok_up[-1] == p.tok_up[-2] == 3  # the run is what the history ends with again
    gen.step(cond[t])
    assert p.tok_up[-1] != 3
def test_rewinding_the_whole_dance_restarts_from_bos() -> None:
    """Rewound to position 0, a performer's next step reads BOS (as a fresh one's first step), not the filler."""
    from engine.models.gpt_dancer import DanceGenerator
    from export.torch_backend import TorchBackend

    gpt, vq = _tiny()
    with torch.no_grad():  # BOS reads very differently from the filler token 0, so the first draws differ
        gpt.emb_up.weight[gpt.cfg.bos_id] = 3.0 * torch.randn(gpt.cfg.n_embd)
        gpt.emb_down.weight[gpt.cfg.bos_id] = 3.0 * torch.randn(gpt.cfg.n_embd)
        gpt.head_up.weight *= 100.0  # sharp logits: a different input draws a different token
        gpt.head_down.weight *= 100.0
    cond = _cond(12)
    fresh = DanceGenerator(TorchBackend(gpt, capacity=1, device="cpu"), vq, seed=3)
    f = fresh.get(fresh.add_performer())
    for t in range(4):
        fresh.step(cond[t])
    gen = DanceGenerator(TorchBackend(gpt, capacity=1, device="cpu"), vq, seed=3)
    p = gen.get(gen.add_performer())
    for t in range(5):
        gen.step(cond[t])
    gen.rewind(p.pid, 5)
    assert p.n_tokens == 0 and p.state.pos == 0 and p.state.prev_up == gpt.cfg.bos_id
    p.rng.manual_seed(p.seed)  # the same random stream as the fresh performer's
    for t in range(4):
        gen.step(cond[t])
    np.testing.assert_array_equal(p.tok_up[-4:], f.tok_up[-4:])
    np.testing.assert_array_equal(p.tok_down[-4:], f.tok_down[-4:])


def test_keyframe_arguments_parse_or_say_the_form() -> None:
    import pytest

    from engine.train.generate import KeyframeSpec

    k = KeyframeSpec.parse("poses/a@b.bvh@2.5")
    assert (str(k.path), k.seconds, k.joints) == ("poses/a@b.bvh", 2.5, "all")
    assert KeyframeSpec.parse("p.bvh@4:upper").joints == "upper"
    assert KeyframeSpec.parse("p.bvh@0:lower").seconds == 0.0
    for bad, why in (("p.bvh", "expected POSE.bvh@SECONDS"), ("p.bvh@x", "not a number"),
                     ("p.bvh@-1", ">= 0"), ("p.bvh@2:arms", "upper or lower"), ("@3", "expected")):
        with pytest.raises(ValueError, match=why):
            KeyframeSpec.parse(bad)


def test_a_keyframe_pose_comes_from_the_first_frame_with_the_feet_on_the_floor() -> None:
    from pathlib import Path

    from engine.models.pose_repr import foot_points, metric_cmu_skeleton
    from engine.skeleton import rotations as R
    from engine.train.generate import keyframe_pose

    f = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cmu_salsa" / "60_01_scaled.bvh"
    if not f.is_file():
        import pytest

        pytest.skip("shared CMU data not present")
    root, quat = keyframe_pose(f)
    assert quat.shape == (43, 4) and 0.7 < root[1] < 1.2  # a standing adult's hip height in metres
    feet = foot_points(metric_cmu_skeleton(), root[None], R.quat_to_matrix(quat)[None])
    assert abs(float(feet[..., 1].min())) < 1e-9

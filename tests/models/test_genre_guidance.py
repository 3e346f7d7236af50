"""Classifier-free guidance on the genre in the one sampler offline and live share (gpt_dancer)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models.conditioning import TEXT_DIM, genre_id, sequence_conditions
from engine.models.gpt import CrossCondGPT, GPTConfig, save_gpt
from engine.models.gpt_dancer import DanceGenerator, cache_rows
from engine.models.protocol import Controls
from engine.models.sampling import genre_guidance_scale, guide_logits
from engine.models.vqvae import VQVAE, VQVAEConfig, save_vqvae
from engine.train.generate import load_dance_model, sample_dance
from export.torch_backend import TorchBackend


def _cond(n_tokens: int, period: float = 0.5, first_beat: float = 0.1) -> np.ndarray:
    n = 4 * n_tokens
    t = np.arange(n) / 30.0
    nxt = first_beat + period * np.ceil((t - first_beat) / period)
    feats = np.random.default_rng(0).normal(size=(n, 40)).astype(np.float32)
    return sequence_conditions(feats, np.full(n, period), nxt, n_tokens)


def _gpt_vq() -> tuple[CrossCondGPT, VQVAE]:
    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, dropout=0.0)).eval()
    with torch.no_grad():  # make the genre rows matter: random embeddings of a visible size
        gpt.genre_emb.weight.normal_(0.0, 1.0)
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    vq.q_up.codebook.normal_()
    vq.q_down.codebook.normal_()
    return gpt, vq


def _model_dir(tmp_path: Path, sampling: dict) -> Path:
    gpt, vq = _gpt_vq()
    d = tmp_path / "model"
    save_gpt(gpt, d)
    save_vqvae(vq, d)
    (d / "model.json").write_text(json.dumps({"sampling": sampling}))
    return d


def test_guide_logits_and_scale() -> None:
    c = torch.tensor([[1.0, 2.0, -3.0]])
    u = torch.tensor([[0.5, 2.5, -1.0]])
    assert torch.equal(guide_logits(c, u, 1.0), c)
    assert torch.equal(guide_logits(c, u, 0.0), u)
    assert torch.allclose(guide_logits(c, u, 3.0), torch.tensor([[2.0, 1.0, -7.0]]))
    assert genre_guidance_scale(None) is None and genre_guidance_scale(1.0) is None
    assert genre_guidance_scale(2) == 2.0 and genre_guidance_scale(0) == 0.0
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="genre guidance"):
            genre_guidance_scale(bad)
    assert cache_rows(3, None) == 3 and cache_rows(3, 1.0) == 3 and cache_rows(3, 2.5) == 6


def _run(gen: DanceGenerator, cond: np.ndarray, script: list[tuple[str, int]]) -> list[tuple[int, int, int]]:
    """Step / rewind / reset / remove the generator's performers; (pid, up, down) of every committed token."""
    out, t = [], 0
    for op, n in script:
        if op == "step":
            for _ in range(n):
                frames = gen.step(cond[t % len(cond)])
                t += 1
                out += [(f.pid, int(gen.get(f.pid).tok_up[-1]), int(gen.get(f.pid).tok_down[-1])) for f in frames]
        elif op == "rewind":
            gen.rewind(gen.performer_ids()[0], n)
        elif op == "reset":
            gen.reset(gen.performer_ids()[-1])
        elif op == "remove":
            gen.remove_performer(n)
    return out


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Record the logits every draw of the generator sees."""
    import engine.models.gpt_dancer as gd

    seen: list[torch.Tensor] = []
    real = gd.sample_tokens

    def record(logits: torch.Tensor, *args: object, **kw: object) -> torch.Tensor:
        seen.append(logits.detach().clone())
        return real(logits, *args, **kw)  # type: ignore[arg-type]

    real_rows = gd.sample_rows

    def record_rows(up: torch.Tensor, down: torch.Tensor, *args: object) -> tuple[np.ndarray, np.ndarray]:
        seen.extend((up.detach().clone(), down.detach().clone()))
        return real_rows(up, down, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(gd, "sample_tokens", record)
    monkeypatch.setattr(gd, "sample_rows", record_rows)
    return seen


@pytest.mark.parametrize(("max_repeat", "text_share", "baseline"),
                         [(None, 0.0, False), (2, 0.0, False), (2, 1.0, False), (2, 0.0, True)])
def test_scale_zero_is_the_unconditional_model_through_rewind_reset_and_removal(
        max_repeat: int | None, text_share: float, baseline: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """s = 0 draws from the unconditional row alone: exactly a plain generator asked for genre "none" without
    text (with the text when the unconditional row carries it: ``text_share`` 1; with the text baseline when there
    is one). That holds only while the unconditional rows see the same tokens, positions, rewinds, resets and row
    moves as the conditional ones."""
    gpt, vq = _gpt_vq()
    cond = _cond(24)
    text = np.random.default_rng(1).normal(size=TEXT_DIM).astype(np.float32)
    base = np.random.default_rng(2).normal(size=TEXT_DIM).astype(np.float32) if baseline else None
    script = [("step", 7), ("rewind", 3), ("step", 4), ("reset", 0), ("step", 5), ("remove", 0), ("step", 6),
              ("rewind", 2), ("step", 3)]
    guided = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 0.0), device="cpu"), vq, seed=4,
                            genre_guidance=0.0, max_repeat=max_repeat, text_share=text_share, text_baseline=base)
    plain = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, seed=4, max_repeat=max_repeat)
    for _ in range(2):
        guided.add_performer(Controls(genre=3, text=text))
        plain.add_performer(Controls(genre=0, text=text if text_share == 1.0 else base))
    seen = _recording(monkeypatch)
    a = _run(guided, cond, script)
    seen_guided = list(seen)
    seen.clear()
    b = _run(plain, cond, script)
    assert a == b
    assert len(seen_guided) == len(seen) > 0
    for x, y in zip(seen_guided, seen, strict=True):  # the very distributions, not only the tokens drawn
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
    for p in guided.performers:
        assert p.uncond is not None and p.uncond.pos == p.state.pos
        assert p.uncond.row == p.state.row + 1  # the pair stays interleaved after a removal (contiguous step)
        assert (p.uncond.prev_up, p.uncond.prev_down) == (p.state.prev_up, p.state.prev_down)
    # The same performers with their genre and text (no guidance) dance differently: the rows carry the genre.
    cond_only = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, seed=4, max_repeat=max_repeat)
    for _ in range(2):
        cond_only.add_performer(Controls(genre=3, text=text))
    assert _run(cond_only, cond, script) != a


def test_keyframes_reach_both_rows() -> None:
    gpt, vq = _gpt_vq()
    guided = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, seed=0, genre_guidance=2.0)
    p = guided.get(guided.add_performer(Controls(genre=1)))
    assert p.uncond is not None
    root, quat = guided.idle_pose()
    guided.set_keyframe(p.pid, 8, root, quat)
    assert p.state.keyframes == p.uncond.keyframes == 1
    cond = _cond(6)
    for row in cond:
        guided.step(row)
    assert p.state.keyframes == p.uncond.keyframes == 0  # passed: cleared on both rows
    with pytest.raises(RuntimeError, match="full"):
        guided.add_performer()


@pytest.mark.parametrize("beat", [None, {"candidates": 8, "weight": 20.0}])
def test_offline_equals_live_with_genre_guidance(tmp_path: Path, beat: dict | None) -> None:
    from engine.runtime.assemble import ModelSpec, build_model

    d = _model_dir(tmp_path, {"genre_guidance": 3.0, "max_repeat": 3, "beat_guidance": beat})
    model = load_dance_model(d)
    assert model.genre_guidance == 3.0
    cond = _cond(30)
    offline = sample_dance(model, cond, 1, None, seed=5)
    up, down = offline.tokens_up, offline.tokens_down
    staged = build_model(ModelSpec(model=d, backend="torch", decode="torch", seed=5, genre="salsa"))
    gen = getattr(staged, "inner", staged)  # every kind is staged; the tokens are the inner generator's
    assert isinstance(gen, DanceGenerator) and gen.genre_guidance == 3.0
    p = gen.get(gen.performer_ids()[0])
    live = []
    for row in cond:
        gen.step(row)
        live.append((int(p.tok_up[-1]), int(p.tok_down[-1])))
    assert [(int(u), int(w)) for u, w in zip(up, down, strict=True)] == live
    # Guidance changes the draw: the same seed without it (override 1) samples other tokens.
    off = sample_dance(model, cond, 1, None, seed=5, genre_guidance=1.0)
    assert not np.array_equal(off.tokens_up, up)


def test_scale_one_and_a_card_without_the_key_sample_as_before(tmp_path: Path) -> None:
    cond = _cond(30)
    without = load_dance_model(_model_dir(tmp_path / "a", {}))
    one = load_dance_model(_model_dir(tmp_path / "b", {"genre_guidance": 1.0}))
    assert without.genre_guidance is None and one.genre_guidance is None
    ref = sample_dance(without, cond, 1, None, seed=5)  # no genre guidance anywhere
    for m, gg in ((without, 1.0), (one, None), (one, 1.0)):
        d = sample_dance(m, cond, 1, None, seed=5, genre_guidance=gg)
        np.testing.assert_array_equal(d.tokens_up, ref.tokens_up)
        np.testing.assert_array_equal(d.tokens_down, ref.tokens_down)
    # An explicit scale of 1 in the live generator is no guidance either: one cache row per performer.
    gpt, vq = _gpt_vq()
    gen = DanceGenerator(TorchBackend(gpt, capacity=1, device="cpu"), vq, seed=5, genre_guidance=1.0)
    p = gen.get(gen.add_performer(Controls(genre=1)))
    assert p.uncond is None and gen.genre_guidance is None
    plain = DanceGenerator(TorchBackend(gpt, capacity=1, device="cpu"), vq, seed=5)
    q = plain.get(plain.add_performer(Controls(genre=1)))
    for row in cond:
        gen.step(row)
        plain.step(row)
        assert (p.state.prev_up, p.state.prev_down) == (q.state.prev_up, q.state.prev_down)


def test_a_text_baseline_changes_nothing_without_a_text() -> None:
    """The baseline rides in the unconditional row only while a performer has a text: textless dances are the
    same token for token, and a text dances differently with and without it."""
    gpt, vq = _gpt_vq()
    cond = _cond(12)
    base = np.random.default_rng(2).normal(size=TEXT_DIM).astype(np.float32)
    text = np.random.default_rng(1).normal(size=TEXT_DIM).astype(np.float32)

    def run(baseline: np.ndarray | None, txt: np.ndarray | None) -> list[tuple[int, int, int]]:
        g = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(1, 3.0), device="cpu"), vq, seed=4,
                           genre_guidance=3.0, text_share=0.0, text_baseline=baseline)
        g.add_performer(Controls(genre=3, text=txt))
        return _run(g, cond, [("step", 12)])

    assert run(base, None) == run(None, None)
    assert run(base, text) != run(None, text)


def test_offline_equals_live_with_the_text_term(tmp_path: Path) -> None:
    """Beat guidance's text term (``text_weight``, a prompt matched to caption attributes) steers the offline
    render and the live generator alike, and under genre guidance the text enters the guided rows the same way
    (attribute models: the unconditional row carries the phrase baseline, not the text)."""
    from engine.models.text_prompts import prompt_embedder
    from engine.runtime.assemble import ModelSpec, build_model

    d = _model_dir(tmp_path, {"text_prompts": "attributes", "beat_guidance": {"candidates": 8, "text_weight": 2.0},
                              "genre_guidance": 3.0, "text_baseline": "phrases"})
    model = load_dance_model(d)
    cond = _cond(12)
    text = prompt_embedder("attributes")(["spinning"])[0]
    offline = sample_dance(model, cond, 1, text, seed=5)
    staged = build_model(ModelSpec(model=d, backend="torch", decode="torch", seed=5, genre="salsa", text="spinning"))
    gen = getattr(staged, "inner", staged)
    assert isinstance(gen, DanceGenerator)
    p = gen.get(gen.performer_ids()[0])
    live = []
    for row in cond:
        gen.step(row)
        live.append((int(p.tok_up[-1]), int(p.tok_down[-1])))
    assert [(int(u), int(w)) for u, w in zip(offline.tokens_up, offline.tokens_down, strict=True)] == live
    assert gen.guided_tokens == len(cond)  # every token steered by the text
    off = sample_dance(model, cond, 1, text, seed=5, guidance=model.beat_guidance.with_text_weight(0.0))
    assert not np.array_equal(off.tokens_up, offline.tokens_up) or not np.array_equal(off.tokens_down,
                                                                                    offline.tokens_down)


def test_a_dance_start_boosts_the_genre_guidance(guidance_scales: list[list[float]]) -> None:
    """``start_boost`` (f, n): a performer's first n tokens from BOS (added, or reset) are drawn at f x the scale, its
    own rows only; a genre switch boosts by the switch's factor; a rewind into the boosted steps remakes them boosted
    with the same draws; off by default (the first steps at the plain scale)."""
    gpt, vq = _gpt_vq()
    cond = _cond(16)
    scales = guidance_scales
    gen = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 2.0), device="cpu"), vq, seed=0,
                         genre_guidance=2.0, start_boost=(3.0, 2), switch_boost=(4.0, 1))
    a = gen.add_performer(Controls(genre=1))
    for row in cond[:3]:
        gen.step(row)
    b = gen.add_performer(Controls(genre=1))
    for t, row in enumerate(cond[3:7]):
        if t == 3:
            gen.set_genre(a, 2)
        gen.step(row)
    gen.reset(b)
    gen.step(cond[7])
    assert scales[0::2] == ([[6.0]] * 2 + [[2.0]] + [[2.0, 6.0]] * 2 + [[2.0, 2.0]] + [[8.0, 2.0]]
                            + [[2.0, 6.0]])
    # a rewind into the boosted start remakes it boosted, with the same draws
    scales.clear()
    gen.reset(b)
    states, made = [], []
    for t in range(3):
        states.append(gen.get(b).rng.get_state())
        gen.step(cond[8 + t], [b])
        made.append((int(gen.get(b).tok_up[-1]), int(gen.get(b).tok_down[-1])))
    gen.rewind(b, 2)
    gen.get(b).rng.set_state(states[1])
    again = made[:1]
    for t in (1, 2):
        gen.step(cond[8 + t], [b])
        again.append((int(gen.get(b).tok_up[-1]), int(gen.get(b).tok_down[-1])))
    assert again == made
    assert scales[0::2] == [[6.0], [6.0], [2.0], [6.0], [2.0]]
    # off by default: the first steps at the card's scale
    scales.clear()
    plain = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(1, 2.0), device="cpu"), vq, seed=0,
                           genre_guidance=2.0)
    plain.add_performer(Controls(genre=1))
    for row in cond[:3]:
        plain.step(row)
    assert scales[0::2] == [[2.0]] * 3
    # only the genres named: a performer of another genre starts at the plain scale
    scales.clear()
    some = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 2.0), device="cpu"), vq, seed=0,
                          genre_guidance=2.0, start_boost=(3.0, 2), start_genres=[2])
    some.add_performer(Controls(genre=1))
    some.add_performer(Controls(genre=2))
    for row in cond[:3]:
        some.step(row)
    assert scales[0::2] == [[2.0, 6.0]] * 2 + [[2.0, 2.0]]
    with pytest.raises(ValueError, match="start_boost"):
        DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, start_boost=(0.0, 2))


def test_the_cards_genre_start_reaches_the_live_and_offline_generator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, generators_made: list[DanceGenerator]) -> None:
    """``sampling.genre_start`` configures the generator ``play``/``live`` build and the offline one alike; absent,
    the default (off)."""
    import engine.models.gpt_dancer as gd
    from engine.runtime.assemble import ModelSpec, build_model

    d = _model_dir(tmp_path / "a", {"genre_guidance": 2.0, "genre_start": {"boost": 3.0, "boost_tokens": 5}})
    assert load_dance_model(d).generator_options() == {"start_boost": (3.0, 5)}
    some = _model_dir(tmp_path / "c", {"genre_guidance": 2.0,
                                       "genre_start": {"boost": 3.0, "boost_tokens": 5, "genres": ["indian", "salsa"]}})
    assert load_dance_model(some).generator_options() == {"start_boost": (3.0, 5),
                                                          "start_genres": [genre_id("indian"), genre_id("salsa")]}
    g = build_model(ModelSpec(model=some, backend="torch", decode="torch")).inner  # type: ignore[attr-defined]
    assert g.start_genres == {genre_id("indian"), genre_id("salsa")}
    assert build_model(ModelSpec(model=d, backend="torch", decode="torch")).inner.start_boost == (3.0, 5)  # type: ignore[attr-defined]
    made = generators_made
    made.clear()  # only the offline generation's generator from here
    sample_dance(load_dance_model(d), _cond(2), 1)
    monkeypatch.undo()
    assert made[0].start_boost == (3.0, 5)
    plain = build_model(ModelSpec(model=_model_dir(tmp_path / "b", {}), backend="torch", decode="torch"))
    assert plain.inner.start_boost == gd.START_BOOST == (1.0, 0)  # type: ignore[attr-defined]


def test_a_couples_leader_takes_the_cards_couple_genre_start(tmp_path: Path) -> None:
    """``couple.genre_start`` replaces ``sampling.genre_start`` for a couple's leader only: the solo dance keeps the
    solo boost; a card without it gives the leader the solo's."""
    from engine.runtime.assemble import ModelSpec, build_model, gpt_generator

    sampling = {"genre_guidance": 2.0, "genre_start": {"boost": 3.0, "boost_tokens": 5, "genres": ["salsa"]}}
    d = _model_dir(tmp_path / "a", sampling)
    card = json.loads((d / "model.json").read_text())
    card["couple"] = {"genre_start": {"boost": 1.0, "boost_tokens": 0}}
    (d / "model.json").write_text(json.dumps(card))
    dm = load_dance_model(d)
    assert dm.generator_options(couple=True) == {"start_boost": (1.0, 0)}
    assert dm.generator_options() == {"start_boost": (3.0, 5), "start_genres": [genre_id("salsa")]}
    spec = ModelSpec(model=d, backend="torch", decode="torch")
    assert gpt_generator(spec, 1, couple=True)[0].start_boost == (1.0, 0)
    assert build_model(spec).inner.start_boost == (3.0, 5)  # type: ignore[attr-defined]
    same = _model_dir(tmp_path / "b", sampling)
    assert gpt_generator(replace(spec, model=same), 1, couple=True)[0].start_boost == (3.0, 5)

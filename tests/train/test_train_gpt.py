"""GPT training loop: early stopping, caption/energy labels per window, keyframe windows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models.conditioning import ENERGY_DIMS, TEXT_DIM, control_vector
from engine.models.gpt import GPT_PRESETS, CrossCondGPT, load_gpt, save_gpt
from engine.train.train_gpt import (
    CHUNK_TOKENS,
    GPTTrainConfig,
    TokenSequence,
    init_from_gpt,
    sample_batch,
    train_gpt,
)

TINY = replace(GPT_PRESETS["tiny"], text_dim=TEXT_DIM)  # validation runs without text: zeros of TEXT_DIM


def _seqs(n: int, seed: int) -> list[TokenSequence]:
    cfg = TINY
    rng = np.random.default_rng(seed)
    return [
        TokenSequence(name=f"take{i:02d}_x1.00_d60", up=rng.integers(0, cfg.vocab_size, 20),
                      down=rng.integers(0, cfg.vocab_size, 20),
                      cond=rng.standard_normal((20, cfg.cond_dim)).astype(np.float32), genre=1,
                      text=np.zeros(cfg.text_dim, np.float32), caption="")
        for i in range(n)
    ]


def test_keep_best_restores_the_lowest_validation_loss(tmp_path: Path) -> None:
    cfg = GPTTrainConfig(steps=6, batch=2, warmup=1, threads=1, cond_channels="all", text_dropout=0.0, log_every=2,
                         ckpt_every=3, val_every=2, keep_best=True)
    rep = train_gpt(_seqs(3, 0), _seqs(2, 1), tmp_path, cfg, TINY, progress=False)
    losses = [v["val_loss"] for v in rep["val_history"]]
    assert len(losses) == 3
    assert rep["best"]["step"] == rep["val_history"][int(np.argmin(losses))]["step"]
    assert (tmp_path / "gpt.safetensors").read_bytes() == (tmp_path / "best" / "gpt.safetensors").read_bytes()


def test_without_keep_best_the_last_weights_stay(tmp_path: Path) -> None:
    cfg = GPTTrainConfig(steps=2, batch=2, warmup=1, threads=1, cond_channels="all", text_dropout=0.0, val_every=2)
    rep = train_gpt(_seqs(2, 0), _seqs(1, 1), tmp_path, cfg, TINY, progress=False)
    assert "best" not in rep
    assert not (tmp_path / "best").exists()


def _labelled(n_tokens: int = 40) -> TokenSequence:
    rng = np.random.default_rng(3)
    chunks = (n_tokens + CHUNK_TOKENS - 1) // CHUNK_TOKENS
    return TokenSequence(
        name="indian04_x1.00_solo", up=rng.integers(0, 16, n_tokens), down=rng.integers(0, 16, n_tokens),
        cond=np.zeros((n_tokens, 12), np.float32), genre=11, text=np.zeros(TEXT_DIM, np.float32), caption="",
        chunk_text=rng.standard_normal((chunks, 2, TEXT_DIM)).astype(np.float32),
        chunk_captions=tuple("c" for _ in range(2 * chunks)),
        chunk_energy=np.linspace(0.0, 1.0, chunks).astype(np.float32),
    )


def test_windows_carry_their_chunk_energy_and_caption() -> None:
    d = _labelled()
    gcfg = replace(GPT_PRESETS["tiny"], vocab_size=16, text_dim=TEXT_DIM + ENERGY_DIMS)
    cfg = GPTTrainConfig(batch=32, text_dropout=0.0, energy_dropout=0.0, token_noise=0.0, cond_channels="all")
    b = sample_batch([d], cfg, gcfg, np.random.default_rng(0))
    for row, s in zip(b["text"].numpy(), b["pos0"].numpy(), strict=True):
        c = min(round(s / CHUNK_TOKENS), len(d.chunk_energy) - 1)
        assert row[TEXT_DIM:] == pytest.approx([2 * (d.chunk_energy[c] - 0.5), 1.0])
        assert any(np.allclose(row[:TEXT_DIM], d.chunk_text[c, k]) for k in range(2))
    dropped = sample_batch([d], replace(cfg, text_dropout=1.0, energy_dropout=1.0), gcfg, np.random.default_rng(0))
    assert not dropped["text"].any()
    no_energy = sample_batch([d], cfg, replace(gcfg, text_dim=TEXT_DIM), np.random.default_rng(0))
    assert no_energy["text"].shape[1] == TEXT_DIM


def test_keyframe_windows_pin_a_real_later_token() -> None:
    d = _labelled()
    gcfg = replace(GPT_PRESETS["tiny"], vocab_size=16)
    cfg = GPTTrainConfig(batch=32, keyframe_prob=1.0, cond_channels="all")
    b = sample_batch([d], cfg, gcfg, np.random.default_rng(1))
    assert bool(b["kf_mask"].all())
    for s, j, u, dn in zip(b["pos0"].numpy(), b["kf_pos"][:, 0].numpy(), b["kf_up"][:, 0].numpy(),
                           b["kf_down"][:, 0].numpy(), strict=True):
        assert s + 2 <= j < s + gcfg.context
        assert (u, dn) == (d.up[j], d.down[j])
    none = sample_batch([d], replace(cfg, keyframe_prob=0.0), gcfg, np.random.default_rng(1))
    assert not bool(none["kf_mask"].any())


def test_training_with_energy_and_keyframes_runs(tmp_path: Path) -> None:
    gcfg = replace(GPT_PRESETS["tiny"], vocab_size=16, text_dim=TEXT_DIM + ENERGY_DIMS)
    cfg = GPTTrainConfig(steps=2, batch=4, warmup=1, threads=1, cond_channels="all", keyframe_prob=0.5, val_every=2)
    rep = train_gpt([_labelled()], [_labelled(20)], tmp_path, cfg, gcfg, progress=False)
    assert np.isfinite(rep["val_history"][-1]["val_loss"])


def test_true_phase_windows_read_the_grid_conditioning() -> None:
    seqs = _seqs(2, 0)
    for d in seqs:
        d.cond_grid = d.cond + 100.0  # tell the two apart
    for share, want in ((1.0, True), (0.0, False)):
        cfg = GPTTrainConfig(batch=8, cond_channels="all", token_noise=0.0, true_phase=share)
        b = sample_batch(seqs, cfg, TINY, np.random.default_rng(0))
        assert bool((b["cond"] > 50).all()) is want


def test_caption_embeddings_come_from_the_cache_file(tmp_path: Path) -> None:
    from engine.train.train_gpt import embed_cached

    cache = tmp_path / "emb.npz"
    vecs = np.arange(2 * TEXT_DIM, dtype=np.float32).reshape(2, TEXT_DIM)
    np.savez(cache, texts=np.array(["a calm salsa", "arms high"]), emb=vecs)
    got = embed_cached(["arms high", "a calm salsa"], cache)  # all cached: the sentence model is not needed
    np.testing.assert_array_equal(got["arms high"], vecs[1])
    np.testing.assert_array_equal(got["a calm salsa"], vecs[0])


def _logits(model: CrossCondGPT, text: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    cfg = model.cfg
    up = torch.randint(0, cfg.vocab_size, (2, 6), generator=g)
    down = torch.randint(0, cfg.vocab_size, (2, 6), generator=g)
    cond = torch.randn(2, 6, cfg.cond_dim, generator=g)
    genre = torch.tensor([1, 2])
    with torch.no_grad():
        return model.eval()(up, down, cond, genre, torch.from_numpy(np.stack([text, text])))


def test_init_from_a_gpt_without_energy_starts_as_that_gpt(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = CrossCondGPT(replace(TINY, vocab_size=16))
    save_gpt(src, tmp_path / "src")
    src = load_gpt(tmp_path / "src")
    new = CrossCondGPT(replace(TINY, vocab_size=16, text_dim=TEXT_DIM + ENERGY_DIMS, dropout=0.3))
    rep = init_from_gpt(new, tmp_path / "src")
    assert rep["widened_text_dim"] == [TEXT_DIM, TEXT_DIM + ENERGY_DIMS]
    sentence = np.random.default_rng(2).standard_normal(TEXT_DIM).astype(np.float32)
    for text in (sentence, np.zeros(TEXT_DIM, np.float32)):
        want = _logits(src, text)
        got = _logits(new, control_vector(text, None, TEXT_DIM + ENERGY_DIMS))  # energy entries [0, 0]
        for w, o in zip(want, got, strict=True):
            torch.testing.assert_close(o, w, rtol=1e-6, atol=1e-6)  # a wider matmul may round differently
    assert not new.text_proj.weight[:, TEXT_DIM:].any()  # so an energy changes nothing until trained
    for w, o in zip(_logits(src, sentence), _logits(new, control_vector(sentence, 0.9, TEXT_DIM + ENERGY_DIMS)),
                    strict=True):
        torch.testing.assert_close(o, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("change", [{"n_layer": 3}, {"vocab_size": 32}, {"text_dim": TEXT_DIM + 5}])
def test_init_from_a_gpt_of_another_shape_is_refused(tmp_path: Path, change: dict) -> None:
    save_gpt(CrossCondGPT(replace(TINY, vocab_size=16)), tmp_path / "src")
    new = CrossCondGPT(replace(TINY, **{"vocab_size": 16, **change}))
    with pytest.raises(ValueError, match="shape differs") as err:
        init_from_gpt(new, tmp_path / "src")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="init_from"):
        init_from_gpt(new, tmp_path / "missing")


def test_training_from_init_from_starts_at_the_source_validation(tmp_path: Path) -> None:
    cfg = GPTTrainConfig(steps=2, batch=2, warmup=1, threads=1, cond_channels="all", text_dropout=0.0, val_every=2)
    first = train_gpt(_seqs(2, 0), _seqs(1, 1), tmp_path / "a", cfg, TINY, progress=False)
    ft = replace(cfg, init_from=str(tmp_path / "a"))
    rep = train_gpt(_seqs(2, 0), _seqs(1, 1), tmp_path / "b", ft, TINY, progress=False)
    assert rep["init_from"]["val_at_start"]["val_loss"] == pytest.approx(first["val_history"][-1]["val_loss"])
    assert rep["step"] == 2


def test_train_only_changes_only_the_named_parameters(tmp_path: Path) -> None:
    cfg = GPTTrainConfig(steps=2, batch=2, warmup=1, threads=1, cond_channels="all", text_dropout=0.0, val_every=2)
    seqs = _seqs(2, 0)
    for d in seqs:
        d.text = np.ones(TINY.text_dim, np.float32)  # a text in every window, so text_proj gets a gradient
    train_gpt(seqs, _seqs(1, 1), tmp_path / "a", cfg, TINY, progress=False)
    ft = replace(cfg, init_from=str(tmp_path / "a"), train_only=("text_proj",), lr=1e-2)
    train_gpt(seqs, _seqs(1, 1), tmp_path / "b", ft, TINY, progress=False)
    a, b = load_gpt(tmp_path / "a").state_dict(), load_gpt(tmp_path / "b").state_dict()
    changed = sorted(k for k in a if not torch.equal(a[k], b[k]))
    assert changed == ["text_proj.weight"]
    with pytest.raises(ValueError, match="names no GPT parameter"):
        train_gpt(seqs, [], tmp_path / "c", replace(cfg, train_only=("no_such",)), TINY, progress=False)


def _with_classes(d: TokenSequence) -> TokenSequence:
    """``d`` with attribute classes per chunk (chunk 0 turns a lot, the others do not) and a phrase bank."""
    chunks = len(d.chunk_energy) if d.chunk_energy is not None else 1
    d.chunk_classes = ({"turn": "high", "speed": "mid"}, *({"turn": "low"} for _ in range(chunks - 1)))
    d.phrase_text = {("turn", "high"): np.full((2, TEXT_DIM), 1.0, np.float32),
                     ("turn", "low"): np.full((2, TEXT_DIM), -1.0, np.float32),
                     ("speed", "mid"): np.full((1, TEXT_DIM), 2.0, np.float32)}
    return d


def test_attribute_windows_carry_their_class_phrase_balanced_over_classes() -> None:
    from engine.train.train_gpt import class_windows

    d = _with_classes(_labelled(80))
    by = class_windows([d])
    assert by[("turn", "high")] == [(0, 0)] and len(by[("turn", "low")]) == len(d.chunk_energy) - 1
    gcfg = replace(GPT_PRESETS["tiny"], vocab_size=16, context=16)
    cfg = GPTTrainConfig(batch=300, text_dropout=1.0, energy_dropout=1.0, cond_channels="all", attr_share=1.0)
    b = sample_batch([d], cfg, gcfg, np.random.default_rng(0))
    first = b["text"][:, 0].numpy()
    # every window carries a phrase (never dropped), the one of its own class, and the classes come about equally
    assert set(np.unique(first)) == {1.0, -1.0, 2.0}
    assert bool((b["pos0"][first == 1.0] == 0).all()) and bool((b["pos0"][first == -1.0] >= CHUNK_TOKENS).all())
    assert all(abs(float(np.mean(first == v)) - 1 / 3) < 0.1 for v in (1.0, -1.0, 2.0))
    plain = sample_batch([d], replace(cfg, attr_share=0.0), gcfg, np.random.default_rng(0))
    assert not plain["text"].any()


def test_freeze_energy_keeps_the_energy_columns(tmp_path: Path) -> None:
    gcfg = replace(GPT_PRESETS["tiny"], vocab_size=16, text_dim=TEXT_DIM + ENERGY_DIMS)
    cfg = GPTTrainConfig(steps=3, batch=4, warmup=1, threads=1, cond_channels="all", text_dropout=0.0,
                         energy_dropout=0.0, val_every=3, lr=1e-2)
    data = [_with_classes(_labelled())]
    train_gpt(data, [], tmp_path / "a", cfg, gcfg, progress=False)
    ft = replace(cfg, init_from=str(tmp_path / "a"), train_only=("text_proj",), attr_share=0.5, freeze_energy=True)
    train_gpt(data, [], tmp_path / "b", ft, gcfg, progress=False)
    wa, wb = load_gpt(tmp_path / "a").text_proj.weight, load_gpt(tmp_path / "b").text_proj.weight
    assert torch.equal(wa[:, TEXT_DIM:], wb[:, TEXT_DIM:])
    assert not torch.equal(wa[:, :TEXT_DIM], wb[:, :TEXT_DIM])
    with pytest.raises(ValueError, match="no energy input"):
        train_gpt(data, [], tmp_path / "c", replace(ft, init_from=""), replace(gcfg, text_dim=TEXT_DIM),
                  progress=False)


def test_init_from_adds_the_per_block_text_path_at_zero(tmp_path: Path) -> None:
    src = CrossCondGPT(TINY)
    save_gpt(src, tmp_path / "src")
    new = CrossCondGPT(replace(TINY, text_layers=True))
    assert init_from_gpt(new, tmp_path / "src")["text_layers_added"]
    text = np.random.default_rng(0).normal(size=TINY.text_dim).astype(np.float32)
    for a, b in zip(_logits(src, text), _logits(new, text), strict=True):
        torch.testing.assert_close(a, b)

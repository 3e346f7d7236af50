"""Cross-conditional GPT: cached step == sliding-window forward, masks, presets, (de)serialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.models.gpt import GPT_PRESETS, CrossCondGPT, GPTConfig, Keyframes, load_gpt, save_gpt

CFG = GPTConfig(
    vocab_size=16, n_layer=2, n_head=2, n_embd=16, cond_dim=6, n_genres=3, text_dim=5, context=5,
    n_keyframe_slots=3, dropout=0.0,
)


def _model(seed: int = 0, cfg: GPTConfig = CFG) -> CrossCondGPT:
    torch.manual_seed(seed)
    return CrossCondGPT(cfg).eval()


def _inputs(gen: torch.Generator, b: int, t: int, cfg: GPTConfig = CFG) -> dict[str, torch.Tensor]:
    up = torch.randint(0, cfg.vocab_size, (b, t), generator=gen)
    down = torch.randint(0, cfg.vocab_size, (b, t), generator=gen)
    up[:, 0] = cfg.bos_id
    down[:, 0] = cfg.bos_id
    return {
        "up_in": up,
        "down_in": down,
        "cond": torch.randn(b, t, cfg.cond_dim, generator=gen),
        "genre": torch.randint(0, cfg.n_genres, (b,), generator=gen),
        "text": torch.randn(b, cfg.text_dim, generator=gen),
    }


def _decode(model: CrossCondGPT, inp: dict[str, torch.Tensor], kf: Keyframes | None, inplace: bool):
    cfg = model.cfg
    b, t = inp["up_in"].shape
    cache = model.new_cache(b)
    if kf is not None:
        k, v = model.encode_keyframes(kf, inp["genre"], inp["text"])
        n = kf.up.shape[1]
        cache.k[:, :, :, :n] = k
        cache.v[:, :, :, :n] = v
        cache.kv_mask[:, :n] = kf.mask
    else:
        # Garbage in unset keyframe slots must not leak into the result.
        cache.k[:, :, :, : cfg.n_keyframe_slots] = 7.0
    k_c, v_c = cache.k, cache.v
    ups, downs = [], []
    for i in range(t):
        pos = torch.full((b,), i, dtype=torch.long)
        lu, ld, k_c, v_c = model.step(
            inp["up_in"][:, i], inp["down_in"][:, i], inp["cond"][:, i], inp["genre"], inp["text"], pos,
            k_c, v_c, cache.kv_mask, inplace=inplace,
        )
        ups.append(lu)
        downs.append(ld)
    return torch.stack(ups, 1), torch.stack(downs, 1)


@pytest.mark.parametrize("inplace", [False, True])
def test_cached_step_matches_sliding_window_forward_past_wraparound(inplace: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    model = _model()
    inp = _inputs(gen, b=3, t=4 * CFG.context + 2)  # wraps the ring several times
    with torch.no_grad():
        fu, fd = model(**inp)
        su, sd = _decode(model, inp, None, inplace)
    assert fu.shape == (3, inp["up_in"].shape[1], CFG.vocab_size)
    torch.testing.assert_close(su, fu, atol=1e-5, rtol=0)
    torch.testing.assert_close(sd, fd, atol=1e-5, rtol=0)


def test_cached_step_matches_forward_with_keyframes() -> None:
    gen = torch.Generator().manual_seed(2)
    model = _model(3)
    b, t = 2, 3 * CFG.context
    inp = _inputs(gen, b, t)
    kf = Keyframes(
        up=torch.randint(0, CFG.vocab_size, (b, 3), generator=gen),
        down=torch.randint(0, CFG.vocab_size, (b, 3), generator=gen),
        pos=torch.randint(0, t + 10, (b, 3), generator=gen),
        mask=torch.tensor([[True, False, True], [False, True, True]]),
    )
    with torch.no_grad():
        fu, fd = model(**inp, keyframes=kf)
        su, sd = _decode(model, inp, kf, inplace=True)
        nu, _ = model(**inp)
    torch.testing.assert_close(su, fu, atol=1e-5, rtol=0)
    torch.testing.assert_close(sd, fd, atol=1e-5, rtol=0)
    # The keyframes do change the prediction (the mask is really used).
    assert (nu - fu).abs().max() > 1e-4
    # All mask bits off == no keyframes at all.
    off = kf._replace(mask=torch.zeros_like(kf.mask))
    with torch.no_grad():
        ou, _ = model(**inp, keyframes=off)
    torch.testing.assert_close(ou, nu, atol=1e-5, rtol=0)


def test_step_delta_leaves_cache_untouched() -> None:
    gen = torch.Generator().manual_seed(13)
    model = _model(14)
    b = 2
    cache = model.new_cache(b)
    cache.k.normal_(generator=gen)
    cache.v.normal_(generator=gen)
    k0, v0 = cache.k.clone(), cache.v.clone()
    args = (
        torch.randint(0, CFG.vocab_size, (b,), generator=gen), torch.randint(0, CFG.vocab_size, (b,), generator=gen),
        torch.randn(b, CFG.cond_dim, generator=gen), torch.zeros(b, dtype=torch.long), torch.randn(b, CFG.text_dim),
        torch.tensor([3, 17]),
    )
    with torch.no_grad():
        lu, _, k_new, v_new = model.step_delta(*args, cache.k, cache.v, cache.kv_mask)
        lu2, _, k_c, v_c = model.step(*args, cache.k, cache.v, cache.kv_mask, inplace=False)
    assert torch.equal(cache.k, k0) and torch.equal(cache.v, v0)
    assert k_new.shape == (CFG.n_layer, b, CFG.n_head, CFG.head_dim)
    torch.testing.assert_close(lu, lu2, rtol=0, atol=0)
    torch.testing.assert_close(k_c[:, 1, :, CFG.n_keyframe_slots + 17 % CFG.context], k_new[:, 1])
    torch.testing.assert_close(v_c[:, 0, :, CFG.n_keyframe_slots + 3], v_new[:, 0])


def test_window_limits_attention() -> None:
    """In one layer, a token older than the window cannot influence the logits; a token inside it does.

    (With L layers information hops through intermediate tokens, so the receptive field is L * context,
    exactly as in the cached step, whose deeper keys were computed from their own windows.)
    """
    gen = torch.Generator().manual_seed(4)
    model = _model(5, GPTConfig(**{**CFG.to_dict(), "n_layer": 1}))
    inp = _inputs(gen, 1, 2 * CFG.context)
    last = inp["up_in"].shape[1] - 1
    changed = {k: v.clone() for k, v in inp.items()}
    changed["up_in"][0, last - CFG.context] = (inp["up_in"][0, last - CFG.context] + 1) % CFG.vocab_size
    inside = {k: v.clone() for k, v in inp.items()}
    inside["up_in"][0, last - CFG.context + 1] = (inp["up_in"][0, last - CFG.context + 1] + 1) % CFG.vocab_size
    with torch.no_grad():
        base, _ = model(**inp)
        out, _ = model(**changed)
        ins, _ = model(**inside)
    torch.testing.assert_close(out[0, last], base[0, last], atol=1e-6, rtol=0)
    assert (ins[0, last] - base[0, last]).abs().max() > 1e-5


def test_forward_is_causal() -> None:
    gen = torch.Generator().manual_seed(6)
    model = _model(7)
    inp = _inputs(gen, 2, 9)
    changed = {k: v.clone() for k, v in inp.items()}
    changed["cond"][:, 6:] += 1.0
    with torch.no_grad():
        a, _ = model(**inp)
        b, _ = model(**changed)
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=1e-6, rtol=0)
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-4


def test_text_none_equals_zero_text() -> None:
    gen = torch.Generator().manual_seed(8)
    model = _model()
    inp = _inputs(gen, 2, 6)
    with torch.no_grad():
        a, _ = model(**{**inp, "text": None})
        b, _ = model(**{**inp, "text": torch.zeros(2, CFG.text_dim)})
    torch.testing.assert_close(a, b)


def test_bad_inputs_name_the_problem() -> None:
    model = _model()
    gen = torch.Generator().manual_seed(9)
    inp = _inputs(gen, 1, 4)
    with pytest.raises(ValueError, match="cond must be"):
        model(**{**inp, "cond": torch.randn(1, 4, CFG.cond_dim + 1)})
    bad = inp["up_in"].clone()
    bad[0, 1] = CFG.vocab_size + 1
    with pytest.raises(ValueError, match="up_in ids"):
        model(**{**inp, "up_in": bad})
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="unknown GPTConfig keys"):
        GPTConfig.from_dict({"n_layers": 3})


def test_presets_and_json_roundtrip(tmp_path: Path) -> None:
    d = GPT_PRESETS["default"]
    assert (d.n_layer, d.n_embd, d.context) == (4, 256, 60)
    bl = GPT_PRESETS["bailando"]
    assert (bl.n_layer, bl.n_embd, bl.context) == (12, 768, 240)
    for cfg in GPT_PRESETS.values():
        assert GPTConfig.from_json(cfg.to_json()) == cfg
    model = _model(11)
    save_gpt(model, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "gpt.json").read_text())["context"] == CFG.context
    loaded = load_gpt(tmp_path / "m")
    gen = torch.Generator().manual_seed(12)
    inp = _inputs(gen, 2, 7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inp)[0], model(**inp)[0])
    with pytest.raises(FileNotFoundError, match=r"lacks \['gpt.safetensors'"):
        load_gpt(tmp_path)


def _layered(seed: int = 0) -> CrossCondGPT:
    """A GPT with the per-block text path, its weights made visible (they start at zero)."""
    cfg = GPTConfig(**{**CFG.to_dict(), "n_layer": 3, "text_layers": True})
    m = _model(seed, cfg)
    assert m.text_layer_proj is not None and not m.text_layer_proj.weight.any()
    with torch.no_grad():
        m.text_layer_proj.weight.normal_(0.0, 1.0)
    return m


def test_per_block_text_path_step_forward_and_history_agree() -> None:
    gen = torch.Generator().manual_seed(21)
    model = _layered(4)
    cfg = model.cfg
    b, t = 2, 2 * cfg.context + 1
    inp = _inputs(gen, b, t, cfg)
    kf = Keyframes(up=torch.randint(0, cfg.vocab_size, (b, 2), generator=gen),
                   down=torch.randint(0, cfg.vocab_size, (b, 2), generator=gen),
                   pos=torch.tensor([[t + 1, t + 3], [4, t + 2]]), mask=torch.tensor([[True, True], [False, True]]))
    with torch.no_grad():
        fu, fd = model(**inp, keyframes=kf)
        su, sd = _decode(model, inp, kf, inplace=True)
        k, _ = model.encode_history(inp["up_in"][:, :4], inp["down_in"][:, :4], inp["cond"][:, :4], inp["genre"],
                                    inp["text"], torch.zeros(b, dtype=torch.long))
        cache = model.new_cache(b)
        k_c, v_c = cache.k, cache.v
        for i in range(4):
            _, _, k_c, v_c = model.step(inp["up_in"][:, i], inp["down_in"][:, i], inp["cond"][:, i], inp["genre"],
                                        inp["text"], torch.full((b,), i), k_c, v_c, cache.kv_mask)
    torch.testing.assert_close(su, fu, atol=1e-5, rtol=0)
    torch.testing.assert_close(sd, fd, atol=1e-5, rtol=0)
    torch.testing.assert_close(k, k_c[:, :, :, cfg.n_keyframe_slots : cfg.n_keyframe_slots + 4], atol=1e-5, rtol=0)
    # The path matters with a text and is exactly nothing without one.
    plain = CrossCondGPT(GPTConfig(**{**cfg.to_dict(), "text_layers": False})).eval()
    plain.load_state_dict({n: p for n, p in model.state_dict().items() if not n.startswith("text_layer_proj")})
    with torch.no_grad():
        pu, _ = plain(**inp)
        lu, _ = model(**inp)
        zu, _ = model(**{**inp, "text": torch.zeros(b, cfg.text_dim)})
        zp, _ = plain(**{**inp, "text": torch.zeros(b, cfg.text_dim)})
    assert (pu - lu).abs().max() > 1e-3
    assert torch.equal(zu, zp)

"""Controls switched mid-dance in the generator: the history rewrite, the text-guidance row, the energy share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.models.conditioning import TEXT_DIM
from engine.models.gpt_dancer import SNAP_CHILDREN, DanceGenerator, cache_rows, seam_turn, turned
from engine.models.pose_repr import UPPER_JOINTS
from engine.models.protocol import Controls
from engine.models.sampling import guide_logits, guide_text_logits
from engine.models.switch_primer import PrimerBank, build_bank, pose_feature
from engine.skeleton import rotations as R
from export.torch_backend import TorchBackend
from tests.models.test_genre_guidance import _cond, _gpt_vq, _recording


def _forward_last(gen: DanceGenerator, pid: int, cond_next: np.ndarray, genre: int,
                  text: np.ndarray | None) -> torch.Tensor:
    """Upper logits of the next position from the full forward over the performer's fed inputs, all under
    ``genre``/``text`` (the whole dance fits in the context)."""
    p = gen.get(pid)
    n = p.state.pos
    ups = np.append(p.hist_up[:n], p.state.prev_up)
    downs = np.append(p.hist_down[:n], p.state.prev_down)
    conds = np.concatenate([p.hist_cond[:n], cond_next[None]])
    t = None if text is None else torch.from_numpy(text)[None]
    with torch.no_grad():
        lu, _ = gen.backend.model(torch.from_numpy(ups)[None], torch.from_numpy(downs)[None],
                                  torch.from_numpy(conds)[None], torch.tensor([genre]), t)
    return lu[0, -1]


@pytest.mark.parametrize("what", ["genre", "text"])
@pytest.mark.parametrize("rewrite", [True, False])
def test_a_switch_rewrites_the_history_under_the_new_control(what: str, rewrite: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """After a switch the draw is what the model gives for the dance so far as if all of it had been under the
    new control (the window holds the whole dance here); without the rewrite the old control still shows."""
    gpt, vq = _gpt_vq()
    cond = _cond(12)
    text = np.random.default_rng(1).normal(size=TEXT_DIM).astype(np.float32)
    gen = DanceGenerator(TorchBackend(gpt, capacity=3, device="cpu"), vq, seed=2, rewrite_on_control=rewrite,
                         switch_context=None)  # the whole window kept through a genre switch (see below)
    pids = [gen.add_performer(Controls(genre=g)) for g in (1, 0, 1)]
    for row in cond[:6]:
        gen.step(row)
    switched = pids[:2]  # two switch in the same step (one batched rewrite), the third keeps its controls
    for pid in switched:
        if what == "genre":
            gen.set_genre(pid, 2)
        else:
            gen.controls(pid).text = text
    want = [_forward_last(gen, pid, cond[6], 2 if what == "genre" else gen.controls(pid).genre,
                          text if what == "text" else None) for pid in switched]
    keep = _forward_last(gen, pids[2], cond[6], 1, None)
    seen = _recording(monkeypatch)
    gen.step(cond[6])
    torch.testing.assert_close(seen[0][2], keep, atol=1e-4, rtol=0)
    for i, w in enumerate(want):
        if rewrite:
            torch.testing.assert_close(seen[0][i], w, atol=1e-4, rtol=0)
        else:
            assert not torch.allclose(seen[0][i], w, atol=1e-3)
    assert gen.rewrites == (2 if rewrite else 0)
    gen.step(cond[7])  # no further change: no further rewrite
    assert gen.rewrites == (2 if rewrite else 0)


def test_text_guidance_row_follows_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a separate text scale each performer has a third (genre-only) row, stepped only while it has a text;
    at the genre's scale the draw is two-row genre guidance; at another scale it is
    ``uncond + s_g (genre_only - uncond) + s_t (cond - genre_only)`` with the genre-only row's history written
    when the text was set (checked against the full forward)."""
    gpt, vq = _gpt_vq()
    cond = _cond(14)
    text = np.random.default_rng(1).normal(size=TEXT_DIM).astype(np.float32)
    same = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 3.0, 3.0), device="cpu"), vq, seed=4,
                          genre_guidance=3.0, text_guidance=3.0)
    two = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 3.0), device="cpu"), vq, seed=4, genre_guidance=3.0)
    assert cache_rows(2, 3.0, 3.0) == 6 and cache_rows(2, 1.0, 3.0) == 2
    seen = _recording(monkeypatch)
    logs: list[list[torch.Tensor]] = []
    for g in (same, two):
        seen.clear()
        pids = [g.add_performer(Controls(genre=1)), g.add_performer(Controls(genre=2))]
        for t, row in enumerate(cond[:10]):
            if t == 3:
                g.controls(pids[0]).text = text
            if t == 6:
                g.rewind(pids[0], 2)
            if t == 8:
                g.controls(pids[0]).text = None
            g.step(row)
        logs.append(list(seen))
    for x, y in zip(*logs, strict=True):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-4)
    p = same.get(0)
    assert p.textless is not None and not p.textless_live  # text cleared: not stepped any more

    gen = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(1, 2.0, 5.0), device="cpu"), vq, seed=4,
                         genre_guidance=2.0, text_guidance=5.0, text_share=0.0)
    pid = gen.add_performer(Controls(genre=1))
    for row in cond[:5]:
        gen.step(row)
    gen.controls(pid).text = text
    c_want = _forward_last(gen, pid, cond[5], 1, text)
    g_want = _forward_last(gen, pid, cond[5], 1, None)
    u_want = _forward_last(gen, pid, cond[5], 0, None)
    seen.clear()
    gen.step(cond[5])
    torch.testing.assert_close(seen[0][0], guide_text_logits(c_want, u_want, g_want, 2.0, 5.0), atol=1e-3, rtol=0)
    assert gen.get(pid).textless_live


def test_a_text_naming_only_attributes_with_their_own_text_scale_is_guided_at_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``text_guidance_attributes`` (session 15, arms): a performer whose text names only attributes listed there
    ("arms high") draws as under a separate text scale of theirs (the three-row guidance, its genre-only row stepped
    while it has that text); a text naming another attribute too ("arms low, travel") keeps the genre's scale on
    two rows, as a generator without the key draws it."""
    gpt, vq = _gpt_vq()
    cond = _cond(12)
    rng = np.random.default_rng(1)
    arms, mixed = (rng.normal(size=TEXT_DIM).astype(np.float32) for _ in range(2))
    arms[0], mixed[0] = 1.0, -1.0

    def classes(e: np.ndarray) -> dict[str, str]:
        return {"arm": "high", "speed": "mid"} if e[0] > 0 else {"arm": "low", "travel": "high"}

    assert cache_rows(2, 3.0, None, True) == 6 and cache_rows(2, 1.0, None, True) == 2
    per = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 3.0, None, True), device="cpu"), vq, seed=4,
                         genre_guidance=3.0, text_guidance_attributes={"arm": 0.5, "turn": 2.0}, text_classes=classes)
    own = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 3.0, 0.5), device="cpu"), vq, seed=4,
                         genre_guidance=3.0, text_guidance=0.5)
    two = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 3.0), device="cpu"), vq, seed=4, genre_guidance=3.0)
    seen = _recording(monkeypatch)
    logs: list[list[torch.Tensor]] = []
    for g in (per, own, two):
        seen.clear()
        pids = [g.add_performer(Controls(genre=1)), g.add_performer(Controls(genre=2))]
        for t, row in enumerate(cond[:10]):
            if t == 3:
                g.controls(pids[0]).text = arms
                g.controls(pids[1]).text = mixed
            if t == 6:
                g.rewind(pids[0], 2)
            g.step(row)
        logs.append(list(seen))
    assert per.text_scale_of(per.get(0)) == 0.5 and per.text_scale_of(per.get(1)) is None
    assert per.get(0).textless_live and not per.get(1).textless_live
    steered = 0
    for x, y, z in zip(*logs, strict=True):
        torch.testing.assert_close(x[0], y[0], atol=1e-5, rtol=1e-5)  # "arms high": its own scale
        torch.testing.assert_close(x[1], z[1], atol=1e-5, rtol=1e-5)  # "arms low, travel": the genre's
        steered += not torch.allclose(x[0], z[0], atol=1e-3)
    assert steered > 0  # the scale differs from the genre's: the draw does
    with pytest.raises(ValueError, match="text_guidance_attributes"):
        DanceGenerator(TorchBackend(gpt, capacity=6, device="cpu"), vq, genre_guidance=3.0,
                       text_guidance_attributes={"arms": 1.0})
    with pytest.raises(ValueError, match="text_guidance_attributes"):
        DanceGenerator(TorchBackend(gpt, capacity=6, device="cpu"), vq, genre_guidance=3.0,
                       text_guidance_attributes={"arm:middle": 1.0})


def test_one_side_of_an_attribute_can_have_its_own_text_scale() -> None:
    """``text_guidance_attributes`` keys may name one side ("travel:low", session 16): a text naming that side takes
    it (before the attribute's own key), the other side keeps the attribute's key or, without one, the genre's scale;
    a text naming two sides takes the least of their scales only when both have one."""
    gpt, vq = _gpt_vq()
    texts = {k: np.full(TEXT_DIM, float(i), np.float32) for i, k in enumerate(("stay", "travel", "arms", "both"))}
    read = {0.0: {"travel": "low"}, 1.0: {"travel": "high", "speed": "mid"}, 2.0: {"arm": "high"},
            3.0: {"travel": "low", "arm": "high"}}

    def classes(e: np.ndarray) -> dict[str, str]:
        return read[float(e[0])]

    def scales(tga: dict[str, float]) -> list[float | None]:
        g = DanceGenerator(TorchBackend(gpt, capacity=12, device="cpu"), vq, genre_guidance=3.0,
                           text_guidance_attributes=tga, text_classes=classes)
        out = []
        for k in texts:
            pid = g.add_performer(Controls(genre=1, text=texts[k]))
            out.append(g.text_scale_of(g.get(pid)))
        return out

    assert scales({"travel:low": 0.0}) == [0.0, None, None, None]
    assert scales({"travel:low": 0.0, "travel": 2.0, "arm": 1.0}) == [0.0, 2.0, 1.0, 0.0]
    assert scales({"travel:high": 0.5, "arm": 1.0}) == [None, 0.5, 1.0, None]


def test_energy_share_reaches_the_unconditional_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """energy_share s: the unconditional row carries s x the energy entries (share 1: energy unguided)."""
    import json

    from engine.models.gpt import CrossCondGPT, GPTConfig

    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, dropout=0.0,
                                 text_dim=TEXT_DIM + 2)).eval()
    _, vq = _gpt_vq()
    calls: list[np.ndarray] = []
    be = TorchBackend(gpt, capacity=2, device="cpu")
    real = be.step

    def spy(states, cond, genre, text=None):  # type: ignore[no-untyped-def]
        calls.append(np.array(text))
        return real(states, cond, genre, text)

    monkeypatch.setattr(be, "step", spy)
    gen = DanceGenerator(be, vq, seed=0, genre_guidance=3.0, energy_share=0.25)
    gen.add_performer(Controls(genre=1, energy=1.0))
    gen.step(_cond(1)[0])
    cond_row, uncond_row = calls[0]
    np.testing.assert_allclose(cond_row[TEXT_DIM:], [1.0, 1.0])
    np.testing.assert_allclose(uncond_row[TEXT_DIM:], [0.25, 0.25])
    assert not uncond_row[:TEXT_DIM].any()
    with pytest.raises(ValueError, match="energy_share"):
        DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, energy_share=1.5)
    assert json.dumps(gen.describe())


def test_a_genre_switch_boosts_the_genre_guidance_for_a_while(guidance_scales: list[list[float]]) -> None:
    gpt, vq = _gpt_vq()
    cond = _cond(8)
    scales = guidance_scales
    gen = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 2.0), device="cpu"), vq, seed=0,
                         genre_guidance=2.0, switch_boost=(3.0, 2))
    a, _ = gen.add_performer(Controls(genre=1)), gen.add_performer(Controls(genre=1))
    for t, row in enumerate(cond):
        if t == 3:
            gen.set_genre(a, 2)
        gen.step(row)
    per_step = scales[0::2]  # upper and lower body: one call each per step
    assert per_step == [[2.0, 2.0]] * 3 + [[6.0, 2.0]] * 2 + [[2.0, 2.0]] * 3  # only the switched performer
    gen.reset(a)
    assert gen.get(a).boost_until == -1


def _forward_window(gen: DanceGenerator, pid: int, cond_next: np.ndarray, genre: int, keep: int) -> torch.Tensor:
    """Upper logits of the next position from a forward over only the newest ``keep`` fed inputs and the next one
    (what a window restarted with ``keep`` positions sees; BOS when nothing is kept), all under ``genre``."""
    p = gen.get(pid)
    n = p.state.pos
    bos = gen.backend.config.bos_id  # a window restarted with nothing kept starts from BOS
    ups = np.append(p.hist_up[n - keep : n], p.state.prev_up if keep else bos)
    downs = np.append(p.hist_down[n - keep : n], p.state.prev_down if keep else bos)
    conds = np.concatenate([p.hist_cond[n - keep : n], cond_next[None]])
    with torch.no_grad():
        lu, _ = gen.backend.model(torch.from_numpy(ups)[None], torch.from_numpy(downs)[None],
                                  torch.from_numpy(conds)[None], torch.tensor([genre]), None)
    return lu[0, -1]


@pytest.mark.parametrize("keep", [0, 3])
def test_a_genre_switch_restarts_the_gpt_window(keep: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``switch_context`` k the switched performer's next draw is the guided forward over its newest k inputs
    only (conditional row under the new genre, unconditional row under none: the old-style tokens before them are
    forgotten); the frames go on from the same decoder state; the other performer is untouched; a keyframe pinned
    before the switch moves with the renumbered positions; a rewind of the switch step, or deeper, goes back to
    before the switch (window, keyframe, genre bookkeeping), so the remade step switches again exactly."""
    gpt, vq = _gpt_vq()
    cond = _cond(14)
    gen = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 2.0), device="cpu"), vq, seed=3,
                         genre_guidance=2.0, switch_boost=(1.0, 0), switch_context=keep)
    a, b = gen.add_performer(Controls(genre=1)), gen.add_performer(Controls(genre=1))
    for row in cond[:8]:
        gen.step(row)
    gen.set_keyframe(a, 20, np.zeros(3, np.float32), np.tile([1.0, 0, 0, 0], (gen.n_joints, 1)).astype(np.float32))
    pinned = gen.get(a).pinned[0][0]
    decoded = gen.get(a).n_tokens
    gen.set_genre(a, 2)
    want_a = guide_logits(_forward_window(gen, a, cond[8], 2, keep), _forward_window(gen, a, cond[8], 0, keep), 2.0)
    want_b = guide_logits(_forward_window(gen, b, cond[8], 1, 8), _forward_window(gen, b, cond[8], 0, 8), 2.0)
    seen = _recording(monkeypatch)
    gen.step(cond[8])
    pa = gen.get(a)
    assert pa.state.pos == keep + 1 and pa.uncond is not None and pa.uncond.pos == keep + 1
    assert pa.n_tokens == decoded + 1  # the dance goes on: 9 tokens decoded, the GPT window holds keep + 1
    assert pa.pinned[0][0] == pinned - (8 - keep)  # renumbered with the window
    assert gen.backend._kv_mask[pa.state.row].any()  # and pinned again in the slots
    assert gen.get(b).state.pos == 9
    torch.testing.assert_close(seen[0][1], want_b, atol=1e-4, rtol=0)
    first = seen[0][0]
    gen.rewind(a, 1)  # the switch step remade: back to before the switch (keyframe pinned), switched again
    assert pa.state.pos == 8 and pa.encoded is not None and pa.encoded[0] == 1 and pa.pinned[0][0] == pinned
    seen.clear()
    gen.step(cond[8], [a])
    assert pa.state.pos == keep + 1 and pa.pinned[0][0] == pinned - (8 - keep)
    torch.testing.assert_close(seen[0][0], first, atol=1e-5, rtol=0)  # the same logits (stepped alone now)
    # Keyframes attend from both rows; compare the switched draw without them to the forward over its window.
    gen.rewind(a, 1)
    pa.pinned.clear()
    gen._pin_next(pa)  # keyframe slots cleared
    seen.clear()
    gen.step(cond[8], [a])
    torch.testing.assert_close(seen[0][0], want_a, atol=1e-4, rtol=0)
    gen.rewind(a, 5)  # deeper than the restarted window: back to before the switch, which the next step makes again
    assert gen.get(a).state.pos == 4 and gen.get(a).n_tokens == decoded + 1 - 5
    gen.step(cond[9])
    assert gen.get(a).state.pos == keep + 1


def test_energy_range_maps_the_level_onto_the_label() -> None:
    """``energy_range`` (lo, hi): level e conditions the GPT as the label lo + (hi - lo) e, in both rows."""
    gpt, vq = _gpt_vq()
    gen = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, energy_range=(0.2, 0.6))
    assert gen.energy_label(0.0) == pytest.approx(0.2) and gen.energy_label(1.0) == pytest.approx(0.6)
    assert gen.energy_label(0.5) == pytest.approx(0.4) and gen.energy_label(3.0) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="energy_range"):
        DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, energy_range=(0.0, 1.5))
    with pytest.raises(ValueError, match="switch_context"):
        DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, switch_context=-1)


def test_the_cards_switch_and_energy_settings_reach_the_live_and_offline_generator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, generators_made: list[DanceGenerator]) -> None:
    """``sampling.genre_switch`` and ``sampling.energy`` of a model card configure the generator ``play``/``live``
    build (assemble) and the one offline generation builds (``sample_dance``) alike; absent, the defaults."""
    from engine.models import gpt_dancer as gd
    from engine.models.dance_model import load_dance_model
    from engine.runtime.assemble import ModelSpec, build_model
    from engine.train.generate import sample_dance
    from tests.models.test_genre_guidance import _model_dir

    sampling = {"genre_guidance": 2.0, "genre_switch": {"boost": 3.0, "boost_tokens": 2, "context": 5,
                                                        "ease_shape": "offset"},
                "energy": {"share": 0.25, "range": [0.1, 0.6]}}
    d = _model_dir(tmp_path / "a", sampling)
    assert load_dance_model(d).generator_options() == {"switch_boost": (3.0, 2), "switch_context": 5,
                                                       "switch_ease_shape": "offset",
                                                       "energy_share": 0.25, "energy_range": (0.1, 0.6)}
    gen = build_model(ModelSpec(model=d, backend="torch", decode="torch")).inner  # type: ignore[attr-defined]
    assert (gen.switch_boost, gen.switch_context, gen.energy_share, gen.energy_range) == ((3.0, 2), 5, 0.25,
                                                                                          (0.1, 0.6))
    assert gen.switch_ease_offset
    made = generators_made
    made.clear()  # only the offline generation's generator from here
    sample_dance(load_dance_model(d), _cond(2), 1)
    monkeypatch.undo()
    assert (made[0].switch_boost, made[0].switch_context, made[0].energy_range) == ((3.0, 2), 5, (0.1, 0.6))
    plain = build_model(ModelSpec(model=_model_dir(tmp_path / "b", {}), backend="torch", decode="torch"))
    g2 = plain.inner  # type: ignore[attr-defined]
    assert (g2.switch_boost, g2.switch_context, g2.energy_share, g2.energy_range, g2.switch_ease_offset) == (
        gd.SWITCH_BOOST, gd.SWITCH_CONTEXT, gd.ENERGY_SHARE, gd.ENERGY_RANGE, False)


def _bank(tokens: int = 40, styles: tuple[str, ...] = ("pop",)) -> PrimerBank:
    """A small primer bank of random "takes" (token ids of the test VQ-VAE's 512 codes, random pose features)."""
    rng = np.random.default_rng(7)
    return build_bank({st: [(rng.integers(0, 512, tokens), rng.integers(0, 512, tokens),
                             rng.normal(size=(tokens, 127)).astype(np.float32)) for _ in range(2)] for st in styles},
                      hip_weight=3.0, components=8)


def _switched_frames(switch_decoder: bool, ease: int, switch_at: int | None, n: int = 9,
                     rewinds: tuple[tuple[int, int], ...] = (), late: bool = False, primer: int = 0,
                     shape: str = "blend", snap: tuple[str, ...] = ()) -> tuple[DanceGenerator, list[list[np.ndarray]]]:
    """Two performers stepped ``n`` tokens; performer 0 switches genre before token ``switch_at`` (None: never).
    ``rewinds``: (after token, n) rewinds of performer 0, remade at once; ``late``: the switch is made only when the
    steps from ``switch_at`` on are remade (a live re-plan: made ahead under the old genre, rewound, remade under
    the new). Returns the generator and each performer's (root, quat) frames and model vectors per token, as
    finally kept."""
    gpt, vq = _gpt_vq()
    cond = _cond(n)
    gen = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 2.0), device="cpu"), vq, seed=4,
                         genre_guidance=2.0, switch_decoder=switch_decoder, switch_ease=ease, switch_ease_shape=shape,
                         switch_primer=(primer, _bank() if primer else None), switch_snap=snap)
    a, b = gen.add_performer(Controls(genre=1)), gen.add_performer(Controls(genre=1))
    out: list[list[np.ndarray]] = [[], []]
    todo = dict(rewinds)
    rng: dict[int, torch.Tensor] = {}  # performer 0's random stream before each of its tokens
    t = 0
    while t < n:
        rng[t] = gen.get(a).rng.get_state()
        if t == switch_at and not late:
            gen.set_genre(a, 2)
        frames = {sf.pid: sf for sf in gen.step(cond[t])}
        for k, pid in enumerate((a, b)):
            sf = frames[pid]
            vec = gen.get(pid).vectors
            assert vec is not None
            out[k][sf.step * 3 : sf.step * 3 + 3] = [np.concatenate([sf.root.ravel(), sf.quat.ravel()]),
                                                   vec[0].copy(), vec[1].copy()]
        t += 1
        if t in todo:
            back = todo.pop(t)
            if switch_at is not None and t - back <= switch_at < t and not late:
                gen.set_genre(a, 1)  # the rewound steps are remade as they were first made: the switch again
            gen.rewind(a, back)
            gen.get(a).rng.set_state(rng[t - back])  # the same random stream: the same draws
            for _ in range(back):  # performer 0 alone remakes its steps
                tt = t - back + _
                if tt == switch_at:
                    gen.set_genre(a, 2)
                sf = gen.step(cond[tt], [a])[0]
                vec = gen.get(a).vectors
                assert vec is not None
                out[0][sf.step * 3 : sf.step * 3 + 3] = [np.concatenate([sf.root.ravel(), sf.quat.ravel()]),
                                                       vec[0].copy(), vec[1].copy()]
    return gen, out


def _same_without_a_switch_and_exact_after_rewinds(eased: list[list[np.ndarray]], **opts: Any) -> None:
    """With the ease options ``opts`` (6 frames): no switch changes nothing (the generator's frames as without the
    options), and rewinds across the switch at token 5 remake ``eased`` (the switched dance) exactly."""
    _, same = _switched_frames(True, 6, None, **opts)
    _, base = _switched_frames(False, 0, None)
    for x, y in zip(same[0] + same[1], base[0] + base[1], strict=True):
        np.testing.assert_array_equal(x, y)
    _, again = _switched_frames(True, 6, 5, rewinds=((7, 1), (9, 4)), **opts)
    for x, y in zip(again[0] + again[1], eased[0] + eased[1], strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)


def test_a_primed_switch_early_in_a_dance_keeps_the_primers_newest_tokens() -> None:
    """A genre switch before the dance has made as many tokens as the primer keeps (the shipped card: 12 tokens,
    1.6 s): the window holds the primer's newest tokens, as many as the dance has made, and the next input is the
    primer's last token (it raised "a primer of 3 tokens is needed here, got 12" before; found by
    ``bench.replan_bench``); rewinds across the switch remake the dance exactly."""
    gpt, vq = _gpt_vq()
    cond = _cond(6)
    gen = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(1, 2.0), device="cpu"), vq, seed=4, genre_guidance=2.0,
                         switch_decoder=True, switch_ease=4, switch_primer=(12, _bank()))
    pid = gen.add_performer(Controls(genre=1))
    picked: list[tuple[np.ndarray, np.ndarray]] = []
    choose = gen._choose_primer

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        got = choose(*a, **k)
        picked.append(got)
        return got

    gen._choose_primer = spy  # type: ignore[method-assign]
    for t in range(6):
        if t == 2:
            gen.set_genre(pid, 2)
        gen.step(cond[t])
    assert len(picked) == 1 and len(picked[0][0]) == 12
    p = gen.get(pid)
    np.testing.assert_array_equal(p.hist_up[:2], picked[0][0][9:11])  # the dance had made 2 tokens: the primer's
    np.testing.assert_array_equal(p.hist_down[:2], picked[0][1][9:11])  # newest 2 before its last, in order
    _, once = _switched_frames(True, 4, 2, primer=12)
    _, again = _switched_frames(True, 4, 2, primer=12, rewinds=((4, 1), (6, 3)))
    for x, y in zip(once[0] + once[1], again[0] + again[1], strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)


def test_a_genre_switch_can_restart_the_decoder_and_ease_the_output() -> None:
    """``switch_decoder``: the switched performer's first token after the switch decodes from an empty decoder
    history (as the first token of a dance); the other performer and every frame before the switch are untouched;
    without a switch nothing changes at all (byte for byte). ``switch_ease`` k: the first k frames after it are the
    last frame before blended into the restarted decoder's frames with weights 1/(k+1) ... k/(k+1)."""
    _, plain = _switched_frames(False, 0, 5)
    gen, restarted = _switched_frames(True, 0, 5)
    for j in range(15):  # tokens 0-4 (3 entries each): the same before the switch
        np.testing.assert_array_equal(restarted[0][j], plain[0][j])
    for j in range(27):
        np.testing.assert_array_equal(restarted[1][j], plain[1][j])  # the other performer: untouched
    assert not np.allclose(restarted[0][15], plain[0][15], atol=1e-3)  # the switch token decodes otherwise ...
    p = gen.get(0)
    up_tok, down_tok = int(p.tok_up[-4]), int(p.tok_down[-4])  # ... as the first token of a sequence would
    first_up, first_down = gen.vqvae.decode(torch.tensor([[up_tok]]), torch.tensor([[down_tok]]))
    np.testing.assert_allclose(restarted[0][16], first_up[0].detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(restarted[0][17][:, 3:57], first_down[0].detach().numpy()[:, 3:57], atol=1e-4)
    for ease in (0, 6):  # no switch: the options change nothing
        _, same = _switched_frames(True, ease, None)
        _, base = _switched_frames(False, 0, None)
        for x, y in zip(same[0] + same[1], base[0] + base[1], strict=True):
            np.testing.assert_array_equal(x, y)
    gen6, eased = _switched_frames(True, 6, 5)
    last_up, last_down = restarted[0][13][-1], restarted[0][14][-1]  # the last frame before the switch
    for f in range(8):  # frames 0-7 after the switch (tokens 5 and 6)
        w = min((f + 1) / 7.0, 1.0)
        tok, row = 5 + f // 4, f % 4
        np.testing.assert_allclose(eased[0][3 * tok + 1][row], (1 - w) * last_up + w * restarted[0][3 * tok + 1][row],
                                   atol=1e-5)
        np.testing.assert_allclose(eased[0][3 * tok + 2][row, 3:57],
                                   (1 - w) * last_down[3:57] + w * restarted[0][3 * tok + 2][row, 3:57], atol=1e-5)
    assert gen6.get(0).seam is None  # eased out


def test_the_offset_ease_moves_the_new_frames_by_the_fading_seam_offset() -> None:
    """``switch_ease_shape`` "offset": the k frames after the switch are the restarted decoder's frames plus
    (last frame before - first new frame) weighted k/(k+1) ... 1/(k+1), so the first one is near the last frame
    before and the new frames' own motion shows throughout (the blend holds the old frame instead); the draws are
    the same; without a switch nothing changes; rewinds across it stay exact."""
    _, restarted = _switched_frames(True, 0, 5)
    gen, eased = _switched_frames(True, 6, 5, shape="offset")
    last_up, last_down = restarted[0][13][-1], restarted[0][14][-1]
    off_up, off_down = last_up - restarted[0][16][0], last_down - restarted[0][17][0]
    for f in range(10):  # frames 0-9 after the switch (tokens 5-7): eased for 6, then the decoder's own
        w = min((f + 1) / 7.0, 1.0)
        tok, row = 5 + f // 4, f % 4
        np.testing.assert_allclose(eased[0][3 * tok + 1][row], restarted[0][3 * tok + 1][row] + (1 - w) * off_up,
                                   atol=1e-5)
        np.testing.assert_allclose(eased[0][3 * tok + 2][row, 3:57],
                                   restarted[0][3 * tok + 2][row, 3:57] + (1 - w) * off_down[3:57], atol=1e-5)
    assert gen.get(0).seam is None
    _same_without_a_switch_and_exact_after_rewinds(eased, shape="offset")
    with pytest.raises(ValueError, match="switch_ease_shape"):
        _switched_frames(True, 6, 5, shape="snap")


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles (radians) between rotation matrices [..., 3, 3]."""
    c = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(c, -1.0, 1.0))


def test_the_turn_ease_fades_a_large_joint_offset_at_an_even_angular_rate() -> None:
    """The cause of session 14's "turn" shape: a joint whose rotation differs by 170 degrees across the seam (the
    restarted decoder's first frame against the last before). The "offset" ease fades the 6D numbers linearly, which
    turns the joint mostly in the middle frames (the hands crossed the seam at up to 4.4 m/s); :func:`turned` turns
    it about one axis, by the share of the angle, so every frame turns it alike; the other channels move by the share
    of the offset, and a share of 0 leaves a frame as it is (byte for byte)."""
    rng = np.random.default_rng(0)
    first_up = R.matrix_to_rot6d(R.axis_angle_to_matrix(rng.normal(0, 0.3, (12, 3)))).reshape(72).astype(np.float32)
    first_down = rng.normal(0, 1, 61).astype(np.float32)
    first_down[3:57] = R.matrix_to_rot6d(R.axis_angle_to_matrix(rng.normal(0, 0.3, (9, 3)))).reshape(54)
    big = np.deg2rad(170.0) * np.array([0.0, 0.6, 0.8])  # the 4th upper joint turned 170 degrees in the last frame
    last_up, last_down = first_up.copy(), first_down + 0.5
    last_down[3:57] = first_down[3:57]
    j = 3
    last_up[6 * j : 6 * j + 6] = R.matrix_to_rot6d(_rot(first_up[6 * j : 6 * j + 6]) @ R.axis_angle_to_matrix(big))
    share = np.array([5, 4, 3, 2, 1, 0], np.float64) / 6.0  # a 6-frame ease over a still new pose
    up = np.repeat(first_up[None], 6, 0)
    down = np.repeat(first_down[None], 6, 0)
    turn, off = seam_turn(last_up, last_down, first_up, first_down)
    t_up, t_down = turned(up, down, turn, off, share)
    step = np.deg2rad(170.0) / 6.0
    ang = _angle(_rot(t_up[:, 6 * j : 6 * j + 6]), _rot(first_up[6 * j : 6 * j + 6]))
    np.testing.assert_allclose(ang, share * np.deg2rad(170.0), atol=1e-5)  # each frame a sixth of the turn
    np.testing.assert_allclose(np.abs(np.diff(ang)), step, atol=1e-5)
    np.testing.assert_allclose(_rot(t_up[:, :18].reshape(6, 3, 6)), _rot(up[:, :18].reshape(6, 3, 6)),
                               atol=1e-6)  # unturned joints stay
    np.testing.assert_allclose(t_down[:, :3], down[:, :3] + share[:, None] * 0.5, atol=1e-6)
    np.testing.assert_allclose(t_down[:, 57:], down[:, 57:] + share[:, None] * 0.5, atol=1e-6)
    np.testing.assert_array_equal(t_up[-1], up[-1])
    np.testing.assert_array_equal(t_down[-1], down[-1])
    o_up = up + share[:, None] * (last_up - first_up)  # the "offset" ease of the same seam
    o_ang = _angle(_rot(o_up[:, 6 * j : 6 * j + 6]), _rot(first_up[6 * j : 6 * j + 6]))
    assert np.max(np.abs(np.diff(o_ang))) > 2.0 * step  # uneven: most of the turn in one frame


def test_the_turn_ease_turns_the_new_frames_by_the_fading_seam_rotation() -> None:
    """``switch_ease_shape`` "turn" in the generator: the k frames after the switch are the restarted decoder's
    frames with each joint turned by k/(k+1) ... 1/(k+1) of its rotation from the first new frame to the last frame
    before (the first one near that frame), the other lower channels offset as by "offset"; the frames after the ease,
    before the switch and of the other performer are as without it; without a switch nothing changes; rewinds across
    it stay exact."""
    _, raw = _switched_frames(True, 0, 5)
    gen, eased = _switched_frames(True, 6, 5, shape="turn")
    last_up, last_down = raw[0][13][-1], raw[0][14][-1]
    first_up, first_down = raw[0][16][0], raw[0][17][0]
    rot_first = R.rot6d_to_matrix(np.concatenate([first_down[3:57], first_up]).astype(np.float64).reshape(21, 6))
    rot_last = R.rot6d_to_matrix(np.concatenate([last_down[3:57], last_up]).astype(np.float64).reshape(21, 6))
    theta = _angle(rot_first, rot_last)
    assert np.max(theta) > 0.3  # the seam turns something
    for j in range(15):
        np.testing.assert_array_equal(eased[0][j], raw[0][j])
    for j in range(27):
        np.testing.assert_array_equal(eased[1][j], raw[1][j])
    for f in range(10):  # frames 0-9 after the switch (tokens 5-7): eased for 6, then the decoder's own
        w = min((f + 1) / 7.0, 1.0)
        tok, row = 5 + f // 4, f % 4
        up, down = eased[0][3 * tok + 1][row], eased[0][3 * tok + 2][row]
        up_r, down_r = raw[0][3 * tok + 1][row], raw[0][3 * tok + 2][row]
        if w >= 1.0:
            np.testing.assert_array_equal(up, up_r)
            np.testing.assert_array_equal(down[3:57], down_r[3:57])  # (foot locking moves the root's velocity)
            continue
        rot = R.rot6d_to_matrix(np.concatenate([down[3:57], up]).astype(np.float64).reshape(21, 6))
        rot_r = R.rot6d_to_matrix(np.concatenate([down_r[3:57], up_r]).astype(np.float64).reshape(21, 6))
        np.testing.assert_allclose(_angle(rot_r, rot), (1 - w) * theta, atol=1e-4)  # that share of each turn
        rel = np.swapaxes(rot_first, -1, -2) @ rot_last  # ... about the seam's own axis
        np.testing.assert_allclose(np.swapaxes(rot_r, -1, -2) @ rot,
                                   R.axis_angle_to_matrix((1 - w) * R.matrix_to_axis_angle(rel)), atol=1e-4)
        np.testing.assert_allclose(down[1], down_r[1] + (1 - w) * (last_down[1] - first_down[1]), atol=1e-5)  # height
    assert gen.get(0).seam is None
    _same_without_a_switch_and_exact_after_rewinds(eased, shape="turn")


def _rot(d6: np.ndarray) -> np.ndarray:
    return R.rot6d_to_matrix(np.asarray(d6, np.float64))


@pytest.mark.parametrize("shape", ["offset", "blend", "turn"])
def test_snapped_joints_take_the_new_rotation_at_once_and_their_child_keeps_the_eased_limb(shape: str) -> None:
    """``switch_snap`` (the collars): in the ease, a snapped joint's rotation is the restarted decoder's own (no
    trace of the old style's, which the 4 s classifier reads in salsa's never-moving collars) and its child's is the
    one that keeps the pair's eased composite (collar times shoulder), so the arm below turns as the ease alone turns
    it; the other joints, the frames after the ease, the frames before the switch, the other performer and a dance
    without a switch are those of the ease without it (byte for byte where untouched); rewinds stay exact."""
    snap = ("rCollar", "lCollar")
    _, raw = _switched_frames(True, 0, 5)  # the restarted decoder's frames as decoded (the draws are the same)
    _, eased = _switched_frames(True, 6, 5, shape=shape)
    gen, snapped = _switched_frames(True, 6, 5, shape=shape, snap=snap)
    for j in range(15):
        np.testing.assert_array_equal(snapped[0][j], eased[0][j])
    for j in range(27):
        np.testing.assert_array_equal(snapped[1][j], eased[1][j])
    touched = set()
    for name in snap:
        for k in (UPPER_JOINTS.index(name), UPPER_JOINTS.index(SNAP_CHILDREN[name])):
            touched.update(range(6 * k, 6 * k + 6))
    rest = np.array([c for c in range(72) if c not in touched])
    for f in range(10):  # frames 0-9 after the switch (tokens 5-7): eased for 6
        tok, row = 5 + f // 4, f % 4
        up, up_e, up_raw = snapped[0][3 * tok + 1][row], eased[0][3 * tok + 1][row], raw[0][3 * tok + 1][row]
        np.testing.assert_array_equal(up[rest], up_e[rest])
        np.testing.assert_array_equal(snapped[0][3 * tok + 2][row], eased[0][3 * tok + 2][row])
        for name in snap:
            pa, ch = UPPER_JOINTS.index(name), UPPER_JOINTS.index(SNAP_CHILDREN[name])
            np.testing.assert_allclose(up[6 * pa : 6 * pa + 6], up_raw[6 * pa : 6 * pa + 6], atol=1e-5)
            np.testing.assert_allclose(_rot(up[6 * pa : 6 * pa + 6]) @ _rot(up[6 * ch : 6 * ch + 6]),
                                       _rot(up_e[6 * pa : 6 * pa + 6]) @ _rot(up_e[6 * ch : 6 * ch + 6]), atol=1e-5)
        if f < 6:  # in the ease the snapped joint differs from the eased one (the test sees something)
            pa = UPPER_JOINTS.index(snap[0])
            assert not np.allclose(up[6 * pa : 6 * pa + 6], up_e[6 * pa : 6 * pa + 6], atol=1e-4)
        else:  # after it: the decoder's own frames, as without the snap
            np.testing.assert_allclose(up, up_e, atol=1e-6)
    assert gen.get(0).seam is None
    _same_without_a_switch_and_exact_after_rewinds(snapped, shape=shape, snap=snap)
    with pytest.raises(ValueError, match="switch_snap"):
        _switched_frames(True, 6, 5, shape=shape, snap=("chest",))  # two children among the model joints


@pytest.mark.parametrize(("ease", "primer"), [(0, 0), (6, 0), (4, 4)])
def test_rewinds_across_a_decoder_restart_stay_exact(ease: int, primer: int) -> None:
    """A rewind of the switch step, of a step in its ease, or from after it to before the switch, remakes exactly
    the frames of a performer that never rewound (the decoder restart, the primer and the ease are kept with each
    step); so does a live re-plan (steps made ahead under the old genre, rewound, remade under the new: the offline
    dance)."""
    _, straight = _switched_frames(True, ease, 5, primer=primer)
    for rewinds, late in ((((6, 1),), False), (((7, 1),), False), (((9, 4),), False),
                          (((8, 3),), True)):  # the last as live: made ahead under the old genre, re-planned
        _, again = _switched_frames(True, ease, 5, rewinds=rewinds, late=late, primer=primer)
        for x, y in zip(again[0] + again[1], straight[0] + straight[1], strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)


def test_a_genre_switch_primes_the_gpt_and_the_decoder_with_the_nearest_real_snippet() -> None:
    """``switch_primer`` (L, bank): at the switch the GPT window holds the bank's snippet of the new style whose last
    real pose is nearest the performer's last decoded frame (brute force over the stored features): its L tokens are
    the inputs of positions 0 .. L-1, so the switch token is drawn from the GPT's logits for that window under the
    new genre; the restarted decoder decodes the snippet first (the switch token's frames are those of the snippet
    and the token decoded as one sequence); the other performer, every frame before the switch, and a dance without a
    switch are untouched."""
    L = 4
    _, plain = _switched_frames(True, 0, 5)
    _, primed = _switched_frames(True, 0, 5, primer=L)
    for j in range(15):
        np.testing.assert_array_equal(primed[0][j], plain[0][j])
    for j in range(27):
        np.testing.assert_array_equal(primed[1][j], plain[1][j])
    _, none = _switched_frames(True, 0, None, primer=L)
    _, base = _switched_frames(True, 0, None)
    for x, y in zip(none[0] + none[1], base[0] + base[1], strict=True):
        np.testing.assert_array_equal(x, y)
    # Which snippet: replay the dance to just before the switch and compare with brute force.
    gpt, vq = _gpt_vq()
    cond = _cond(9)
    bank = _bank()
    g2 = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(1, 2.0), device="cpu"), vq, seed=4,
                        genre_guidance=2.0, switch_decoder=True, switch_ease=0, switch_primer=(L, bank))
    pid = g2.add_performer(Controls(genre=1))
    for t in range(5):
        g2.step(cond[t])
    p = g2.get(pid)
    assert p.last_vec is not None
    q = pose_feature(*p.last_vec, hip_weight=3.0)
    sb = bank.styles["pop"]
    real = (sb.proj.astype(np.float32) @ bank.components) + bank.mean  # the stored features, back from the projection
    d = np.linalg.norm(real - q, axis=1)
    d[sb.pos[sb.ends] < L - 1] = np.inf
    t_end = int(sb.ends[int(np.argmin(d))])
    want_up, want_down = sb.up[t_end - L + 1 : t_end + 1], sb.down[t_end - L + 1 : t_end + 1]
    g2.set_genre(pid, 2)
    g2.step(cond[5])
    np.testing.assert_array_equal(p.hist_up[: L - 1], want_up[: L - 1])
    np.testing.assert_array_equal(p.hist_down[: L - 1], want_down[: L - 1])
    np.testing.assert_array_equal(p.hist_up[L - 1], want_up[L - 1])  # the switch step's input: the last one
    assert p.state.pos == L
    # the decoder decoded the snippet, then the switch token, as one sequence
    toks_up = np.append(want_up, p.tok_up[-1])[None]
    toks_down = np.append(want_down, p.tok_down[-1])[None]
    with torch.no_grad():
        dec_up, _ = vq.decode(torch.from_numpy(toks_up), torch.from_numpy(toks_down))
    vec = p.vectors
    assert vec is not None
    np.testing.assert_allclose(vec[0], dec_up[0, -4:].numpy(), atol=1e-4)


class _TwoForwards(DanceGenerator):
    """The switch as before session 11: the unconditional row's history rewritten by its own forward at once."""

    def restart_window(self, p, keep, primer=None):  # type: ignore[no-untyped-def]
        super().restart_window(p, keep, primer)
        self.flush_uncond()


def test_a_primed_switch_rewrites_both_guidance_rows_in_one_forward() -> None:
    """The switch step of a primed genre switch rewrites the conditional row (new genre) and the unconditional row
    (no genre) in one batched history forward, not two; its frames are those of the two separate forwards."""
    gpt, vq = _gpt_vq()
    cond = _cond(8)
    frames: dict[str, list[np.ndarray]] = {}
    calls: dict[str, list[int]] = {}
    for name, cls in (("one", DanceGenerator), ("two", _TwoForwards)):
        gen = cls(TorchBackend(gpt, capacity=cache_rows(1, 2.0), device="cpu"), vq, seed=4, genre_guidance=2.0,
                  switch_decoder=True, switch_ease=0, switch_primer=(4, _bank()))
        pid = gen.add_performer(Controls(genre=1))
        seen: list[int] = []
        real = gen.backend.rewrite_history

        def spy(states, *a, _real=real, _seen=seen, **k):  # type: ignore[no-untyped-def]
            _seen.append(len(states))
            return _real(states, *a, **k)

        gen.backend.rewrite_history = spy  # type: ignore[method-assign]
        out = []
        for t in range(8):
            if t == 5:
                gen.set_genre(pid, 2)
            out += [np.concatenate([sf.root.ravel(), sf.quat.ravel()]) for sf in gen.step(cond[t])]
        frames[name], calls[name] = out, seen
    assert calls == {"one": [2], "two": [1, 1]}
    for x, y in zip(frames["one"], frames["two"], strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)


def test_the_primer_bank_round_trips_and_rejects_other_files(tmp_path: Path) -> None:
    bank = _bank(styles=("pop", "salsa"))
    bank.save(tmp_path / "b.safetensors")
    back = PrimerBank.load(tmp_path / "b.safetensors")
    assert sorted(back.styles) == ["pop", "salsa"] and back.hip_weight == 3.0
    rng = np.random.default_rng(3)
    up, low = rng.normal(size=72), rng.normal(size=61)
    a, b = bank.choose("salsa", up, low, 5), back.choose("salsa", up, low, 5)
    assert a is not None and b is not None
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert bank.choose("modern", up, low, 5) is None  # a style the bank lacks: no primer
    assert bank.choose("salsa", up, low, 41) is None  # longer than any take
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a bank")
    with pytest.raises(ValueError, match="not a primer bank"):
        PrimerBank.load(bad)


def test_the_cards_primer_loads_the_folders_bank_and_says_when_it_is_missing(tmp_path: Path) -> None:
    """``sampling.genre_switch.primer`` N: the model folder's ``primer_bank.safetensors`` reaches the generator
    ``play``/``live`` build with N; without the file, loading the folder fails with a one-line error naming it;
    a primer outside [0, 32] tokens is refused by the card check."""
    from engine.models.dance_model import load_dance_model
    from engine.models.switch_primer import PRIMER_BANK_FILE
    from engine.runtime.assemble import ModelSpec, build_model
    from tests.models.test_genre_guidance import _model_dir

    sampling = {"genre_guidance": 2.0, "genre_switch": {"decoder": "restart", "primer": 4}}
    d = _model_dir(tmp_path / "a", sampling)
    with pytest.raises(FileNotFoundError, match=PRIMER_BANK_FILE):
        load_dance_model(d)
    _bank().save(d / PRIMER_BANK_FILE)
    gen = build_model(ModelSpec(model=d, backend="torch", decode="torch")).inner  # type: ignore[attr-defined]
    assert gen.switch_primer[0] == 4 and sorted(gen.switch_primer[1].styles) == ["pop"]
    for bad in (33, -1, True, 2.5):
        with pytest.raises(ValueError, match=r"genre_switch\.primer"):
            load_dance_model(_model_dir(tmp_path / f"b{bad}", {"genre_switch": {"primer": bad}}))
    with pytest.raises(ValueError, match="switch_primer"):
        DanceGenerator(TorchBackend(_gpt_vq()[0], capacity=2, device="cpu"), _gpt_vq()[1], switch_primer=(4, None))

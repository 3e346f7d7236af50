"""The GPT motion-model kind: one state object per performer, reset and rewind move all of it together."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from engine.models.gpt import CrossCondGPT, GPTConfig
from engine.models.gpt_dancer import DanceGenerator
from engine.models.vqvae import VQVAE, VQVAEConfig
from export.torch_backend import TorchBackend


def _gen(guided: bool = False, jit: bool = True) -> DanceGenerator:
    from engine.models.beat_guidance import OFF, GuidanceConfig

    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    gen = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu", jit=jit), vq, seed=0,
                         guidance=GuidanceConfig(candidates=8) if guided else OFF)
    gen.add_performer()
    gen.add_performer()
    return gen


def test_rewind_returns_every_part_of_the_performer_to_an_earlier_step() -> None:
    gen = _gen()
    cond = np.zeros(gen.backend.config.cond_dim, np.float32)
    history = []
    for _ in range(6):
        gen.step(cond)
        p = gen.get(0)
        history.append((p.state.pos, int(p.tok_up[-1]), int(p.tok_down[-1]), p.root_xz.copy(), p.last_vec))
    p = gen.get(0)
    gen.rewind(0, 2, root_xz=np.array([1.5, -2.0]))
    pos, up, down, xz, last_vec = history[3]
    assert p.state.pos == pos and p.n_tokens == 4
    assert (int(p.tok_up[-1]), int(p.tok_down[-1])) == (up, down)
    assert (p.state.prev_up, p.state.prev_down) == (up, down)  # the next step is fed the kept token
    # within REWIND_TOKENS the root and foot locking go back to where they were after the kept token
    assert last_vec is not None and p.last_vec is not None
    assert all(np.array_equal(a, b) for a, b in zip(p.last_vec, last_vec, strict=True))
    assert np.array_equal(p.root_xz, xz)
    assert gen.get(1).state.pos == 6  # the other performer is untouched
    out = gen.step(cond)
    assert out[0].step == 4 and gen.get(0).state.pos == 5


def test_a_rewind_deeper_than_the_kept_states_restarts_the_decoder_where_it_is_put() -> None:
    from engine.models.gpt_dancer import REWIND_TOKENS

    gen = _gen()
    cond = np.zeros(gen.backend.config.cond_dim, np.float32)
    for _ in range(REWIND_TOKENS + 3):
        gen.step(cond)
    p = gen.get(0)
    gen.rewind(0, REWIND_TOKENS + 1, root_xz=np.array([1.5, -2.0]))
    assert p.n_tokens == 2
    assert np.allclose(p.root_xz, [1.5, -2.0]) and p.last_vec is None
    assert all(not h[p.slot].any() for h in gen.decoder.hists)  # the decoder starts over
    out = gen.step(cond)
    assert out[0].step == 2
    assert np.allclose(out[0].root[0, [0, 2]], [1.5, -2.0], atol=0.2)  # continues where it was put


@pytest.mark.parametrize(("staged", "guided"), [(False, False), (True, False), (True, True)])
def test_a_rewind_continues_exactly_as_if_the_discarded_tokens_never_were(staged: bool, guided: bool) -> None:
    """Rewound by 3 tokens and given the same random stream, a performer's next frames are exactly those of a
    performer that never drew the discarded tokens: decoder, foot locking, root, beat-guidance memory (and the
    staging) go back too, so a re-plan leaves no seam. The other performer is not stepped by a step of some
    performers."""
    from engine.models.staging import StagedModel, StagingConfig

    def build() -> tuple[DanceGenerator, object]:
        gen = _gen(guided)
        return gen, (StagedModel(gen, StagingConfig()) if staged else gen)

    cond = np.random.default_rng(0).normal(size=(12, _gen().backend.config.cond_dim)).astype(np.float32)
    ang = np.array([0.0, 0.5, 1.0, 1.5]) * np.pi / 2  # a predicted beat on the first frame of every other token
    cond[::2, -8:] = np.stack([np.sin(ang), np.cos(ang)], -1).reshape(-1)
    a_gen, a = build()
    b_gen, b = build()
    for t in range(8):
        a.step(cond[t])  # type: ignore[attr-defined]
    for t in range(5):
        b.step(cond[t])  # type: ignore[attr-defined]
    a.rewind(0, 3, root_xz=np.array([9.0, 9.0]))  # type: ignore[attr-defined]  # (not needed: the state is kept)
    pa, pb = a_gen.get(0), b_gen.get(0)
    pa.rng.set_state(pb.rng.get_state())
    other = a_gen.get(1).state.pos
    for t in range(5, 8):
        fa = a.step(cond[t], [0])  # type: ignore[attr-defined]
        fb = b.step(cond[t], [0])  # type: ignore[attr-defined]
        assert [f.pid for f in fa] == [0] and fa[0].step == t
        np.testing.assert_allclose(fa[0].root, fb[0].root, atol=1e-5)
        np.testing.assert_allclose(fa[0].quat, fb[0].quat, atol=1e-5)
    assert a_gen.get(1).state.pos == other  # performer 1 was not stepped
    assert a_gen.guided_tokens > 0 if guided else a_gen.guided_tokens == 0


def test_reset_starts_over_where_it_stands() -> None:
    gen = _gen()
    cond = np.zeros(gen.backend.config.cond_dim, np.float32)
    for _ in range(3):
        gen.step(cond)
    p = gen.get(1)
    xz = p.root_xz.copy()
    gen.reset(1)
    bos = gen.backend.config.bos_id
    assert p.state.pos == 0 and p.n_tokens == 0 and (p.state.prev_up, p.state.prev_down) == (bos, bos)
    assert np.array_equal(p.root_xz, xz) and p.keyframe_until is None
    assert gen.performer_ids() == [0, 1] and gen.kind == "vqvae-gpt" and gen.frames_per_step == 4
    gen.reset(1, root_xz=np.array([0.25, -0.5]))  # the runtime starts over at the origin after calibrating
    assert np.array_equal(p.root_xz, [0.25, -0.5])


def test_guided_steps_commit_the_chosen_tokens_decoded_as_a_plain_decode_would() -> None:
    """Steered tokens are committed from the candidate peek: the frames and decoder state equal decoding the
    chosen tokens step by step in a separate decoder."""
    from engine.models.beat_guidance import GuidanceConfig
    from engine.models.vqvae_stream import StreamingDecoder

    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    gen = DanceGenerator(TorchBackend(gpt, capacity=3, device="cpu"), vq, seed=0, foot_lock=False,
                         guidance=GuidanceConfig(candidates=8))
    for _ in range(3):
        gen.add_performer()
    ref = StreamingDecoder(vq, 3)
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    frames = gen._frames
    gen._frames = lambda p, up, low: (seen.append((up.copy(), low.copy())), frames(p, up, low))[1]  # type: ignore[method-assign]
    cfg = gen.backend.config
    rng = np.random.default_rng(1)
    ang = np.array([0.0, 0.5, 1.0, 1.5]) * np.pi / 2  # beat phase 0 on the token's first frame
    for _ in range(12):
        cond = rng.normal(size=(3, cfg.cond_dim)).astype(np.float32)
        cond[1, -8:] = np.stack([np.sin(ang), np.cos(ang)], -1).reshape(-1)  # performer 1 always near a beat
        before = gen.guided_tokens
        seen.clear()
        gen.step(cond)
        ps = [gen.get(i) for i in range(3)]
        u, d = ref.step(torch.tensor([int(p.tok_up[-1]) for p in ps]), torch.tensor([int(p.tok_down[-1]) for p in ps]))
        for i in range(3):  # equal up to float rounding (torch's kernels differ with the batch size)
            assert np.allclose(seen[i][0], u[i].numpy(), atol=1e-5) and np.allclose(seen[i][1], d[i].numpy(), atol=1e-5)
        assert gen.guided_tokens > before  # performer 1 was steered
    for ha, hb in zip(gen.decoder.hists, ref.hists, strict=True):
        assert torch.allclose(ha, hb, atol=1e-5)


def test_energy_reaches_the_gpt_in_the_global_vector_of_models_trained_with_it() -> None:
    from engine.models.conditioning import ENERGY_DIMS, TEXT_DIM

    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, text_dim=TEXT_DIM + ENERGY_DIMS)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    gen = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, seed=0)
    assert gen.capabilities.energy
    gen.add_performer()
    gen.add_performer()
    seen: list[np.ndarray | None] = []
    step = gen.backend.step
    gen.backend.step = lambda states, cond, genre, text=None: (seen.append(text), step(states, cond, genre, text))[1]  # type: ignore[method-assign]
    cond = np.zeros(gen.backend.config.cond_dim, np.float32)
    gen.step(cond)
    assert seen[-1] is None  # nothing set: no global vector
    gen.controls(1).energy = 0.8
    gen.step(cond)
    t = seen[-1]
    assert t is not None and t.shape == (2, TEXT_DIM + ENERGY_DIMS)
    assert not t[0].any()  # per performer: performer 0 has no energy
    assert t[1, TEXT_DIM:] == pytest.approx([0.6, 1.0]) and not t[1, :TEXT_DIM].any()
    assert not _gen().capabilities.energy  # a model without the entries


def test_a_keyframe_pins_the_gpt_slot_and_the_pose_is_reached_at_its_frame() -> None:
    from engine.models.inbetween import joint_mask

    gen = _gen()
    cond = np.zeros(gen.backend.config.cond_dim, np.float32)
    for _ in range(2):
        gen.step(cond)
    p = gen.get(0)
    rng = np.random.default_rng(0)
    quat = np.concatenate([np.ones((gen.n_joints, 1)), rng.uniform(-0.3, 0.3, (gen.n_joints, 3))], axis=1)
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    gen.set_keyframe(0, 30, np.array([0.0, 0.85, 0.0]), quat, joints="upper")
    target = 2 * 4 - 1 + 30  # frames after the newest generated one (frame 7)
    assert p.keyframe_until == target // 4 and p.state.keyframes == 1
    frames = {}
    for _ in range(25):
        for sf in gen.step(cond):
            if sf.pid == 0:
                for i in range(len(sf.root)):
                    frames[sf.step * 4 + i] = (sf.root[i].copy(), sf.quat[i].copy())
    up = joint_mask(gen.skeleton, "upper")
    got = frames[target][1]
    # the upper body equals the pinned rotations (the hip, which carries the heading, is not upper body)
    dots = np.abs((got[up] * quat[up]).sum(-1))
    assert dots.min() > 1 - 1e-5
    assert p.keyframe_until is None and not p.inbetween.targets  # passed: slot cleared, blend released
    assert p.state.keyframes == 0


def test_a_beat_conditioned_decoder_gets_each_performers_predicted_phase_live_and_guided() -> None:
    """With a beat-conditioned VQ-VAE decoder, every token (plain or steered) is decoded with the beat features of
    its performer's conditioning row, and the frames equal the offline decode of the tokens with those features."""
    from engine.models.beat_guidance import GuidanceConfig
    from engine.models.conditioning import decoder_beat_features

    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16, beat_dim=4, beat_hidden=8)).eval()
    with torch.no_grad():
        for dec in (vq.dec_up, vq.dec_down):
            assert dec.beat is not None
            dec.beat.out.weight.normal_(0.0, 0.5)  # a trained beat input (a fresh one adds 0)
    gen = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, seed=0, foot_lock=False,
                         guidance=GuidanceConfig(candidates=8))
    gen.add_performer()
    gen.add_performer()
    seen: list[list[np.ndarray]] = [[], []]
    frames = gen._frames
    gen._frames = lambda p, up, low: (seen[p.pid].append(up.copy()), frames(p, up, low))[1]  # type: ignore[method-assign]
    rng = np.random.default_rng(2)
    conds = []
    for t in range(10):
        cond = rng.normal(size=(2, gen.backend.config.cond_dim)).astype(np.float32)
        ang = 2 * np.pi * (np.arange(4) / 8 + t * 0.37 + np.array([[0.0], [0.5]]))  # different phases per performer
        cond[:, -8:] = np.stack([np.sin(ang), np.cos(ang)], -1).reshape(2, -1)
        conds.append(cond)
        gen.step(cond)
    assert gen.guided_tokens > 0
    for i in range(2):
        p = gen.get(i)
        toks_u = torch.tensor(p.tok_up[-10:]).long()[None]
        toks_d = torch.tensor(p.tok_down[-10:]).long()[None]
        beat = torch.from_numpy(np.concatenate([decoder_beat_features(c[i : i + 1, -8:])[0] for c in conds]))[None]
        with torch.no_grad():
            ref_u, _ = vq.decode(toks_u, toks_d, beat)
            other_u, _ = vq.decode(toks_u, toks_d, beat.roll(4, dims=1))
        got = np.concatenate(seen[i])
        assert np.allclose(got, ref_u[0].numpy(), atol=1e-4)
        assert not np.allclose(got, other_u[0].numpy(), atol=1e-3)  # the features matter


def _text_gen(text_weight: float, classes: dict[str, str]) -> DanceGenerator:
    from engine.models.beat_guidance import GuidanceConfig
    from engine.models.protocol import Controls

    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, text_dim=16)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    gen = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, seed=0,
                         guidance=GuidanceConfig(candidates=8, text_weight=text_weight),
                         text_classes=lambda emb: classes)
    text = np.linspace(-1.0, 1.0, 16).astype(np.float32)
    gen.add_performer(Controls(text=text))
    gen.add_performer()  # no text: never steered by the text term
    return gen


def _tokens(gen: DanceGenerator, n: int) -> list[tuple[int, int, int, int]]:
    cond = np.zeros((n, gen.backend.config.cond_dim), np.float32)  # no tempo belief: no beat is ever near
    out = []
    for t in range(n):
        gen.step(cond[t])
        a, b = gen.get(0), gen.get(1)
        out.append((int(a.tok_up[-1]), int(a.tok_down[-1]), int(b.tok_up[-1]), int(b.tok_down[-1])))
    return out


def test_the_text_term_steers_only_performers_with_a_matched_text_and_weight_0_changes_nothing() -> None:
    plain = _text_gen(0.0, {"turn": "high"})
    ref = _tokens(plain, 6)
    assert plain.guided_tokens == 0  # no beats, no text term: plain sampling
    assert _tokens(_text_gen(3.0, {}), 6) == ref  # a text that names no attribute steers nothing
    assert _tokens(_text_gen(3.0, {"speed": "mid"}), 6) == ref
    steered = _text_gen(3.0, {"turn": "high"})
    got = _tokens(steered, 6)
    assert steered.guided_tokens == 6  # every token of performer 0, none of performer 1
    assert [g[:2] for g in got] != [r[:2] for r in ref]
    assert [g[2:] for g in got] == [r[2:] for r in ref]  # its draws (candidates, resampling) are its own


def _energy_gen(energy_weight: float, energy: float | None, **feedback: Any) -> DanceGenerator:
    from engine.models.beat_guidance import GuidanceConfig
    from engine.models.protocol import Controls

    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, text_dim=16)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    gen = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, seed=0,
                         guidance=GuidanceConfig(candidates=8, energy_weight=energy_weight, **feedback))
    gen.add_performer(Controls(energy=energy))
    gen.add_performer()  # no energy: never steered by the energy term
    return gen


def test_the_energy_term_steers_only_performers_with_an_energy_off_the_middle() -> None:
    ref = _tokens(_energy_gen(0.0, None), 6)
    assert _tokens(_energy_gen(2.0, None), 6) == ref  # no energy set: sampled as without the term
    mid = _energy_gen(2.0, 0.5)
    assert _tokens(mid, 6) == _tokens(_energy_gen(0.0, 0.5), 6) and mid.guided_tokens == 0  # level 0.5: no pull
    calm, lively = _energy_gen(2.0, 0.0), _energy_gen(2.0, 1.0)
    got_calm, got_lively = _tokens(calm, 6), _tokens(lively, 6)
    assert calm.guided_tokens == lively.guided_tokens == 6  # every token of performer 0, none of performer 1
    assert [g[:2] for g in got_calm] != [g[:2] for g in got_lively]
    assert [g[2:] for g in got_calm] == [g[2:] for g in got_lively] == [r[2:] for r in ref]


def test_the_energy_feedback_steers_every_level_toward_its_genre_s_target_speed() -> None:
    """With ``energy_speeds`` the generator gives each performer with an energy the target speed of its level and
    genre before each token, and steers every token of it (level 0.5 too, which the proportional rule leaves
    alone); the performer without an energy is sampled exactly as without the term."""
    from engine.models.conditioning import GENRES

    fb = {"energy_speeds": (("salsa", 0.4), ("*", 0.6)), "energy_span": (0.5, 1.5)}
    ref = _tokens(_energy_gen(0.0, None), 6)
    mid = _energy_gen(2.0, 0.5, **fb)
    got = _tokens(mid, 6)
    assert mid.guided_tokens == 6  # every token of performer 0, none of performer 1
    assert [g[2:] for g in got] == [r[2:] for r in ref]
    genre = GENRES[mid.get(0).controls.genre]
    want = (0.4 if genre == "salsa" else 0.6) * 1.0
    assert mid.get(0).guide.energy_speed == pytest.approx(want)
    assert mid.get(1).guide.energy_speed == 0.0
    assert _tokens(_energy_gen(2.0, None, **fb), 6) == ref  # no energy set: as without the term


def test_a_rewind_under_the_text_term_continues_exactly() -> None:
    """Rewound by 3 tokens with the random stream put back, a text-steered performer redraws exactly the tokens
    of one that never drew the discarded ones."""
    a, b = _text_gen(3.0, {"turn": "low"}), _text_gen(3.0, {"turn": "low"})
    cond = np.random.default_rng(0).normal(size=(8, a.backend.config.cond_dim)).astype(np.float32)
    for t in range(8):
        a.step(cond[t])
    for t in range(5):
        b.step(cond[t])
    a.rewind(0, 3)
    a.get(0).rng.set_state(b.get(0).rng.get_state())
    for t in range(5, 8):
        fa, fb = a.step(cond[t], [0]), b.step(cond[t], [0])
        assert (int(a.get(0).tok_up[-1]), int(a.get(0).tok_down[-1])) == (int(b.get(0).tok_up[-1]),
                                                                          int(b.get(0).tok_down[-1]))
        np.testing.assert_allclose(fa[0].quat, fb[0].quat, atol=1e-5)
    assert a.guided_tokens >= 8  # every step of performer 0 was steered


@pytest.fixture(scope="module")
def window_gpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[CrossCondGPT, object]:
    """A GPT with an 8-token attention window and its exported step (for the onnxruntime backend)."""
    from export.select import ensure_onnx

    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=32, n_head=2, context=8, n_keyframe_slots=2)).eval()
    return gpt, ensure_onnx(gpt, tmp_path_factory.mktemp("window_onnx"))


def _window_gen(window_gpt: tuple[CrossCondGPT, object], backend: str, rows: int, guided: bool = False
                ) -> DanceGenerator:
    """Two performers over the 8-token GPT; ``rows`` cache rows each (1 plain, 2 genre guidance, 3 with a text
    scale)."""
    from engine.models.beat_guidance import OFF, GuidanceConfig
    from export.ort_backend import OnnxRuntimeBackend

    gpt, onnx = window_gpt
    torch.manual_seed(1)
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    be = (TorchBackend(gpt, capacity=2 * rows, device="cpu", jit=False) if backend == "torch"
          else OnnxRuntimeBackend(gpt, 2 * rows, onnx, threads=1))  # type: ignore[arg-type]
    gen = DanceGenerator(be, vq, seed=0, guidance=GuidanceConfig(candidates=8) if guided else OFF,
                         genre_guidance=3.0 if rows > 1 else None, text_guidance=2.0 if rows > 2 else None,
                         rewrite_tokens=None)
    gen.add_performer()
    gen.add_performer()
    return gen


@pytest.mark.parametrize(("backend", "rows", "guided", "control"), [
    ("torch", 1, False, False), ("torch", 2, True, True), ("torch", 3, False, True),
    ("onnxruntime", 1, False, False), ("onnxruntime", 3, False, True),
])
def test_a_rewind_past_the_attention_window_continues_exactly(window_gpt: tuple[CrossCondGPT, object], backend: str,
                                                               rows: int, guided: bool, control: bool) -> None:
    """Past the attention window the discarded steps overwrote the ring slots of the window's oldest positions (and
    history rewrites of a control among them overwrote the newest): a rewind puts them back, so the rewound
    performer's next tokens and frames are bit for bit those of a twin that never made the discarded steps (given
    the same random stream and controls). With ``control``, a text set during the discarded steps (history rewrites
    of the conditional and genre-only rows) and given to the twin at the rewind point."""
    a, b = _window_gen(window_gpt, backend, rows, guided), _window_gen(window_gpt, backend, rows, guided)
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(24, a.backend.config.cond_dim)).astype(np.float32)
    ang = np.array([0.0, 0.5, 1.0, 1.5]) * np.pi / 2
    cond[::2, -8:] = np.stack([np.sin(ang), np.cos(ang)], -1).reshape(-1)
    text = rng.normal(size=a.backend.config.text_dim).astype(np.float32)
    b.get(0).controls.text = a.get(0).controls.text = text * 0.1  # a text all along (the genre-only row is live)
    for t in range(14):
        if control and t == 12:
            a.get(0).controls.text = text
        a.step(cond[t])
    for t in range(11):  # 11 > 8: the discarded steps 11-13 overwrote the slots of positions 3-5
        b.step(cond[t])
    a.rewind(0, 3)
    if control:
        b.get(0).controls.text = text
    pa, pb = a.get(0), b.get(0)
    assert _same_cache(a, b)  # every cache row of the performer, keys and values, bit for bit
    pa.rng.set_state(pb.rng.get_state())
    for t in range(11, 24):
        fa, fb = a.step(cond[t], [0]), b.step(cond[t], [0])
        assert (int(pa.tok_up[-1]), int(pa.tok_down[-1])) == (int(pb.tok_up[-1]), int(pb.tok_down[-1])), t
        assert np.array_equal(fa[0].root, fb[0].root) and np.array_equal(fa[0].quat, fb[0].quat), t
        assert _same_cache(a, b), t
    assert pa.state.pos == pb.state.pos == 24


def _same_cache(a: DanceGenerator, b: DanceGenerator, pid: int = 0) -> bool:
    """Whether performer ``pid``'s cache rows (keys and values of every layer and slot, and the GPT positions) are
    the same in both generators."""
    pa, pb = a.get(pid), b.get(pid)
    for sa, sb in zip(pa.rows(), pb.rows(), strict=True):
        if sa.pos != sb.pos and (sa is not pa.textless or pa.textless_live):
            return False
        if sa is pa.textless and not pa.textless_live:  # not stepped now: written afresh when it is
            continue
        for buf_a, buf_b in ((a.backend.k, b.backend.k), (a.backend.v, b.backend.v)):  # type: ignore[attr-defined]
            ra, rb = buf_a[:, sa.row], buf_b[:, sb.row]
            if not np.array_equal(np.asarray(ra), np.asarray(rb)):
                return False
    return True


def test_a_rewind_during_a_keyframe_approach_continues_exactly() -> None:
    """A re-plan while the dance blends towards a pinned pose (and one rewinding from past the pose back into its
    approach) gives exactly the frames of a twin that never made the discarded steps: the blend's start, weight
    and release, the pinned GPT slot, and a keyframe added during the discarded steps, all as the twin has them."""
    from engine.models.inbetween import InBetweener
    from engine.models.pose_repr import metric_cmu_skeleton

    rng = np.random.default_rng(3)
    nj = metric_cmu_skeleton().num_joints
    quat = np.concatenate([np.ones((nj, 1)), rng.uniform(-0.6, 0.6, (nj, 3))], axis=1)
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    root = np.array([0.0, 0.7, 0.0])

    def build() -> DanceGenerator:
        gen = _gen(jit=False)
        gen.inbetweener = InBetweener(gen.skeleton, 30.0, speed_budget_ms=0.5)  # long blends: several tokens
        return gen

    cond = np.random.default_rng(0).normal(size=(20, 168)).astype(np.float32)
    for discard, made in ((3, 9), (4, 12)):  # within the approach; from past the target (frame 42) back into it
        a, b = build(), build()
        for gen, n in ((a, made), (b, made - discard)):
            for t in range(n):
                if t == 2:
                    gen.set_keyframe(0, 34, root, quat)  # frame 7 + 34 = 41
                gen.step(cond[t])
        a.set_keyframe(0, 50, root, quat[::-1].copy(), joints="upper")  # added during the discarded steps ...
        a.rewind(0, discard)
        b.set_keyframe(0, 50 + 4 * discard, root, quat[::-1].copy(), joints="upper")  # ... the twin: at the rewind
        pa, pb = a.get(0), b.get(0)
        assert pb.inbetween.start is not None  # the approach had begun before the kept token
        assert (pa.inbetween.start, pa.inbetween.reached) == (pb.inbetween.start, pb.inbetween.reached)
        pa.rng.set_state(pb.rng.get_state())
        for t in range(made - discard, 20):
            fa, fb = a.step(cond[t], [0]), b.step(cond[t], [0])
            assert np.array_equal(fa[0].root, fb[0].root) and np.array_equal(fa[0].quat, fb[0].quat), (discard, t)
        assert [t.frame for t in pa.inbetween.targets] == [t.frame for t in pb.inbetween.targets]
        assert pa.inbetween.rushed == pb.inbetween.rushed


def test_keeping_rewinds_changes_no_frame(window_gpt: tuple[CrossCondGPT, object]) -> None:
    """What a step keeps for exact rewinds (cache entries read before its writes, history, blend) is only read:
    with and without it the frames are bit for bit the same, through a text switch and a keyframe."""
    a, b = _window_gen(window_gpt, "torch", 3, guided=True), _window_gen(window_gpt, "torch", 3, guided=True)
    b.keep_rewinds(0)
    rng = np.random.default_rng(2)
    cond = rng.normal(size=(16, a.backend.config.cond_dim)).astype(np.float32)
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (a.n_joints, 1))
    text = rng.normal(size=a.backend.config.text_dim).astype(np.float32)
    for t in range(16):
        if t == 3:
            for g in (a, b):
                g.set_keyframe(0, 20, np.array([0.0, 0.8, 0.0]), quat)
        if t == 9:
            for g in (a, b):
                g.get(0).controls.text = text
        for fa, fb in zip(a.step(cond[t]), b.step(cond[t]), strict=True):
            assert np.array_equal(fa.root, fb.root) and np.array_equal(fa.quat, fb.quat), t
        assert _same_cache(a, b, 0) and _same_cache(a, b, 1), t
    assert a.snapshots.nbytes() > 0 and b.snapshots.nbytes() == 0


def test_the_step_frames_are_the_vectors_conversion_to_the_bit() -> None:
    """The live step reuses foot locking's joint rotations and converts only the model joints: its frames are still
    exactly what converting the step's (locked) vectors gives, every joint, first step and later ones."""
    from engine.models.pose_repr import vectors_to_motion
    from engine.skeleton import rotations as R

    gen = _gen()
    assert gen.foot_lock
    rng = np.random.default_rng(5)
    for _ in range(3):
        starts = {p.pid: (float(p.root_xz[0]), float(p.root_xz[1])) for p in gen.performers}
        for sf in gen.step(rng.normal(size=gen.backend.config.cond_dim).astype(np.float32)):
            upper, lower = gen.get(sf.pid).vectors
            motion = vectors_to_motion(upper, lower, gen.skeleton, start_xz=starts[sf.pid])
            assert np.array_equal(sf.root, motion.root_pos.astype(np.float32))
            assert np.array_equal(sf.quat, R.matrix_to_quat(motion.rot).astype(np.float32))


def test_the_generator_gives_each_performer_its_genre_s_speed_ceiling() -> None:
    """``text_speed_ceilings`` (session 14): before each token the generator sets every guided performer's speed
    ceiling from its genre (the key's "*" for a genre it does not name); without the key it stays 0 (off)."""
    from engine.models.conditioning import GENRES

    gen = _energy_gen(2.0, 0.5, text_speed_ceilings=(("salsa", 0.3), ("*", 0.7)), text_ceiling_weight=1.0)
    _tokens(gen, 2)
    for pid in (0, 1):
        want = 0.3 if GENRES[gen.get(pid).controls.genre] == "salsa" else 0.7
        assert gen.get(pid).guide.speed_ceiling == pytest.approx(want)
    plain = _energy_gen(2.0, 0.5)
    _tokens(plain, 2)
    assert plain.get(0).guide.speed_ceiling == 0.0

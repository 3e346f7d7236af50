"""Every runnable backend decodes many performers exactly like the model's sliding-window forward."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models.gpt import CrossCondGPT, GPTConfig, Keyframes
from engine.models.sampling import sample_tokens
from export.base import DecodeBackend, PerformerState
from export.ort_backend import OnnxRuntimeBackend
from export.select import ensure_onnx
from export.torch_backend import TorchBackend

CFG = GPTConfig(
    vocab_size=16, n_layer=2, n_head=2, n_embd=16, cond_dim=6, n_genres=3, text_dim=5, context=4,
    n_keyframe_slots=2, dropout=0.0,
)


@pytest.fixture(scope="module")
def model() -> CrossCondGPT:
    torch.manual_seed(0)
    return CrossCondGPT(CFG).eval()


@pytest.fixture(scope="module")
def onnx_file(model: CrossCondGPT, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_onnx(model, tmp_path_factory.mktemp("export"))


Factory = Callable[[CrossCondGPT, int], DecodeBackend]


@pytest.fixture(params=["torch-jit", "torch-eager", "onnxruntime"])
def make(request: pytest.FixtureRequest, onnx_file: Path) -> Factory:
    if request.param == "torch-jit":
        return lambda m, cap: TorchBackend(m, cap, jit=True)
    if request.param == "torch-eager":
        return lambda m, cap: TorchBackend(m, cap, jit=False)
    return lambda m, cap: OnnxRuntimeBackend(m, cap, onnx_file, threads=1)


class Record:
    """Inputs one performer received, to replay through the full forward."""

    def __init__(self, genre: int, text: np.ndarray) -> None:
        self.genre, self.text = genre, text
        self.up: list[int] = []
        self.down: list[int] = []
        self.cond: list[np.ndarray] = []
        self.logits: list[torch.Tensor] = []
        self.kf: Keyframes | None = None


def _reference(model: CrossCondGPT, rec: Record) -> torch.Tensor:
    with torch.no_grad():
        lu, _ = model(
            torch.tensor([rec.up]), torch.tensor([rec.down]), torch.from_numpy(np.stack(rec.cond))[None],
            torch.tensor([rec.genre]), torch.from_numpy(rec.text)[None], keyframes=rec.kf,
        )
    return lu[0]


def _tick(be: DecodeBackend, sts: list[PerformerState], recs: dict[int, Record], rng: np.random.Generator,
          gen: torch.Generator) -> None:
    cond = rng.standard_normal((len(sts), CFG.cond_dim)).astype(np.float32)
    genre = np.array([recs[id(s)].genre for s in sts])
    text = np.stack([recs[id(s)].text for s in sts])
    for s, c in zip(sts, cond, strict=True):
        recs[id(s)].up.append(s.prev_up)
        recs[id(s)].down.append(s.prev_down)
        recs[id(s)].cond.append(c)
    res = be.step(sts, cond, genre, text)
    up = sample_tokens(res.logits_up, 1.0, None, gen)
    down = sample_tokens(res.logits_down, 1.0, None, gen)
    for i, s in enumerate(sts):
        recs[id(s)].logits.append(res.logits_up[i])
        s.feed(int(up[i]), int(down[i]))


def test_staggered_performers_release_subsets_and_keyframes_match_forward(make: Factory,
                                                                          model: CrossCondGPT) -> None:
    rng = np.random.default_rng(1)
    gen = torch.Generator().manual_seed(2)
    be = make(model, 5)
    recs: dict[int, Record] = {}
    done: list[Record] = []

    def admit() -> PerformerState:
        s = be.new_state()
        recs[id(s)] = Record(int(rng.integers(CFG.n_genres)), rng.standard_normal(CFG.text_dim).astype(np.float32))
        return s

    a, b = admit(), admit()
    for _ in range(3):
        _tick(be, be.states, recs, rng, gen)
    c = admit()  # joins late: different positions in one batch
    kf_up, kf_down, kf_pos = [3, 7], [1, 2], [9, 12]
    be.set_keyframes(c, kf_up, kf_down, kf_pos, recs[id(c)].genre, recs[id(c)].text)
    recs[id(c)].kf = Keyframes(torch.tensor([kf_up]), torch.tensor([kf_down]), torch.tensor([kf_pos]),
                               torch.ones(1, 2, dtype=torch.bool))
    for _ in range(2 * CFG.context + 1):  # past the ring wrap for everyone
        _tick(be, be.states, recs, rng, gen)
    be.release(a)  # c moves into a's row
    done.append(recs.pop(id(a)))
    d = admit()
    for i in range(CFG.context + 2):
        # Alternate all performers (contiguous rows) with a reordered subset (gathered rows).
        _tick(be, be.states if i % 2 == 0 else [d, b], recs, rng, gen)
    done.extend(recs.values())
    assert c.row == 0 and d.row == 2
    for rec in done:
        torch.testing.assert_close(torch.stack(rec.logits), _reference(model, rec), atol=1e-4, rtol=0)


def test_reset_and_clear_keyframes(make: Factory, model: CrossCondGPT) -> None:
    rng = np.random.default_rng(3)
    gen = torch.Generator().manual_seed(4)
    be = make(model, 2)
    s = be.new_state()
    rec = Record(1, rng.standard_normal(CFG.text_dim).astype(np.float32))
    be.set_keyframes(s, [1], [2], [5], 1, rec.text)
    for _ in range(3):
        _tick(be, [s], {id(s): Record(1, rec.text)}, rng, gen)
    be.reset_state(s)  # old ring contents and keyframes must not leak into the fresh stream
    assert (s.pos, s.prev_up, s.keyframes) == (0, CFG.bos_id, 0)
    recs = {id(s): rec}
    for _ in range(CFG.context + 1):
        _tick(be, [s], recs, rng, gen)
    torch.testing.assert_close(torch.stack(rec.logits), _reference(model, rec), atol=1e-4, rtol=0)


def test_bad_inputs_are_named(make: Factory, model: CrossCondGPT) -> None:
    be = make(model, 2)
    s = be.new_state()
    be.new_state()
    with pytest.raises(RuntimeError, match="capacity 2"):
        be.new_state()
    with pytest.raises(ValueError, match=r"cond must have shape \[1, 6\]"):
        be.step([s], np.zeros((1, 5), np.float32), np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="genre ids"):
        be.step([s], np.zeros((1, 6), np.float32), np.array([7]))
    with pytest.raises(ValueError, match="twice"):
        be.step([s, s], np.zeros((2, 6), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="slots"):
        be.set_keyframes(s, [1, 2, 3], [1, 2, 3], [4, 5, 6], 0)
    s.feed(CFG.vocab_size + 3, 0)
    with pytest.raises(ValueError, match="fed tokens"):
        be.step([s], np.zeros((1, 6), np.float32), np.zeros(1, np.int64))
    be.release(s)
    with pytest.raises(ValueError, match="does not belong"):
        be.step([s], np.zeros((1, 6), np.float32), np.zeros(1, np.int64))
    assert s.pos == 0  # failed steps do not advance


def test_cache_bytes(make: Factory, model: CrossCondGPT) -> None:
    be = make(model, 1)
    assert be.cache_bytes_per_performer() == 2 * CFG.n_layer * CFG.n_head * (2 + 4) * CFG.head_dim * 4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA-graph path cannot run here")
def test_torch_cuda_graph_matches_eager_cpu(model: CrossCondGPT) -> None:  # pragma: no cover - needs a GPU
    rng = np.random.default_rng(5)
    cpu = TorchBackend(model, 6)
    gpu = TorchBackend(model, 6, device="cuda", cuda_graph=True)
    assert next(model.parameters()).device.type == "cpu"  # the caller's model is not moved
    sc = [cpu.new_state() for _ in range(3)]
    sg = [gpu.new_state() for _ in range(3)]
    for i in range(2 * CFG.context + 3):
        n = 3 if i % 3 else 2  # batch 2 pads up to bucket 2, batch 3 up to 4 (row 3 free)
        cond = rng.standard_normal((n, CFG.cond_dim)).astype(np.float32)
        genre = np.zeros(n, np.int64)
        a = cpu.step(sc[:n], cond, genre)
        b = gpu.step(sg[:n], cond, genre)
        torch.testing.assert_close(b.logits_up, a.logits_up, atol=1e-4, rtol=0)
        tok = a.logits_up.argmax(-1)
        for s1, s2, t in zip(sc[:n], sg[:n], tok.tolist(), strict=True):
            s1.feed(t, t)
            s2.feed(t, t)


@pytest.mark.parametrize("keyframe", [False, True])
def test_rewrite_history_is_the_window_stepped_under_the_new_controls(make: Factory, model: CrossCondGPT,
                                                                      keyframe: bool) -> None:
    """A performer that danced ``context`` tokens under genre 0 / text t0, its history rewritten under genre 2 /
    text t1, steps exactly as one that was fed the same tokens under genre 2 / t1 from the start."""
    rng = np.random.default_rng(3)
    be = make(model, 2)
    a, b = be.new_state(), be.new_state()
    t0, t1 = (rng.standard_normal(CFG.text_dim).astype(np.float32) for _ in range(2))
    kf = ([5], [6], [CFG.context + 2])
    if keyframe:
        be.set_keyframes(a, *kf, 0, t0)
        be.set_keyframes(b, *kf, 2, t1)
    ups, downs, conds = [], [], []
    for _ in range(CFG.context):
        c = rng.standard_normal(CFG.cond_dim).astype(np.float32)
        ups.append(a.prev_up)
        downs.append(a.prev_down)
        conds.append(c)
        be.step([a, b], np.stack([c, c]), np.array([0, 2]), np.stack([t0, t1]))
        u, d = (int(x) for x in rng.integers(CFG.vocab_size, size=2))
        a.feed(u, d)
        b.feed(u, d)
    c = rng.standard_normal((2, CFG.cond_dim)).astype(np.float32)
    c[1] = c[0]
    before = be.step([a, b], c, np.array([2, 2]), np.stack([t1, t1]))
    assert not torch.allclose(before.logits_up[0], before.logits_up[1], atol=1e-3)  # the old history shows
    for s in (a, b):
        s.pos -= 1  # step that position again (the ring slot is rewritten by the step)
    be.rewrite_history([a], [ups], [downs], np.stack(conds)[None], [2], t1[None],
                       [(kf[2][0], kf[0][0], kf[1][0]) if keyframe else None])
    if keyframe:
        be.set_keyframes(a, *kf, 2, t1)  # the slot is encoded with the controls too (the generator re-pins it)
    after = be.step([a, b], c, np.array([2, 2]), np.stack([t1, t1]))
    torch.testing.assert_close(after.logits_up[0], after.logits_up[1], atol=1e-4, rtol=0)
    torch.testing.assert_close(after.logits_down[0], after.logits_down[1], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="history of"):
        be.rewrite_history([a], [ups * 2], [downs * 2], np.stack(conds * 2)[None], [2], t1[None])


def test_read_ring_copies_entries_and_write_ring_puts_them_back(make: Factory, model: CrossCondGPT) -> None:
    """What an exact rewind relies on: ``read_ring`` copies the keys/values at a slot of each state's row ([B, L, H,
    D], a copy: later steps do not change it), and ``write_ring`` puts exactly those back after steps overwrote them
    (a state may appear more than once, as a history rewrite's slots do)."""
    rng = np.random.default_rng(4)
    gen = torch.Generator().manual_seed(5)
    be = make(model, 3)
    sts = [be.new_state() for _ in range(3)]
    recs = {id(s): Record(int(rng.integers(0, CFG.n_genres)), rng.standard_normal(CFG.text_dim).astype(np.float32))
            for s in sts}
    for _ in range(CFG.context + 2):  # past the ring: every slot written
        _tick(be, sts, recs, rng, gen)

    def cache() -> np.ndarray:
        return np.stack([np.asarray(be.k), np.asarray(be.v)])  # type: ignore[attr-defined]

    states = [sts[2], sts[0], sts[0]]
    slots = np.array([be.slots_for(np.array([sts[2].pos]))[0], be.slots_for(np.array([sts[0].pos]))[0],
                      CFG.n_keyframe_slots])  # the next steps' slots, and another of row 0
    k, v = be.read_ring(states, slots)
    assert tuple(k.shape) == (3, CFG.n_layer, CFG.n_head, CFG.n_embd // CFG.n_head) == tuple(v.shape)
    before = cache()
    for i, (st, sl) in enumerate(zip(states, slots, strict=True)):
        assert np.array_equal(np.asarray(k[i]), before[0][:, st.row, :, sl])
        assert np.array_equal(np.asarray(v[i]), before[1][:, st.row, :, sl])
    for _ in range(3):
        _tick(be, sts, recs, rng, gen)  # overwrites those slots (and others)
    assert not np.array_equal(np.asarray(k[0]), cache()[0][:, sts[2].row, :, slots[0]])  # k is a copy, not a view
    be.write_ring(states, slots, k, v)
    after = cache()
    for st, sl in zip(states, slots, strict=True):
        assert np.array_equal(after[:, :, st.row, :, sl], before[:, :, st.row, :, sl])

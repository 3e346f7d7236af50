"""The streaming VQ-VAE decoder equals the full causal decoder, token by token, per performer row."""

from __future__ import annotations

import pytest
import torch

from engine.models.vqvae import VQVAE, VQVAEConfig
from engine.models.vqvae_stream import StreamingDecoder
from export.decoder_backend import create_decoder_runner


def _model(seed: int) -> VQVAE:
    torch.manual_seed(seed)
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16, n_res=3)).eval()
    with torch.no_grad():  # non-trivial normalisation so de-normalising is exercised too
        vq.up_mean.normal_()
        vq.up_std.uniform_(0.5, 2.0)
    return vq


def _tokens(seed: int, batch: int, n_tok: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """Random upper and lower token ids [batch, n_tok] and the generator that drew them (for further draws)."""
    g = torch.Generator().manual_seed(seed)
    iu = torch.randint(0, 512, (batch, n_tok), generator=g)
    idn = torch.randint(0, 512, (batch, n_tok), generator=g)
    return iu, idn, g


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_streaming_equals_full_decode(engine: str) -> None:
    vq = _model(1)
    n_tok, batch = 23, 3
    iu, idn, _ = _tokens(2, batch, n_tok)
    with torch.no_grad():
        full_up, full_down = vq.decode(iu, idn)  # [B, 4N, D]
    sd = StreamingDecoder(vq, batch, runner=create_decoder_runner(engine))
    outs_u, outs_d = [], []
    for t in range(n_tok):
        u, d = sd.step(iu[:, t], idn[:, t])
        outs_u.append(u)
        outs_d.append(d)
    assert torch.allclose(torch.cat(outs_u, 1), full_up, atol=1e-5)
    assert torch.allclose(torch.cat(outs_d, 1), full_down, atol=1e-5)


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_rows_are_independent_and_reset_restarts_a_row(engine: str) -> None:
    vq = _model(3)
    g = torch.Generator().manual_seed(4)
    seq = torch.randint(0, 512, (2, 10), generator=g)
    sd = StreamingDecoder(vq, batch=4, runner=create_decoder_runner(engine))
    # row 2 decodes seq[0]; row 0 decodes seq[1] stepped alone: each equals its own full decode
    for t in range(10):
        sd.step(seq[0, t : t + 1], seq[0, t : t + 1], rows=torch.tensor([2]))
        sd.step(seq[1, t : t + 1], seq[1, t : t + 1], rows=torch.tensor([0]))
    with torch.no_grad():
        ref_u, _ = vq.decode(seq[:1], seq[:1])
    sd.reset(2)
    outs = [sd.step(seq[0, t : t + 1], seq[0, t : t + 1], rows=torch.tensor([2]))[0] for t in range(10)]
    assert torch.allclose(torch.cat(outs, 1), ref_u, atol=1e-5)


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_peek_decodes_candidates_without_committing(engine: str) -> None:
    vq = _model(3)
    g = torch.Generator().manual_seed(4)
    sd = StreamingDecoder(vq, 2, runner=create_decoder_runner(engine))
    for _ in range(5):  # some history on both rows
        sd.step(torch.randint(0, 512, (2,), generator=g), torch.randint(0, 512, (2,), generator=g))
    before = [h.clone() for h in sd.hists]
    cand_u = torch.tensor([7, 8, 9, 10])
    cand_d = torch.tensor([1, 2, 3, 4])
    rows = torch.tensor([1, 1, 1, 0])  # three candidates for row 1, one for row 0
    pu, pd = sd.peek(cand_u, cand_d, rows)
    for h, b in zip(sd.hists, before, strict=True):
        assert torch.equal(h, b)  # nothing committed
    # Committing candidate 1 of row 1 gives exactly its peeked frames.
    u, d = sd.step(torch.tensor([0, 8]), torch.tensor([0, 2]))
    assert torch.allclose(u[1], pu[1], atol=1e-5) and torch.allclose(d[1], pd[1], atol=1e-5)
    assert not torch.allclose(pu[0], pu[2])  # different candidates decode differently


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_committing_peeked_candidates_equals_stepping_them(engine: str) -> None:
    vq = _model(5)
    g = torch.Generator().manual_seed(6)
    warm = [(torch.randint(0, 512, (3,), generator=g), torch.randint(0, 512, (3,), generator=g)) for _ in range(4)]
    a = StreamingDecoder(vq, 3, runner=create_decoder_runner(engine))
    b = StreamingDecoder(vq, 3, runner=create_decoder_runner(engine))
    for u, d in warm:
        a.step(u, d)
        b.step(u, d)
    # Upper candidates 7, 8 for row 2 and 9 for row 0; lower candidates 1, 2, 3 for row 2 and 4 for row 0.
    peeked = a.peek_state(torch.tensor([7, 8, 9]), torch.tensor([1, 2, 3, 4]), torch.tensor([2, 2, 0]),
                          torch.tensor([2, 2, 2, 0]))
    assert peeked[0].shape[0] == 3 and peeked[1].shape[0] == 4
    # row 2 keeps (upper 8, lower 3), row 0 keeps (9, 4): entries (1, 2) and (2, 3)
    a.commit_peeked(peeked, torch.tensor([2, 0]), torch.tensor([1, 2]), torch.tensor([2, 3]))
    bu, bd = b.step(torch.tensor([9, 8]), torch.tensor([4, 3]), rows=torch.tensor([0, 2]))
    # the same computation; bit-for-bit only up to float rounding (matrix kernels vary with the batch size)
    def same(x: torch.Tensor, y: torch.Tensor) -> bool:
        return torch.allclose(x, y, atol=1e-5, rtol=1e-5)

    assert same(peeked[0][1], bu[1]) and same(peeked[1][2], bd[1])
    assert same(peeked[0][2], bu[0]) and same(peeked[1][3], bd[0])
    for ha, hb in zip(a.hists, b.hists, strict=True):
        assert same(ha, hb)  # same state, so later tokens decode the same
    nxt = (torch.tensor([11, 12, 13]), torch.tensor([14, 15, 16]))
    assert all(same(x, y) for x, y in zip(a.step(*nxt), b.step(*nxt), strict=True))
    assert not same(peeked[0][0], peeked[0][1])  # different candidates decode differently


def _beat_model(seed: int) -> VQVAE:
    """A beat-conditioned decoder whose beat input is non-zero (trained ones are; a fresh one adds exactly 0)."""
    vq = _model(seed)
    torch.manual_seed(seed)
    with_beat = VQVAE(VQVAEConfig(hidden=32, code_dim=16, n_res=3, beat_dim=4, beat_hidden=8)).eval()
    with_beat.load_state_dict(vq.state_dict(), strict=False)
    with torch.no_grad():
        for dec in (with_beat.dec_up, with_beat.dec_down):
            assert dec.beat is not None
            dec.beat.out.weight.normal_(0.0, 0.5)
    return with_beat


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_beat_conditioned_streaming_equals_full_decode(engine: str) -> None:
    vq = _beat_model(7)
    n_tok, batch = 19, 2
    iu, idn, g = _tokens(8, batch, n_tok)
    beat = torch.rand(batch, 4 * n_tok, 4, generator=g)
    with torch.no_grad():
        full_up, full_down = vq.decode(iu, idn, beat)
        plain_up, _ = vq.decode(iu, idn, torch.zeros_like(beat))
    assert not torch.allclose(full_up, plain_up, atol=1e-3)  # the beat input changes the frames
    sd = StreamingDecoder(vq, batch, runner=create_decoder_runner(engine))
    assert sd.beat_dim == 4
    outs = [sd.step(iu[:, t], idn[:, t], beat=beat[:, 4 * t : 4 * t + 4]) for t in range(n_tok)]
    assert torch.allclose(torch.cat([u for u, _ in outs], 1), full_up, atol=1e-5)
    assert torch.allclose(torch.cat([d for _, d in outs], 1), full_down, atol=1e-5)
    # peek_state takes each entry's own beat features, the upper and lower entries apart
    pk = sd.peek_state(torch.tensor([3, 4]), torch.tensor([5]), torch.tensor([0, 1]), torch.tensor([1]),
                       beat_up=beat[:, :4], beat_down=beat[1:, 4:8])
    ref = sd.peek(torch.tensor([4]), torch.tensor([5]), torch.tensor([1]), beat=beat[1:, 4:8])
    assert torch.allclose(pk[1][0], ref[1][0], atol=1e-5)
    with pytest.raises(ValueError, match="beat features"):
        sd.step(iu[:, 0], idn[:, 0])


def test_a_zero_initialised_beat_input_decodes_as_the_plain_decoder() -> None:
    vq = _model(9)
    torch.manual_seed(0)
    with_beat = VQVAE(VQVAEConfig(hidden=32, code_dim=16, n_res=3, beat_dim=4)).eval()
    missing, unexpected = with_beat.load_state_dict(vq.state_dict(), strict=False)
    assert not unexpected and missing and all(".beat." in k for k in missing)
    g = torch.Generator().manual_seed(1)
    iu = torch.randint(0, 512, (1, 9), generator=g)
    with torch.no_grad():
        ref = vq.decode(iu, iu)
        got = with_beat.decode(iu, iu, torch.rand(1, 36, 4, generator=g))
    assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1])
    # and a plain decoder ignores beat features
    sd = StreamingDecoder(vq, 1)
    assert sd.beat_dim == 0
    u0, _ = sd.step(iu[:, 0], iu[:, 0], beat=torch.rand(1, 4, 4))
    assert torch.allclose(u0, ref[0][:, :4], atol=1e-5)


@pytest.mark.parametrize("beat_dim", [0, 4])
def test_feeding_tokens_at_once_equals_stepping_them(beat_dim: int) -> None:
    """``feed`` commits n tokens to one row in one pass (a genre switch's primer): the row decodes on exactly as
    after n steps (here: after some tokens already, then 7 fed, then 3 stepped); other rows are untouched."""
    vq = _beat_model(9) if beat_dim else _model(9)
    iu, idn, g = _tokens(10, 2, 14)
    beat = torch.rand(2, 4 * 14, 4, generator=g) if beat_dim else None

    def bt(t0: int, t1: int, row: int) -> torch.Tensor | None:
        return None if beat is None else beat[row, 4 * t0 : 4 * t1].reshape(t1 - t0, 4, 4)

    a, b = StreamingDecoder(vq, 2), StreamingDecoder(vq, 2)
    for t in range(4):
        for sd in (a, b):
            sd.step(iu[:, t], idn[:, t], beat=None if beat is None else beat[:, 4 * t : 4 * t + 4])
    for t in range(4, 11):
        bb = bt(t, t + 1, 0)
        a.step(iu[:1, t], idn[:1, t], torch.tensor([0]), None if bb is None else bb)
    b.feed(0, iu[0, 4:11], idn[0, 4:11], bt(4, 11, 0))
    for t in range(11, 14):
        bb = bt(t, t + 1, 0)
        ua, da = a.step(iu[:1, t], idn[:1, t], torch.tensor([0]), bb)
        ub, db = b.step(iu[:1, t], idn[:1, t], torch.tensor([0]), bb)
        assert torch.allclose(ua, ub, atol=1e-5) and torch.allclose(da, db, atol=1e-5)
    for ha, hb in zip(a.hists, b.hists, strict=True):
        assert torch.equal(ha[1], hb[1])  # row 1 was never fed
    if beat_dim:
        with pytest.raises(ValueError, match="beat features"):
            b.feed(0, iu[0, :2], idn[0, :2])


@pytest.mark.parametrize("beat_dim", [0, 4])
def test_decoding_candidates_fresh_equals_restarting_a_row_with_each(beat_dim: int) -> None:
    """``decode_fresh`` decodes b sequences from an empty history in one batch (a genre switch's primer candidates):
    each one's frames are those a reset row steps out token by token under the same beat features, and no row's
    history changes."""
    vq = _beat_model(9) if beat_dim else _model(9)
    iu, idn, g = _tokens(3, 3, 6)
    beat = torch.rand(6, 4, 4, generator=g) if beat_dim else None
    sd = StreamingDecoder(vq, 2)
    sd.step(iu[:2, 0], idn[:2, 0], beat=None if beat is None else beat[:2])  # some history, to be left alone
    before = [h.clone() for h in sd.hists]
    up, down = sd.decode_fresh(iu, idn, beat)
    assert up.shape[:2] == (3, 24) and down.shape[:2] == (3, 24)
    for h, h0 in zip(sd.hists, before, strict=True):
        assert torch.equal(h, h0)
    for k in range(3):
        ref = StreamingDecoder(vq, 1)
        for t in range(6):
            u, d = ref.step(iu[k : k + 1, t], idn[k : k + 1, t], beat=None if beat is None else beat[t : t + 1])
            assert torch.allclose(up[k, 4 * t : 4 * t + 4], u[0], atol=1e-5)
            assert torch.allclose(down[k, 4 * t : 4 * t + 4], d[0], atol=1e-5)
    if beat_dim:
        with pytest.raises(ValueError, match="beat features"):
            sd.decode_fresh(iu, idn)

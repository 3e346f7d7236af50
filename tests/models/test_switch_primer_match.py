"""The genre switch's primer chosen among decoded candidates (``switch_primer_match``, card
``genre_switch.primer_candidates`` / ``primer_hands_feet``): the bank's nearest snippets by the feature, each decoded
as the restarted decoder decodes it, the one whose last frame is nearest the performer's last frame in joint
positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models.gpt_dancer import DanceGenerator, cache_rows
from engine.models.protocol import Controls
from engine.models.switch_primer import EXTREMITIES, pose_feature, seam_cost
from engine.models.vector_fk import VectorFK
from export.torch_backend import TorchBackend
from tests.models.test_control_switch import _bank
from tests.models.test_genre_guidance import _cond, _gpt_vq

L = 4  # primer tokens


def _generator(match: tuple[int, float], bank_tokens: int = 40) -> tuple[DanceGenerator, int]:
    gpt, vq = _gpt_vq()
    gen = DanceGenerator(TorchBackend(gpt, capacity=cache_rows(2, 2.0), device="cpu"), vq, seed=4,
                         genre_guidance=2.0, switch_decoder=True, switch_ease=0,
                         switch_primer=(L, _bank(bank_tokens)), switch_primer_match=match)
    return gen, gen.add_performer(Controls(genre=1))


def _frames(match: tuple[int, float], switch_at: int | None, n: int = 9) -> tuple[DanceGenerator, list[np.ndarray]]:
    gen, pid = _generator(match)
    other = gen.add_performer(Controls(genre=1))
    cond = _cond(n)
    out = []
    for t in range(n):
        if t == switch_at:
            gen.set_genre(pid, 2)
        for sf in gen.step(cond[t]):
            out.append(np.concatenate([[sf.pid], sf.root.ravel(), sf.quat.ravel()]))
    assert other != pid
    return gen, out


def test_seam_cost_is_the_weighted_mean_squared_joint_distance() -> None:
    rng = np.random.default_rng(0)
    last = rng.normal(size=(23, 3))
    cand = rng.normal(size=(5, 23, 3))
    d2 = np.sum((cand - last) ** 2, axis=-1)
    np.testing.assert_allclose(seam_cost(last, cand), d2.mean(1))
    w = np.ones(23)
    w[list(EXTREMITIES)] = 4.0
    np.testing.assert_allclose(seam_cost(last, cand, 4.0), d2 @ w / w.sum())
    moved = last.copy()
    moved[16] += 0.1  # a hand 10 cm off costs more with the extremities weighted than a hip 10 cm off
    hip = last.copy()
    hip[1] += 0.1
    both = np.stack([moved, hip])
    assert seam_cost(last, both, 4.0)[0] > seam_cost(last, both, 4.0)[1]
    np.testing.assert_allclose(*seam_cost(last, both, 1.0))


def test_the_banks_nearest_snippets_come_nearest_first_and_choose_is_the_first() -> None:
    bank = _bank()
    rng = np.random.default_rng(5)
    up, low = rng.normal(size=72), rng.normal(size=61)
    ends = bank.nearest("pop", up, low, L, 10)
    sb = bank.styles["pop"]
    q = (pose_feature(up, low, bank.hip_weight) - bank.mean) @ bank.components.T
    d = np.sum((sb.proj.astype(np.float32) - q) ** 2, axis=1)
    d[sb.pos[sb.ends] < L - 1] = np.inf
    want = sb.ends[np.argsort(d, kind="stable")[:10]]
    np.testing.assert_array_equal(ends, want)
    assert np.all(sb.pos[ends] >= L - 1)  # every candidate is a whole snippet of one take
    got = bank.choose("pop", up, low, L)
    assert got is not None
    np.testing.assert_array_equal(got[0], bank.snippet("pop", int(ends[0]), L)[0])
    assert len(bank.nearest("pop", up, low, L, 10_000)) == int(np.sum(sb.pos[sb.ends] >= L - 1))
    assert len(bank.nearest("modern", up, low, L, 10)) == 0 and len(bank.nearest("pop", up, low, 41, 3)) == 0


def test_the_primer_is_the_decoded_candidate_nearest_the_last_frame() -> None:
    """With K candidates the GPT window and the restarted decoder get the snippet, among the bank's K nearest by the
    feature, whose last frame as the VQ-VAE decodes it (from the start of the snippet) is nearest the performer's
    last frame by :func:`seam_cost` (brute force here with the offline decoder and FK); the seam it leaves is no
    larger than the feature's nearest's, and here strictly smaller (the test bank's features are random, so the
    feature's nearest is no nearer in pose than any other)."""
    K, w = 16, 4.0
    gen, pid = _generator((K, w))
    cond = _cond(7)
    for t in range(5):
        gen.step(cond[t])
    p = gen.get(pid)
    assert p.last_vec is not None
    last_vec = (p.last_vec[0].copy(), p.last_vec[1].copy())
    bank = gen.switch_primer[1]
    assert bank is not None
    ends = bank.nearest("pop", *last_vec, L, K)
    assert len(ends) == K
    vq = _gpt_vq()[1]
    fk = VectorFK()
    with torch.no_grad():
        last = fk(torch.from_numpy(last_vec[0]).float()[None], torch.from_numpy(last_vec[1]).float()[None])[0].numpy()
        costs = []
        for t_end in ends:
            u, d = bank.snippet("pop", int(t_end), L)
            du, dd = vq.decode(torch.from_numpy(u)[None], torch.from_numpy(d)[None])
            costs.append(seam_cost(last, fk(du[:, -1], dd[:, -1]).numpy(), w)[0])
    best = int(np.argmin(costs))
    assert best != 0 and costs[best] < costs[0]  # the decoded match is not the feature's nearest here
    want_up, want_down = bank.snippet("pop", int(ends[best]), L)
    gen.set_genre(pid, 2)
    gen.step(cond[5])
    np.testing.assert_array_equal(p.hist_up[:L], want_up)
    np.testing.assert_array_equal(p.hist_down[:L], want_down)
    # the restarted decoder decoded that snippet, then the switch token, as one sequence
    with torch.no_grad():
        dec_up, _ = vq.decode(torch.from_numpy(np.append(want_up, p.tok_up[-1]))[None],
                              torch.from_numpy(np.append(want_down, p.tok_down[-1]))[None])
    assert p.vectors is not None
    np.testing.assert_allclose(p.vectors[0], dec_up[0, -4:].numpy(), atol=1e-4)


def test_one_candidate_is_the_features_nearest_and_dances_without_a_switch_are_unchanged() -> None:
    """(1, _) is the feature's nearest (as before the candidates); K candidates change nothing before the switch,
    nothing for the performer that does not switch, and nothing in a dance without a switch (byte-identical)."""
    _, old = _frames((1, 1.0), None)
    _, new = _frames((16, 4.0), None)
    for x, y in zip(old, new, strict=True):
        np.testing.assert_array_equal(x, y)
    _, one = _frames((1, 1.0), 5)
    _, many = _frames((16, 4.0), 5)
    for i, (x, y) in enumerate(zip(one, many, strict=True)):
        if x[0] == 1 or i < 10:  # the other performer, and the 5 steps (2 performers each) before the switch
            np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(one, many, strict=True))  # the switch's primer differs


def test_the_candidates_are_checked_and_reach_the_generator_from_the_card(tmp_path: Path) -> None:
    from engine.models.dance_model import load_dance_model
    from engine.models.switch_primer import PRIMER_BANK_FILE
    from engine.runtime.assemble import ModelSpec, build_model
    from tests.models.test_genre_guidance import _model_dir

    sw = {"decoder": "restart", "primer": 4, "primer_candidates": 32, "primer_hands_feet": 3.0}
    d = _model_dir(tmp_path / "a", {"genre_guidance": 2.0, "genre_switch": sw})
    _bank().save(d / PRIMER_BANK_FILE)
    gen = build_model(ModelSpec(model=d, backend="torch", decode="torch")).inner  # type: ignore[attr-defined]
    assert gen.switch_primer_match == (32, 3.0)
    d1 = _model_dir(tmp_path / "b", {"genre_guidance": 2.0, "genre_switch": {"decoder": "restart", "primer": 4}})
    _bank().save(d1 / PRIMER_BANK_FILE)
    assert build_model(ModelSpec(model=d1, backend="torch", decode="torch")).inner.switch_primer_match == (1, 1.0)  # type: ignore[attr-defined]
    for i, bad in enumerate(({"primer_candidates": 0}, {"primer_candidates": 257}, {"primer_candidates": 2.5},
                             {"primer_candidates": True}, {"primer_hands_feet": -1.0}, {"primer_hands_feet": "x"})):
        with pytest.raises(ValueError, match=r"genre_switch\.primer_"):
            load_dance_model(_model_dir(tmp_path / f"bad{i}", {"genre_switch": {"primer": 4, **bad}}))
    with pytest.raises(ValueError, match="switch_primer_match"):
        _generator((0, 1.0))

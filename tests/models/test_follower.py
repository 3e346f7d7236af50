"""The follower GPT: conditioning shapes, cached steps equal the full forward, the leader changes its output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.models.follower import (
    PLACE_DIM,
    TARGET_DIM,
    FollowerConfig,
    FollowerGPT,
    follower_xz,
    load_follower,
    place_features,
    place_targets,
    save_follower,
)
from engine.models.gpt import GPTConfig


def tiny_follower(seed: int = 0) -> FollowerGPT:
    torch.manual_seed(seed)
    cfg = FollowerConfig(gpt=GPTConfig(vocab_size=512, n_layer=2, n_head=2, n_embd=32, context=8, n_keyframe_slots=0,
                                       text_dim=1, n_genres=2, dropout=0.0), start_offset=(0.7, -0.1), pull=0.5,
                         min_root_distance_m=0.3)
    return FollowerGPT(cfg).eval()


def _inputs(b: int, t: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"up_in": torch.randint(0, 513, (b, t), generator=g), "down_in": torch.randint(0, 513, (b, t), generator=g),
            "cond": torch.randn(b, t, 168, generator=g), "lead_up": torch.randint(0, 512, (b, t), generator=g),
            "lead_down": torch.randint(0, 512, (b, t), generator=g), "place": torch.randn(b, t, PLACE_DIM, generator=g)}


def test_forward_shapes_and_the_leader_conditions_the_follower() -> None:
    m = tiny_follower()
    x = _inputs(3, 6)
    lu, ld, pl = m.forward_follow(**x)
    assert lu.shape == ld.shape == (3, 6, 512) and pl.shape == (3, 6, TARGET_DIM)
    y = dict(x)
    y["lead_up"] = (x["lead_up"] + 7) % 512
    lu2, _, pl2 = m.forward_follow(**y)
    assert not torch.allclose(lu, lu2) and not torch.allclose(pl, pl2)
    z = dict(x)
    z["place"] = x["place"] + 1.0
    assert not torch.allclose(m.forward_follow(**z)[2], pl)
    with pytest.raises(ValueError, match="follower inputs"):
        m.forward_follow(**{**x, "place": torch.zeros(3, 6, PLACE_DIM + 1)})
    with pytest.raises(ValueError, match="lead_up"):
        m.forward_follow(**{**x, "lead_up": torch.full((3, 6), 600)})


def test_cached_steps_equal_the_full_forward_beyond_the_window() -> None:
    m = tiny_follower()
    t = 12  # longer than the context (8): the ring wraps
    x = _inputs(2, t)
    lu, ld, pl = m.forward_follow(**x)
    cfg = m.cfg
    k = torch.zeros(cfg.n_layer, 2, cfg.n_head, cfg.cache_slots, cfg.head_dim)
    v = torch.zeros_like(k)
    for i in range(t):
        pos = torch.full((2,), i)
        su, sd, sp, kn, vn = m.step_follow(x["up_in"][:, i], x["down_in"][:, i], x["cond"][:, i], x["lead_up"][:, i],
                                           x["lead_down"][:, i], x["place"][:, i], pos, k, v)
        k[:, :, :, i % cfg.context] = kn
        v[:, :, :, i % cfg.context] = vn
        assert torch.allclose(su, lu[:, i], atol=1e-4) and torch.allclose(sd, ld[:, i], atol=1e-4)
        assert torch.allclose(sp, pl[:, i], atol=1e-4)


def test_save_and_load_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = tiny_follower()
    save_follower(m, tmp_path)
    back = load_follower(tmp_path)
    assert back.fcfg == m.fcfg
    x = _inputs(1, 4)
    assert torch.allclose(back.forward_follow(**x)[0], m.forward_follow(**x)[0])
    save_follower(m, tmp_path / "half", half=True)  # the shipped form: float16 on disk, float32 in memory
    back16 = load_follower(tmp_path / "half")
    assert next(back16.parameters()).dtype == torch.float32
    assert torch.allclose(back16.forward_follow(**x)[0], m.forward_follow(**x)[0], atol=2e-2)
    size = (tmp_path / "follower.safetensors").stat().st_size
    assert (tmp_path / "half" / "follower.safetensors").stat().st_size < 0.6 * size
    (tmp_path / "follower.json").write_text('{"gpt": {}, "pull": 3}')
    with pytest.raises(ValueError, match="pull"):
        load_follower(tmp_path)
    with pytest.raises(FileNotFoundError, match="no follower"):
        load_follower(tmp_path / "nothing")


def test_placement_geometry() -> None:
    lead, fol = np.array([1.0, 2.0]), np.array([1.0, 2.8])
    # facing each other along z: the leader looks +z (yaw 0), the follower -z (yaw pi)
    f = place_features(lead, 0.0, fol, np.pi)
    assert np.allclose(f, [0.8, 0.0, -1.0, 0.0, 0.8], atol=1e-6)
    tg = place_targets(lead, 0.0, fol, np.pi)
    assert np.allclose(tg, [0.8, 1.0, 0.0, -1.0, 0.0], atol=1e-6)
    for yaw in (0.3, -2.0):
        t = place_targets(lead, yaw, fol, yaw + 1.0)
        assert np.allclose(follower_xz(lead, yaw, t), fol)
    # mirror through x = 0 (x and yaw negated): forward kept, lateral and the relative angle flip
    m = place_targets(lead * [-1, 1], -0.3, fol * [-1, 1], -1.3)
    assert np.allclose(m, place_targets(lead, 0.3, fol, 1.3) * [1, 1, -1, 1, -1], atol=1e-6)


def test_perturbed_placement_is_the_view_from_a_moved_and_turned_follower() -> None:
    from engine.train.train_couple import perturb_placement

    lead, fol = np.array([[0.3, 1.0], [0.5, 1.2]]), np.array([[0.0, 0.0], [0.1, 0.2]])
    lyaw, fyaw = np.array([2.5, 2.7]), np.array([0.2, 0.4])
    place = place_features(lead, lyaw, fol, fyaw)
    off, turn = np.array([0.2, -0.1]), 0.4
    # standing at fol + offset (in the follower's frame), turned by `turn`
    fwd = np.stack([np.sin(fyaw), np.cos(fyaw)], -1)
    lat = np.stack([np.cos(fyaw), -np.sin(fyaw)], -1)
    moved = fol + off[0] * fwd + off[1] * lat
    got = perturb_placement(place, np.zeros(2), turn, np.zeros((2, 2)))
    ref = place_features(lead, lyaw, fol, fyaw + turn)
    assert np.allclose(got, ref, atol=1e-5)
    got2 = perturb_placement(place, off, 0.0, np.zeros((2, 2)))
    assert np.allclose(got2, place_features(lead, lyaw, moved, fyaw), atol=1e-5)

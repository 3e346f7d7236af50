"""The streaming numpy beat network matches its torch training twin, and the shipped weights load and work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.analysis.beat_net import CONFIG_NAME, WEIGHTS_NAME, BeatActivation, BeatNet, BeatNetConfig
from engine.analysis.onset import N_MEL
from engine.train.train_beats import BeatTCN


def _random_model(cfg: BeatNetConfig) -> BeatTCN:
    torch.manual_seed(0)
    m = BeatTCN(cfg)
    with torch.no_grad():
        m.in_mean.uniform_(0.0, 1.0)
        m.in_scale.uniform_(0.5, 1.5)
        for p in m.parameters():
            p.uniform_(-0.3, 0.3)
    return m


def test_streaming_matches_the_torch_twin_hop_by_hop() -> None:
    cfg = BeatNetConfig(channels=8, dilations=(1, 2, 4, 8))
    model = _random_model(cfg)
    x = np.random.default_rng(1).uniform(0.0, 3.0, (200, 2 * N_MEL)).astype(np.float32)  # [T, F]
    with torch.no_grad():
        ref = torch.sigmoid(model(torch.from_numpy(x.T.copy())[None]))[0].numpy()  # [2, T]
    act = BeatActivation(BeatNet(cfg, model.export()))
    got = np.array([act.process(f[:N_MEL], f[N_MEL:]) for f in x])  # [T, 2]
    np.testing.assert_allclose(got.T, ref, atol=2e-5)


def test_wrong_weights_are_a_clear_error(tmp_path: Path) -> None:
    cfg = BeatNetConfig(channels=8, dilations=(1, 2))
    w = _random_model(cfg).export()
    w["out.weight"] = w["out.weight"][:, :4]
    with pytest.raises(ValueError, match=r"out\.weight"):
        BeatNet(cfg, w)
    with pytest.raises(FileNotFoundError, match="groovecast train beats"):
        BeatNet.load(tmp_path)


def test_saved_weights_round_trip(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    cfg = BeatNetConfig(channels=8, dilations=(1, 2))
    model = _random_model(cfg)
    save_file(model.export(), str(tmp_path / WEIGHTS_NAME))
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"model": cfg.to_dict()}))
    net = BeatNet.load(tmp_path)
    assert net.cfg == cfg
    f = np.ones(2 * N_MEL, np.float32)
    a, b = BeatActivation(net), BeatActivation(BeatNet(cfg, model.export()))
    assert a.process(f[:N_MEL], f[N_MEL:]) == b.process(f[:N_MEL], f[N_MEL:])


def test_shipped_model_loads_and_is_small() -> None:
    from engine.analysis.beat_net import DEFAULT_MODEL_DIR

    net = BeatNet.load()
    assert (DEFAULT_MODEL_DIR / WEIGHTS_NAME).stat().st_size < 1_000_000
    assert net.cfg.receptive_field > 256  # at least 3 s of context for tempo

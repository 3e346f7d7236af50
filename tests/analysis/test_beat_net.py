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


def test_hybrid_keeps_the_comb_beats_and_phase_exactly() -> None:
    """The default tracker takes only the bar position from the network: beats and predicted phase (the dance
    model's conditioning) are the comb tracker's, bit for bit."""
    from engine.analysis import analyze_signal
    from engine.audio.synth import SyntheticSignal

    sig = SyntheticSignal.clicks([(6.0, 100.0, 100.0), (6.0, 130.0, 130.0)], noise_level=0.01)
    hy = analyze_signal(sig.samples, 22050, tracker="hybrid")
    co = analyze_signal(sig.samples, 22050, tracker="comb")
    assert hy.beats == co.beats and hy.beat_bpm == co.beat_bpm
    np.testing.assert_array_equal(hy.next_beat_s, co.next_beat_s)
    np.testing.assert_array_equal(hy.features, co.features)  # the dance models' input: bit for bit


def test_default_beat_output_leaves_the_dance_features_alone() -> None:
    """The default ("hmm") takes its beat output from the filter on the network, but the 40 dance features,
    the predicted phase and the features' beats (``dance_beats``) are the hybrid tracker's, bit for bit."""
    from engine.analysis import analyze_signal
    from engine.analysis.music import DEFAULT_TRACKER
    from engine.audio.synth import SyntheticSignal

    assert DEFAULT_TRACKER == "hmm"
    sig = SyntheticSignal.clicks([(6.0, 100.0, 100.0), (6.0, 130.0, 130.0)], noise_level=0.01)
    hm = analyze_signal(sig.samples, 22050)
    hy = analyze_signal(sig.samples, 22050, tracker="hybrid")
    np.testing.assert_array_equal(hm.features, hy.features)
    np.testing.assert_array_equal(hm.next_beat_s, hy.next_beat_s)
    np.testing.assert_array_equal(hm.period_s, hy.period_s)
    assert hm.dance_beats == hy.beats == hy.dance_beats
    assert hm.beats != hy.beats  # the beat output is the filter's own
    err = [np.min(np.abs(sig.beats - t)) for t in hm.beats if t > 3.0]
    assert len(err) > 15 and np.median(err) < 0.02


def test_neural_tracker_follows_steady_clicks() -> None:
    from engine.analysis import analyze_signal
    from engine.audio.synth import SyntheticSignal

    sig = SyntheticSignal.clicks([(14.0, 118.0, 118.0)], noise_level=0.01)
    a = analyze_signal(sig.samples, 22050, tracker="neural")
    assert abs(a.bpm - 118.0) < 1.5
    err = [np.min(np.abs(sig.beats - t)) for t in a.beats if t > 6.0]
    assert len(err) > 10 and np.median(err) < 0.03


def test_unknown_tracker_is_a_clear_error() -> None:
    from engine.analysis import MusicAnalyzer

    with pytest.raises(ValueError, match="unknown beat tracker 'dbn'"):
        MusicAnalyzer(kind="dbn")

"""Beat-network training data and training: held-out tunes, target alignment, a tiny end-to-end run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.analysis.beat_net import BeatActivation, BeatNet, BeatNetConfig
from engine.analysis.onset import HOP, N_MEL
from engine.analysis.tracker import BeatTracker
from engine.train.beat_data import N_FEATURES, BeatSet, beat_targets, hop_features, sample_clips, tune_pool
from engine.train.train_beats import BeatTrainConfig, train_beats


def test_training_never_uses_the_benchmark_tunes() -> None:
    from bench.analysis_beatset import CLIPS, JUMP_CLIPS

    held_out = {s.tune for s in (*CLIPS, *JUMP_CLIPS)}
    pool = {t for t, _ in tune_pool()}
    assert len(pool) > 500
    assert not pool & held_out
    clips = sample_clips(40, seed=3)
    assert clips == sample_clips(40, seed=3)  # reproducible
    assert {c.spec.meter for c in clips} == {"duple", "3/4", "6/8"}
    assert not {c.spec.tune for c in clips} & held_out


def test_targets_sit_where_the_live_onset_function_peaks() -> None:
    from engine.audio.synth import SyntheticSignal

    sig = SyntheticSignal.clicks([(6.0, 120.0, 120.0)], noise_level=0.0)
    feats = hop_features(sig.samples)
    assert feats.shape[1] == N_FEATURES
    odf = feats[:, N_MEL:].sum(axis=1)
    y = beat_targets(sig.beats, len(odf))
    tr = BeatTracker()
    for h in np.flatnonzero(y == 1.0)[1:-1]:
        assert abs(int(np.argmax(odf[h - 3:h + 4])) - 3) <= 1  # the ODF peak is within a hop of the target
        assert abs(tr.hop_time(h) - sig.beats[np.argmin(np.abs(sig.beats - tr.hop_time(h)))]) < HOP / 22050


def test_a_tiny_training_run_writes_weights_the_engine_loads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 600
    feats = rng.uniform(0, 1, (4 * n, N_FEATURES)).astype(np.float16)
    beats = np.zeros(4 * n, np.float32)
    beats[::43] = 1.0
    data = BeatSet(feats, beats, beats * 0, np.arange(0, 4 * n + 1, n))
    cfg = BeatTrainConfig(steps=3, batch=2, crop=256, val_fraction=0.5, eval_every=1)
    rep = train_beats(data, tmp_path, cfg, BeatNetConfig(channels=8, dilations=(1, 2)))
    assert [h["step"] for h in rep["history"]] == [1, 2, 3]
    net = BeatNet.load(tmp_path)
    b, d = BeatActivation(net).process(feats[0, :N_MEL].astype(np.float32), feats[0, N_MEL:].astype(np.float32))
    assert 0.0 < b < 1.0 and 0.0 < d < 1.0

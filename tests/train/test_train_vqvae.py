"""VQ-VAE fine-tuning: a beat-conditioned decoder trained from a VQ-VAE whose encoder and codebooks stay fixed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dance_helpers import stepping_motion

from engine.models.conditioning import DECODER_BEAT_DIM, sequence_beat_features
from engine.models.pose_repr import motion_to_vectors
from engine.models.vqvae import VQVAEConfig, load_vqvae
from engine.train.train_vqvae import VQTrainConfig, train_vqvae

SMALL = {"n_codes": 16, "code_dim": 8, "hidden": 16}


def _data() -> tuple[list[tuple[str, np.ndarray, np.ndarray]], list[np.ndarray]]:
    up, low = motion_to_vectors(stepping_motion(5.0, 30.0, 120.0))
    up, low = up[:120].astype(np.float32), low[:120].astype(np.float32)
    data = [("take01_x1.00_d60", up, low), ("take02_x1.00_d60", up[::-1].copy(), low[::-1].copy())]
    period = np.full(120, 0.5)
    nxt = 0.5 * np.ceil(np.arange(120) / 15.0 + 1e-9)  # a beat every 0.5 s, the tracker's belief per frame
    beats = [sequence_beat_features(period, nxt, 30)] * 2
    return data, beats


def test_decoder_fine_tune_keeps_the_tokens_and_starts_at_the_source(tmp_path: Path) -> None:
    data, beats = _data()
    cfg = VQTrainConfig(steps=2, batch=2, window=32, threads=1, log_every=1, ckpt_every=2, val_every=2)
    train_vqvae(data, data[:1], tmp_path / "src", cfg, VQVAEConfig(**SMALL), progress=False)
    src = load_vqvae(tmp_path / "src")
    ft = VQTrainConfig(steps=3, batch=2, window=32, threads=1, log_every=1, ckpt_every=3, val_every=3, lr=1e-2,
                       init_from=str(tmp_path / "src"), train_only=("dec_up", "dec_down"))
    rep = train_vqvae(data, data[:1], tmp_path / "ft", ft, VQVAEConfig(**SMALL, beat_dim=DECODER_BEAT_DIM),
                      progress=False, train_beats=beats, val_beats=beats[:1])
    new = load_vqvae(tmp_path / "ft")
    assert new.cfg.beat_dim == DECODER_BEAT_DIM
    a, b = src.state_dict(), new.state_dict()
    for k, v in a.items():
        if k.startswith("dec_"):
            continue
        assert torch.equal(v, b[k]), k  # encoders, codebooks (no EMA update) and statistics untouched
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("dec_"))
    assert new.dec_up.beat is not None and float(new.dec_up.beat.out.weight.detach().abs().sum()) > 0  # it learned
    # the fine-tune started exactly at the source: same validation
    assert rep["init_from"]["val_at_start"]["mpjpe_mm"] == pytest.approx(src_val(src, data), abs=1e-9)
    up, low = torch.from_numpy(data[0][1])[None], torch.from_numpy(data[0][2])[None]
    for x, y in zip(src.encode(up, low), new.encode(up, low), strict=True):
        assert torch.equal(x, y)


def src_val(vq: object, data: list) -> float:
    from engine.train.train_vqvae import reconstruction_error_mm

    return reconstruction_error_mm(vq, data[:1])["mpjpe_mm"]  # type: ignore[arg-type]


def test_fine_tune_errors_are_named(tmp_path: Path) -> None:
    data, _ = _data()
    cfg = VQTrainConfig(steps=1, batch=2, window=32, threads=1, ckpt_every=1, val_every=1)
    train_vqvae(data, [], tmp_path / "src", cfg, VQVAEConfig(**SMALL), progress=False)
    bad = VQTrainConfig(steps=1, batch=2, window=32, threads=1, init_from=str(tmp_path / "src"), train_only=("dec",))
    with pytest.raises(ValueError, match="train_only"):
        train_vqvae(data, [], tmp_path / "a", bad, VQVAEConfig(**SMALL), progress=False)
    other = VQTrainConfig(steps=1, batch=2, window=32, threads=1, init_from=str(tmp_path / "src"))
    with pytest.raises(ValueError, match="hidden 16 -> 32"):
        train_vqvae(data, [], tmp_path / "b", other, VQVAEConfig(**{**SMALL, "hidden": 32}), progress=False)
    with pytest.raises(ValueError, match="beat features"):
        train_vqvae(data, [], tmp_path / "c", other, VQVAEConfig(**SMALL, beat_dim=DECODER_BEAT_DIM), progress=False)
    assert VQVAEConfig().beat_dim == 0  # off by default: every older VQ-VAE loads as it was


def test_grid_beat_features_flag_the_frames_of_the_rendered_beats() -> None:
    from engine.train.dataset import MusicTrack, Sequence
    from engine.train.train_vqvae import sequence_beats

    n = 90
    beats_s = np.arange(0.5, 3.0, 0.5)  # frames 15, 30, 45, ...
    music = MusicTrack(audio=np.zeros(1, np.float32), features=np.zeros((n, 40), np.float32),
                       period_s=np.full(n, 0.25), next_beat_s=np.full(n, 0.1), bpm=np.full(n, 240.0), beats_s=beats_s)
    seq = Sequence("take01_x1.00_d60", np.zeros((n, 72), np.float32), np.zeros((n, 61), np.float32), music)
    grid = sequence_beats([seq], grid=True)[0]
    tracker = sequence_beats([seq])[0]
    assert grid.shape == tracker.shape == (n, DECODER_BEAT_DIM)
    assert set(np.flatnonzero(grid[:, 2])) == {0, 15, 30, 45, 60, 75}  # the grid (extrapolated back to 0)
    assert not np.array_equal(grid, tracker)


def test_body_beat_dip_is_trained_and_saved(tmp_path: Path) -> None:
    data, beats = _data()
    cfg = VQTrainConfig(steps=1, batch=2, window=32, threads=1, ckpt_every=1, val_every=1)
    train_vqvae(data, [], tmp_path / "src", cfg, VQVAEConfig(**SMALL), progress=False)
    ft = VQTrainConfig(steps=1, batch=2, window=32, threads=1, log_every=1, ckpt_every=1, val_every=1,
                       init_from=str(tmp_path / "src"), train_only=("dec_up", "dec_down"))
    dips = {}
    for on in ("all", "body"):
        rep = train_vqvae(data, [], tmp_path / on, ft, VQVAEConfig(**SMALL, beat_dim=DECODER_BEAT_DIM, w_beat=1.0,
                                                                  beat_dip_on=on), progress=False, train_beats=beats)
        dips[on] = rep["history"][0]["beat_dip"]
        assert load_vqvae(tmp_path / on).cfg.beat_dip_on == on
    assert dips["all"] != pytest.approx(dips["body"], rel=1e-3)  # same seed and batch: a different speed is dipped

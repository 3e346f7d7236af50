"""Training losses: the smoothed speed curve (as the Beat Align Score reads it) and the VQ-VAE's speed-curve loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dance_helpers import stepping_motion
from scipy.signal import find_peaks

from engine.models.pose_repr import motion_to_vectors
from engine.models.vqvae import VQVAEConfig
from engine.train import metrics as M
from engine.train.evaluate import points
from engine.train.losses import VectorFK, gauss_kernel, smoothed_speed, speed_curve_loss
from engine.train.train_vqvae import train_vqvae


def _stepping(shift: int = 0, seconds: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of a dancer stopping every 0.5 s (the stops moved ``shift`` frames later)."""
    up, low = motion_to_vectors(stepping_motion(seconds + 1.0, 30.0, 120.0))
    start = 15 - shift
    n = int(seconds * 30)
    return up[start : start + n].astype(np.float32), low[start : start + n].astype(np.float32)


def _curve(up: np.ndarray, low: np.ndarray) -> torch.Tensor:
    u, lo = torch.from_numpy(up)[None], torch.from_numpy(low)[None]
    return smoothed_speed(VectorFK()(u, lo), lo, gauss_kernel(2.5))[0]


def test_speed_minima_are_the_motion_beats_of_the_beat_align_score() -> None:
    up, low = _stepping()
    ours = find_peaks(-_curve(up, low).numpy())[0]
    theirs, _ = M.motion_beats(points(up, low), 30.0, sigma=2.5)  # the metric's curve at 30 fps
    assert len(ours) >= 10
    np.testing.assert_array_equal(ours, theirs)


def test_speed_curve_loss_is_zero_for_the_same_motion_and_grows_with_a_timing_error() -> None:
    up, low = _stepping()
    k = gauss_kernel(2.5)
    fk = VectorFK()

    def loss(shift: int) -> float:
        u2, l2 = _stepping(shift)
        a = (torch.from_numpy(u2)[None], torch.from_numpy(l2)[None])
        b = (torch.from_numpy(up)[None], torch.from_numpy(low)[None])
        return float(speed_curve_loss(fk(*a), a[1], fk(*b), b[1], k))

    assert loss(0) < 1e-6
    assert 0 < loss(2) < loss(4) < loss(7)  # stops 7 frames off: half a beat, the worst timing


def test_speed_curve_loss_has_gradients() -> None:
    up, low = _stepping(seconds=2.0)
    u = torch.from_numpy(up)[None].requires_grad_(True)
    lo = torch.from_numpy(low)[None]
    noisy = u + 0.05 * torch.randn_like(u)
    fk = VectorFK()
    speed_curve_loss(fk(noisy, lo), lo, fk(u.detach(), lo), lo, gauss_kernel(2.5)).backward()
    assert u.grad is not None and float(u.grad.abs().sum()) > 0


def test_vqvae_training_logs_the_speed_loss_only_when_asked(tmp_path: Path) -> None:
    up, low = _stepping(seconds=4.0)
    data = [("take01_x1.00_d60", up, low), ("take02_x1.00_d60", up[::-1].copy(), low[::-1].copy())]
    small = {"n_codes": 16, "code_dim": 8, "hidden": 16}
    from engine.train.train_vqvae import VQTrainConfig

    cfg = VQTrainConfig(steps=2, batch=2, window=32, threads=1, log_every=1, ckpt_every=2, val_every=2)
    off = train_vqvae(data, data[:1], tmp_path / "off", cfg, VQVAEConfig(**small), progress=False)
    on = train_vqvae(data, data[:1], tmp_path / "on", cfg, VQVAEConfig(**small, w_speed=2.0), progress=False)
    assert VQVAEConfig().w_speed == 0.0  # off by default
    with pytest.raises(ValueError, match="w_speed"):
        VQVAEConfig(w_speed=-1.0)
    assert all("speed" not in h for h in off["history"])
    assert all(h["speed"] > 0 for h in on["history"])
    assert on["history"][0]["loss"] > off["history"][0]["loss"]  # same seed and batch: the term is added


def test_beat_dip_loss_is_zero_on_minima_and_pulls_a_dip_onto_the_beat() -> None:
    from engine.train.losses import beat_dip_loss

    t = torch.arange(40, dtype=torch.float32)
    speed = (1.0 + 0.5 * torch.cos(2 * torch.pi * (t - 9.0) / 15.0))[None]  # minimum midway between columns 16, 17
    on = torch.zeros(1, 41, dtype=torch.bool)
    on[0, 17] = True  # the beat frame whose neighbouring columns (16, 17) straddle the minimum
    off = torch.zeros(1, 41, dtype=torch.bool)
    off[0, 21] = True  # four frames later
    assert float(beat_dip_loss(speed, on)) < 1e-6
    s = speed.clone().requires_grad_(True)
    loss = beat_dip_loss(s, off)
    assert float(loss.detach()) > 0.1
    loss.backward()
    assert s.grad is not None and float(s.grad[0, 20]) > 0  # lowering the speed at the beat lowers the loss
    assert float(beat_dip_loss(speed, torch.zeros(1, 41, dtype=torch.bool))) == 0.0  # no beats: nothing


def test_body_speed_leaves_out_the_root_travel_and_the_dip_option_is_checked() -> None:
    up, low = _stepping(seconds=2.0)
    u, lo = torch.from_numpy(up)[None], torch.from_numpy(low)[None]
    pos = VectorFK()(u, lo)
    k = gauss_kernel(2.5)
    glide = lo.clone()
    glide[..., 0] += 1.0  # the same body gliding 1 m/s sideways on top
    body = smoothed_speed(pos, lo, k, travel=False)
    torch.testing.assert_close(body, smoothed_speed(pos, glide, k, travel=False))  # the travel is not read
    assert float((smoothed_speed(pos, glide, k) - smoothed_speed(pos, lo, k)).abs().max()) > 0.1  # default: it is
    own = (pos[:, 1:] - pos[:, :-1]).norm(dim=-1).mean(-1) * 30.0  # joints relative to the root, unsmoothed
    assert abs(float(body.mean() - own.mean())) < 0.05 * float(own.mean())
    assert VQVAEConfig().beat_dip_on == "all"  # every older run: the travel is in the dipped speed
    assert VQVAEConfig.from_dict({"beat_dip_on": "body"}).beat_dip_on == "body"
    with pytest.raises(ValueError, match="beat_dip_on"):
        VQVAEConfig(beat_dip_on="root")

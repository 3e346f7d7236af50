"""Differentiable helpers for training: model vectors -> joint positions (FK) in torch, and speed curves.

The FK itself lives in :mod:`engine.models.vector_fk` (live beat guidance uses it too, and the runtime never
imports training code); it is re-exported here for the training code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.models.conditioning import FPS
from engine.models.vector_fk import VectorFK

__all__ = ["VectorFK", "gauss_kernel", "smoothed_speed", "speed_curve_loss"]


def gauss_kernel(sigma: float) -> torch.Tensor:
    """Normalised Gaussian kernel [2r + 1], r = ceil(3 sigma) (at least 1)."""
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def smoothed_speed(pos: torch.Tensor, lower: torch.Tensor, kernel: torch.Tensor, travel: bool = True) -> torch.Tensor:
    """Gaussian-smoothed mean joint speed (m/s) [B, T - 1]; column i between frames i and i + 1.

    Args:
        pos: root-relative joint positions [B, T, K, 3] (:class:`VectorFK` of the raw vectors).
        lower: the raw lower vectors [B, T, D] (root horizontal velocity, m/s, in entries 0 and 2: the root's
            travel is added, as the Beat Align Score and beat guidance measure speed).
        kernel: smoothing kernel [2r + 1] (:func:`gauss_kernel`; sigma 2.5 at 30 fps = Bailando's 5 at 60 fps).
        travel: add the root's horizontal travel (True, as the metrics); False = the body's own speed, the
            joints relative to the root (``VQVAEConfig.beat_dip_on`` "body").
    """
    step = pos[:, 1:] - pos[:, :-1]
    if travel:
        root = torch.stack([lower[:, 1:, 0], torch.zeros_like(lower[:, 1:, 0]), lower[:, 1:, 2]], dim=-1) / FPS
        step = step + root[:, :, None, :]
    s = step.norm(dim=-1).mean(-1) * FPS  # [B, T - 1]
    k = kernel.to(s.dtype).reshape(1, 1, -1)
    pad = k.shape[-1] // 2
    return F.conv1d(F.pad(s[:, None], (pad, pad), mode="replicate"), k)[:, 0]


def speed_curve_loss(pos_rec: torch.Tensor, lower_rec: torch.Tensor, pos_ref: torch.Tensor, lower_ref: torch.Tensor,
                     kernel: torch.Tensor, slope_weight: float = 10.0) -> torch.Tensor:
    """L1 distance between the smoothed speed curves of a reconstruction and its reference (m/s), plus
    ``slope_weight`` x the L1 distance of their frame-to-frame changes (m/s per frame): motion beats are the
    curve's minima, i.e. where its slope changes sign, so the slope is matched as well as the level."""
    a = smoothed_speed(pos_rec, lower_rec, kernel)
    b = smoothed_speed(pos_ref, lower_ref, kernel)
    level = (a - b).abs().mean()
    slope = ((a[:, 1:] - a[:, :-1]) - (b[:, 1:] - b[:, :-1])).abs().mean()
    return level + slope_weight * slope


def beat_dip_loss(speed: torch.Tensor, flags: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """How far the speed at each flagged beat frame lies above the minimum of the speed around it, relative to the
    local mean speed: 0 when every beat is a local speed minimum (a motion beat of the Beat Align Score).

    Args:
        speed: smoothed mean joint speed [B, T - 1] (:func:`smoothed_speed`; column i between frames i and i + 1).
        flags: [B, T] bool, the frames that hold a beat (the decoder's beat flag channel).
        radius: frames either side searched for the minimum.

    Returns:
        A scalar: the mean over the flagged frames whose neighbourhood lies inside the window (0 if none).
    """
    w = 2 * radius + 2
    if speed.shape[1] < w:
        return speed.sum() * 0.0
    win = speed.unfold(1, w, 1)  # [B, T - 1 - w + 1, w]: window j = columns j .. j + w - 1, beat frame j + 1 + radius
    at = 0.5 * (win[..., radius] + win[..., radius + 1])  # speed at the beat frame (columns b - 1 and b)
    dip = F.relu(at - win.amin(dim=-1)) / (win.mean(dim=-1).detach() + 0.1)
    sel = flags[:, radius + 1 : radius + 1 + win.shape[1]].to(dip.dtype)
    return (dip * sel).sum() / sel.sum().clamp_min(1.0)

"""Train the causal beat TCN (:mod:`engine.analysis.beat_net`) on rendered, augmented music; ship safetensors.

The torch module here mirrors the numpy streaming network exactly (same tensor names and shapes; causal
convolutions padded on the left only), so the weights it writes run hop by hop in the engine. Loss: binary
cross-entropy on beat and downbeat targets (positives weighted up, they are rare), on random crops.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.analysis.beat_net import CONFIG_NAME, WEIGHTS_NAME, BeatNetConfig, weight_shapes
from engine.train.beat_data import BeatSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeatTrainConfig:
    clips: int = 320  # rendered clips (each used twice: light and hard augmentation)
    steps: int = 2000
    batch: int = 16
    crop: int = 1024  # hops per crop (11.9 s)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    beat_pos_weight: float = 8.0
    downbeat_pos_weight: float = 16.0
    downbeat_loss_weight: float = 0.5
    dropout: float = 0.1
    eval_every: int = 100  # validation loss every N steps; the weights at the best one are shipped
    val_fraction: float = 0.1
    seed: int = 0
    threads: int = 1  # one thread: on a shared 2-core machine a second one mostly waits (measured 5x slower)


class _Block(nn.Module):
    def __init__(self, c: int, k: int, d: int, dropout: float) -> None:
        super().__init__()
        self.pad = (k - 1) * d
        self.conv = nn.Conv1d(c, c, k, dilation=d)
        self.mix = nn.Conv1d(c, c, 1)
        self.drop = nn.Dropout(dropout)  # training only: the streaming twin has none

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T]
        h = torch.relu(self.conv(nn.functional.pad(x, (self.pad, 0))))
        return x + self.mix(self.drop(h))


class BeatTCN(nn.Module):
    """Training twin of the streaming network: [B, n_in, T] features -> [B, 2, T] logits (beat, downbeat)."""

    in_mean: torch.Tensor
    in_scale: torch.Tensor

    def __init__(self, cfg: BeatNetConfig, dropout: float = 0.0) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("in_mean", torch.zeros(cfg.n_in))
        self.register_buffer("in_scale", torch.ones(cfg.n_in))
        self.in_proj = nn.Conv1d(cfg.n_in, cfg.channels, 1)
        self.blocks = nn.ModuleList(_Block(cfg.channels, cfg.kernel, d, dropout) for d in cfg.dilations)
        self.out = nn.Conv1d(cfg.channels, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.in_mean[None, :, None]) * self.in_scale[None, :, None]
        x = self.in_proj(x)
        for b in self.blocks:
            x = b(x)
        return self.out(torch.relu(x))

    def export(self) -> dict[str, np.ndarray]:
        """Tensors named and shaped as :func:`engine.analysis.beat_net.weight_shapes` says."""
        sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.state_dict().items()}
        out: dict[str, np.ndarray] = {}
        for name, shape in weight_shapes(self.cfg).items():
            out[name] = np.ascontiguousarray(sd[name].reshape(shape))
        return out


def _split(data: BeatSet, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    # both versions of a rendered clip (consecutive entries) go to the same side
    n_src = data.n_clips // 2
    order = np.random.default_rng(seed).permutation(n_src)
    n_val = max(1, round(n_src * val_fraction))
    val = sorted(int(2 * s + v) for s in order[:n_val] for v in (0, 1))
    train = sorted(int(2 * s + v) for s in order[n_val:] for v in (0, 1))
    return train, val


def _batch(data: BeatSet, clips: list[int], n: int, crop: int, rng: np.random.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    xs = np.zeros((n, data.features.shape[1], crop), dtype=np.float32)
    ys = np.zeros((n, 2, crop), dtype=np.float32)
    for i in range(n):
        f, b, d = data.clip(int(rng.choice(clips)))
        t0 = int(rng.integers(0, max(1, len(b) - crop)))
        m = min(crop, len(b) - t0)
        xs[i, :, :m] = f[t0:t0 + m].T
        ys[i, 0, :m] = b[t0:t0 + m]
        ys[i, 1, :m] = d[t0:t0 + m]
    return torch.from_numpy(xs), torch.from_numpy(ys)


def _loss(model: BeatTCN, x: torch.Tensor, y: torch.Tensor, cfg: BeatTrainConfig) -> torch.Tensor:
    logits = model(x)
    pw = torch.tensor([cfg.beat_pos_weight, cfg.downbeat_pos_weight])[None, :, None]
    per = nn.functional.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none")
    w = torch.tensor([1.0, cfg.downbeat_loss_weight])[None, :, None]
    return (per * w).mean()


def val_loss(model: BeatTCN, data: BeatSet, clips: list[int], cfg: BeatTrainConfig) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for c in clips:
            f, b, d = data.clip(c)
            x = torch.from_numpy(np.ascontiguousarray(f.T, dtype=np.float32))[None]
            y = torch.from_numpy(np.stack([b, d]).astype(np.float32))[None]
            total += float(_loss(model, x, y, cfg)) * len(b)
            n += len(b)
    model.train()
    return total / max(n, 1)


def train_beats(data: BeatSet, out: Path, cfg: BeatTrainConfig, mcfg: BeatNetConfig | None = None,
                progress: Callable[[int, int, float], None] | None = None) -> dict:
    """Train on ``data``, write ``beat_tcn.safetensors`` + ``beat_tcn.json`` to ``out``; return the report."""
    from safetensors.numpy import save_file

    mcfg = mcfg or BeatNetConfig()
    torch.manual_seed(cfg.seed)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    train, val = _split(data, cfg.val_fraction, cfg.seed)
    model = BeatTCN(mcfg, cfg.dropout)
    feats = np.concatenate([data.clip(c)[0] for c in train]).astype(np.float32)
    model.in_mean.copy_(torch.from_numpy(feats.mean(axis=0)))
    model.in_scale.copy_(torch.from_numpy(1.0 / (feats.std(axis=0) + 1e-3)))
    del feats
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    t0 = time.monotonic()
    history = []
    running = 0.0
    best: tuple[float, int, dict[str, np.ndarray]] = (float("inf"), 0, {})
    for step in range(1, cfg.steps + 1):
        x, y = _batch(data, train, cfg.batch, cfg.crop, rng)
        loss = _loss(model, x, y, cfg)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        lv = float(loss.detach())
        running = 0.98 * running + 0.02 * lv if step > 1 else lv
        if progress:
            progress(step, cfg.steps, running)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            v = val_loss(model, data, val, cfg)
            history.append({"step": step, "train_loss": running, "val_loss": v})
            log.info("step %d train %.4f val %.4f", step, running, v)
            if v < best[0]:
                best = (v, step, model.export())
    secs = time.monotonic() - t0
    out.mkdir(parents=True, exist_ok=True)
    save_file(best[2], str(out / WEIGHTS_NAME))
    report = {
        "model": mcfg.to_dict(),
        "train": asdict(cfg),
        "data": {"clips_rendered": data.n_clips // 2, "train_versions": len(train), "val_versions": len(val),
                 "hops": len(data.beats), "source": "engine.train.beat_data (rendered MIDI, augmented)"},
        "history": history,
        "best": {"step": best[1], "val_loss": best[0]},
        "train_seconds": secs,
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }
    (out / CONFIG_NAME).write_text(json.dumps(report, indent=2))
    return report

"""Training loop of the FreqVQ-VAE on motion windows (CPU-friendly defaults, resumable)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.models.vqvae import DOWN, VQVAE, VQVAEConfig, load_vqvae, save_vqvae
from engine.train.common import (
    file_logger,
    load_training_state,
    restore_rng,
    rng_state,
    save_training_state,
    seed_everything,
    set_threads,
    warmup_cosine_lr,
)
from engine.train.losses import VectorFK, gauss_kernel, speed_curve_loss
from engine.train.sources import balanced_weights

#: Smoothing of the speed curve of the ``w_speed`` loss, frames at 30 fps (= Bailando's sigma 5 at 60 fps).
SPEED_SIGMA = 2.5

MotionSet = list[tuple[str, np.ndarray, np.ndarray]]


@dataclass
class VQTrainConfig:
    """Optimisation settings of the VQ-VAE."""

    steps: int = 2500
    batch: int = 32
    window: int = 64  # frames per training window (multiple of 4)
    lr: float = 5e-4
    lr_final: float = 5e-5
    seed: int = 0
    threads: int = 2
    log_every: int = 50
    ckpt_every: int = 500
    val_every: int = 500


def sample_windows(data: MotionSet, n: int, window: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n random windows (sequences chosen by ``sources.balanced_weights``) -> up [n, W, 72], down [n, W, 61]."""
    lengths = np.array([len(u) for _, u, _ in data], dtype=np.float64)
    ok = lengths >= window
    if not ok.any():
        raise ValueError(f"no sequence is at least {window} frames long")
    p = np.asarray(balanced_weights([nm for nm, _, _ in data], np.where(ok, lengths, 0.0)))
    seq = rng.choice(len(data), size=n, p=p)
    ups, downs = [], []
    for s in seq:
        _, u, d = data[s]
        start = int(rng.integers(0, len(u) - window + 1))
        ups.append(u[start : start + window])
        downs.append(d[start : start + window])
    return torch.from_numpy(np.stack(ups)), torch.from_numpy(np.stack(downs))


@torch.no_grad()
def reconstruction_error_mm(model: VQVAE, data: MotionSet, fk: VectorFK | None = None) -> dict[str, float]:
    """Mean root-relative joint position error (mm) and contact accuracy of encode -> decode."""
    fk = fk or VectorFK()
    model.eval()
    errs, acc, n = 0.0, 0.0, 0
    for _, u, d in data:
        t = (len(u) // DOWN) * DOWN
        if t < DOWN * 4:
            continue
        up = torch.from_numpy(u[:t])[None]
        down = torch.from_numpy(d[:t])[None]
        iu, idn = model.encode(up, down)
        ru, rd = model.decode(iu, idn)
        p_ref = fk(up, down)
        p_rec = fk(ru, rd)
        errs += float((p_rec - p_ref).norm(dim=-1).mean()) * t
        acc += float(((rd[..., -4:] > 0.5).float() == down[..., -4:]).float().mean()) * t
        n += t
    return {"mpjpe_mm": 1000.0 * errs / max(n, 1), "contact_acc": acc / max(n, 1)}


def train_vqvae(
    train: MotionSet,
    val: MotionSet,
    out_dir: Path,
    cfg: VQTrainConfig | None = None,
    model_cfg: VQVAEConfig | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict:
    """Train (or resume) a VQ-VAE into ``out_dir``; returns the training report."""
    cfg = cfg or VQTrainConfig()
    model_cfg = model_cfg or VQVAEConfig()
    if cfg.window % DOWN:
        raise ValueError(f"window must be a multiple of {DOWN}, got {cfg.window}")
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = file_logger("groovecast.train.vqvae", out_dir / "train_vqvae.log")
    rng = np.random.default_rng(cfg.seed)
    model = VQVAE(model_cfg)
    all_up = torch.from_numpy(np.concatenate([u for _, u, _ in train]))
    all_down = torch.from_numpy(np.concatenate([d for _, _, d in train]))
    model.set_stats(all_up, all_down)
    fk = VectorFK()
    kernel = gauss_kernel(SPEED_SIGMA)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    start = 0
    state_path = out_dir / "vqvae_train_state.pt"
    elapsed_before = 0.0
    if resume and state_path.is_file() and (out_dir / "vqvae.safetensors").is_file():
        model = load_vqvae(out_dir)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
        st = load_training_state(state_path)
        opt.load_state_dict(st["optimizer"])
        restore_rng(rng, st["rng"])
        start = int(st["step"])
        elapsed_before = float(json.loads((out_dir / "vqvae.json").read_text()).get("train_seconds", 0.0))
        log.info("resumed at step %d", start)
    def sched(s: int) -> float:
        return warmup_cosine_lr(s, cfg.lr, cfg.lr_final, 0, cfg.steps)
    t0 = time.perf_counter()
    history: list[dict] = []
    val_hist: list[dict] = []
    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="vqvae", disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = float(sched(step))
        up, down = sample_windows(train, cfg.batch, cfg.window, rng)
        out = model(up, down)
        pos_ref = fk(up, down)
        pos_rec = fk(out["up"], out["down"])
        fk_loss = (pos_rec - pos_ref).abs().mean() * 10.0  # metres -> decimetres: comparable scale
        # Joint velocities in m/frame * 30 = m/s: same order as the pose terms.
        vel_rec = (pos_rec[:, 1:] - pos_rec[:, :-1]) * 30.0
        vel_ref = (pos_ref[:, 1:] - pos_ref[:, :-1]) * 30.0
        fk_vel_loss = (vel_rec - vel_ref).abs().mean()
        loss = out["loss"] + model_cfg.w_fk * fk_loss + model_cfg.w_fk_vel * fk_vel_loss
        speed_loss = speed_curve_loss(pos_rec, out["down"], pos_ref, down, kernel) if model_cfg.w_speed > 0 else None
        if speed_loss is not None:
            loss = loss + model_cfg.w_speed * speed_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            used_u = int((model.q_up.ema_count > model_cfg.dead_usage).sum())
            used_d = int((model.q_down.ema_count > model_cfg.dead_usage).sum())
            rec = {
                "step": done, "loss": float(loss.detach()), "rec": float(out["rec"]), "vel": float(out["vel"]),
                "contact": float(out["contact"]), "fk_mm": float(fk_loss.detach()) * 100.0,
                "fk_vel": float(fk_vel_loss.detach()), "codes_up": used_u,
                "codes_down": used_d,
            }
            if speed_loss is not None:
                rec["speed"] = float(speed_loss.detach())
            history.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", fk_mm=f"{rec['fk_mm']:.0f}")
            log.info("step %d %s", done, json.dumps(rec))
        if (done % cfg.val_every == 0 or done == cfg.steps) and val:
            v = reconstruction_error_mm(model, val, fk)
            v["step"] = done
            val_hist.append(v)
            log.info("val %s", json.dumps(v))
            model.train()
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            secs = elapsed_before + time.perf_counter() - t0
            save_vqvae(model, out_dir, {"train": asdict(cfg), "train_seconds": secs, "step": done})
            save_training_state(state_path, done, opt, rng_state(rng))
    secs = elapsed_before + time.perf_counter() - t0
    final_val = reconstruction_error_mm(model, val, fk) if val else {}
    report = {
        "steps": cfg.steps, "train_seconds": secs, "threads": cfg.threads, "history": history,
        "val_history": val_hist, "val": final_val, "train_frames": len(all_up),
    }
    save_vqvae(model, out_dir, {"train": asdict(cfg), "train_seconds": secs, "step": cfg.steps, "report": report})
    log.info("done in %.0f s: %s", secs, json.dumps(final_val))
    return report

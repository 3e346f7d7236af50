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
    trainable_parameters,
    warmup_cosine_lr,
)
from engine.train.losses import VectorFK, beat_dip_loss, gauss_kernel, smoothed_speed, speed_curve_loss
from engine.train.sources import balanced_weights

#: Smoothing of the speed curve of the ``w_speed`` loss, frames at 30 fps (= Bailando's sigma 5 at 60 fps).
SPEED_SIGMA = 2.5

MotionSet = list[tuple[str, np.ndarray, np.ndarray]]
#: Channel of the beat flag in the decoder beat features (``conditioning.decoder_beat_features``).
BEAT_FLAG = 2
#: Grid moves of ``shift_phase``: k/SHIFTS of a beat, k = 1 .. SHIFTS-1.
SHIFTS = 8


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
    #: Fine-tuning: a trained VQ-VAE's folder whose weights (and normalisation) the new model starts from, with a
    #: fresh optimizer and this config's schedule (:func:`init_from_vqvae`); "" = random init. The model config may
    #: differ from the source's only by the decoder's beat input (``beat_dim``, ``beat_hidden``) and loss weights.
    init_from: str = ""
    #: Train only the parameters whose names start with these prefixes (e.g. ``["dec_up", "dec_down"]``: the
    #: decoders; the encoders and the codebooks stay exactly as ``init_from``'s, so the tokens do not change and
    #: every GPT trained on them stays valid); empty: train everything. When set, the codebooks' EMA updates
    #: are off.
    train_only: tuple[str, ...] = ()
    #: Share of training windows whose decoder beat features come from the true phase of the music's beat grid
    #: (what a perfect tracker predicts; ``conditioning.with_grid_phase``) instead of the live tracker's prediction,
    #: so the input means "the beat's phase" whatever the tracker (issue 10 item 7); validation keeps the
    #: tracker's. Needs the grid features (``train_vqvae(..., grid_beats=...)``).
    true_phase: float = 0.0
    #: Share of training windows whose beat features come from the beat grid moved by a random 1/8 .. 7/8 of a
    #: beat (the motion does not dip there): with the beat-dip loss (``w_beat``) the decoder learns to put the speed
    #: minima where the features say, whatever the tokens' own timing (as a GPT's freely sampled tokens have).
    shift_phase: float = 0.0


def sample_windows(data: MotionSet, n: int, window: int, rng: np.random.Generator,
                   beats: list[np.ndarray] | None = None, grid_beats: list[np.ndarray] | None = None,
                   true_phase: float = 0.0, shift_phase: float = 0.0) -> tuple[torch.Tensor, ...]:
    """n random windows (sequences chosen by ``sources.balanced_weights``) -> up [n, W, 72], down [n, W, 61]
    (and, with ``beats`` (per-frame decoder beat features of each sequence), their beat features [n, W, F]:
    then windows start on a token boundary of the sequence, as the live engine's tokens do; a share
    ``true_phase`` of them take ``grid_beats[s][0]``, the features of the music's true beat grid, instead, and a
    share ``shift_phase`` one of the grid moved by k/K of a beat, ``grid_beats[s][k]``, k = 1 .. K-1)."""
    lengths = np.array([len(u) for _, u, _ in data], dtype=np.float64)
    ok = lengths >= window
    if not ok.any():
        raise ValueError(f"no sequence is at least {window} frames long")
    p = np.asarray(balanced_weights([nm for nm, _, _ in data], np.where(ok, lengths, 0.0)))
    seq = rng.choice(len(data), size=n, p=p)
    ups, downs, bts = [], [], []
    for s in seq:
        _, u, d = data[s]
        if beats is None:
            start = int(rng.integers(0, len(u) - window + 1))
        else:
            start = DOWN * int(rng.integers(0, (len(u) - window) // DOWN + 1))
            r = rng.random()
            if grid_beats is not None and r < true_phase:
                bts.append(grid_beats[s][0, start : start + window])
            elif grid_beats is not None and r < true_phase + shift_phase:
                k = int(rng.integers(1, len(grid_beats[s])))
                bts.append(grid_beats[s][k, start : start + window])
            else:
                bts.append(beats[s][start : start + window])
        ups.append(u[start : start + window])
        downs.append(d[start : start + window])
    out = (torch.from_numpy(np.stack(ups)), torch.from_numpy(np.stack(downs)))
    return (*out, torch.from_numpy(np.stack(bts))) if beats is not None else out


def sequence_beats(seqs: list, grid: bool = False, shift: float = 0.0) -> list[np.ndarray]:
    """Per-frame decoder beat features [T, DECODER_BEAT_DIM] of training sequences (``dataset.Sequence``), from
    the tracker's belief that the per-token conditioning reads (``conditioning.sequence_beat_features``), or with
    ``grid`` from the true phase of the beat grid the music was rendered on (``conditioning.with_grid_phase``),
    moved later by ``shift`` of a beat."""
    from engine.models.conditioning import (
        COND_DIM,
        DECODER_BEAT_DIM,
        FRAMES_PER_TOKEN,
        MUSIC_DIM,
        decoder_beat_features,
        sequence_beat_features,
        with_grid_phase,
    )

    out = []
    for s in seqs:
        n_tok = -(-s.n_frames // DOWN)
        if grid and len(s.music.beats_s) >= 2:
            bs = np.asarray(s.music.beats_s, dtype=np.float64)
            rows = with_grid_phase(np.zeros((n_tok, COND_DIM), np.float32), bs + shift * np.gradient(bs))
            feats = decoder_beat_features(rows[:, FRAMES_PER_TOKEN * MUSIC_DIM :]).reshape(-1, DECODER_BEAT_DIM)
        else:
            feats = sequence_beat_features(s.music.period_s, s.music.next_beat_s, n_tok)
        out.append(feats[: s.n_frames])
    return out


def grid_beat_sets(seqs: list) -> list[np.ndarray]:
    """For ``true_phase`` / ``shift_phase``: per sequence [SHIFTS, T, F], the beat-grid features moved by k/SHIFTS
    of a beat (k = 0: the grid itself)."""
    moved = [sequence_beats(seqs, grid=True, shift=k / SHIFTS) for k in range(SHIFTS)]
    return [np.stack([m[i] for m in moved]) for i in range(len(seqs))]


def init_from_vqvae(model: VQVAE, source: Path) -> dict:
    """Copy a trained VQ-VAE's weights and statistics (folder ``source``) into ``model``. The configs may differ
    only in the decoder's beat input and the loss weights; a decoder beat input the source lacks starts at its
    own initialisation, whose output layer is zero, so the new model decodes exactly as the source does. Any
    other difference is a one-line ValueError; returns what was done (for the training report)."""
    try:
        src = load_vqvae(Path(source))
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(f"init_from: {str(exc).splitlines()[0]}") from None
    old, new = asdict(src.cfg), asdict(model.cfg)
    free = {"beat_dim", "beat_hidden", "w_beat", "beat_radius", "beat_dip_on", "beta", "w_rec", "w_vel", "w_contact",
            "w_fk", "w_fk_vel", "w_speed", "dead_usage", "ema_decay"}
    diff = [f"{k} {old[k]} -> {new[k]}" for k in new if k not in free and old[k] != new[k]]
    if src.cfg.beat_dim and src.cfg.beat_dim != model.cfg.beat_dim:
        diff.append(f"beat_dim {src.cfg.beat_dim} -> {model.cfg.beat_dim}")
    if diff:
        raise ValueError(f"init_from {source}: the VQ-VAE's shape differs ({', '.join(diff)}); only the decoder's "
                         "beat input can be added")
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    added = [k for k in missing if ".beat." not in k]
    if added or unexpected:
        raise ValueError(f"init_from {source}: weights do not fit ({(added + unexpected)[:3]})")
    return {"from": str(source), "added": sorted({k.rsplit(".", 2)[0] for k in missing})}


def make_vq_optimizer(model: VQVAE, cfg: VQTrainConfig) -> torch.optim.AdamW:
    """AdamW over the parameters ``cfg.train_only`` selects (all when empty); the others are frozen. A prefix
    naming no parameter is a ValueError listing the model's top-level modules."""
    params = trainable_parameters(model, cfg.train_only, "VQ-VAE")
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)


def _train_mode(model: VQVAE, cfg: VQTrainConfig) -> None:
    """Training mode; with ``train_only`` the codebooks stay fixed (their EMA updates only run in training mode)."""
    model.train()
    if cfg.train_only:
        model.q_up.eval()
        model.q_down.eval()


@torch.no_grad()
def reconstruction_error_mm(model: VQVAE, data: MotionSet, fk: VectorFK | None = None,
                            beats: list[np.ndarray] | None = None) -> dict[str, float]:
    """Mean root-relative joint position error (mm) and contact accuracy of encode -> decode (``beats``: the
    per-frame decoder beat features of each sequence, for a beat-conditioned decoder)."""
    fk = fk or VectorFK()
    model.eval()
    errs, acc, n = 0.0, 0.0, 0
    for i, (_, u, d) in enumerate(data):
        t = (len(u) // DOWN) * DOWN
        if t < DOWN * 4:
            continue
        up = torch.from_numpy(u[:t])[None]
        down = torch.from_numpy(d[:t])[None]
        iu, idn = model.encode(up, down)
        bt = torch.from_numpy(beats[i][:t])[None] if beats is not None else None
        ru, rd = model.decode(iu, idn, bt)
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
    train_beats: list[np.ndarray] | None = None,
    val_beats: list[np.ndarray] | None = None,
    grid_beats: list[np.ndarray] | None = None,
) -> dict:
    """Train (or resume) a VQ-VAE into ``out_dir``; returns the training report. ``train_beats``/``val_beats``:
    per-frame decoder beat features of each sequence (:func:`sequence_beats`), needed when
    ``model_cfg.beat_dim > 0``."""
    cfg = cfg or VQTrainConfig()
    model_cfg = model_cfg or VQVAEConfig()
    if cfg.window % DOWN:
        raise ValueError(f"window must be a multiple of {DOWN}, got {cfg.window}")
    if not (cfg.true_phase >= 0.0 and cfg.shift_phase >= 0.0 and cfg.true_phase + cfg.shift_phase <= 1.0):
        raise ValueError(f"true_phase and shift_phase must be shares summing to at most 1, got {cfg.true_phase}, "
                         f"{cfg.shift_phase}")
    if model_cfg.beat_dim:
        if train_beats is None or len(train_beats) != len(train) or (val and (val_beats is None
                                                                              or len(val_beats) != len(val))):
            raise ValueError("a beat-conditioned decoder (beat_dim > 0) needs the beat features of every sequence")
        if any(b.shape[-1] != model_cfg.beat_dim for b in train_beats):
            raise ValueError(f"beat features must have beat_dim = {model_cfg.beat_dim} channels")
        if cfg.true_phase + cfg.shift_phase > 0 and (grid_beats is None or len(grid_beats) != len(train)):
            raise ValueError("true_phase / shift_phase need the beat-grid features of every training sequence")
    else:
        train_beats = val_beats = None
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
    opt = make_vq_optimizer(model, cfg)
    start = 0
    state_path = out_dir / "vqvae_train_state.pt"
    elapsed_before = 0.0
    if resume and state_path.is_file() and (out_dir / "vqvae.safetensors").is_file():
        model = load_vqvae(out_dir)
        model.train()
        opt = make_vq_optimizer(model, cfg)
        st = load_training_state(state_path)
        opt.load_state_dict(st["optimizer"])
        restore_rng(rng, st["rng"])
        start = int(st["step"])
        elapsed_before = float(json.loads((out_dir / "vqvae.json").read_text()).get("train_seconds", 0.0))
        log.info("resumed at step %d", start)
    init = None
    if cfg.init_from and start == 0:
        init = init_from_vqvae(model, Path(cfg.init_from))
        opt = make_vq_optimizer(model, cfg)
        if val:  # the starting point: equals the source's validation
            init["val_at_start"] = reconstruction_error_mm(model, val, fk, val_beats)
        log.info("initialised from %s", json.dumps(init))

    def sched(s: int) -> float:
        return warmup_cosine_lr(s, cfg.lr, cfg.lr_final, 0, cfg.steps)
    t0 = time.perf_counter()
    history: list[dict] = []
    val_hist: list[dict] = []
    _train_mode(model, cfg)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="vqvae", disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = float(sched(step))
        batch = sample_windows(train, cfg.batch, cfg.window, rng, train_beats, grid_beats, cfg.true_phase,
                               cfg.shift_phase)
        up, down = batch[0], batch[1]
        out = model(up, down, batch[2] if train_beats is not None else None)
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
        dip_loss = None
        if model_cfg.w_beat > 0 and train_beats is not None:
            flags = batch[2][..., BEAT_FLAG] > 0.5  # [B, W] the frames the decoder was told hold a beat
            speed = smoothed_speed(pos_rec, out["down"], kernel, travel=model_cfg.beat_dip_on == "all")
            dip_loss = beat_dip_loss(speed, flags, model_cfg.beat_radius)
            loss = loss + model_cfg.w_beat * dip_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
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
            if dip_loss is not None:
                rec["beat_dip"] = float(dip_loss.detach())
            history.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", fk_mm=f"{rec['fk_mm']:.0f}")
            log.info("step %d %s", done, json.dumps(rec))
        if (done % cfg.val_every == 0 or done == cfg.steps) and val:
            v = reconstruction_error_mm(model, val, fk, val_beats)
            v["step"] = done
            val_hist.append(v)
            log.info("val %s", json.dumps(v))
            _train_mode(model, cfg)
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            secs = elapsed_before + time.perf_counter() - t0
            save_vqvae(model, out_dir, {"train": asdict(cfg), "train_seconds": secs, "step": done})
            save_training_state(state_path, done, opt, rng_state(rng))
    secs = elapsed_before + time.perf_counter() - t0
    final_val = reconstruction_error_mm(model, val, fk, val_beats) if val else {}
    report = {
        "steps": cfg.steps, "train_seconds": secs, "threads": cfg.threads, "history": history,
        "val_history": val_hist, "val": final_val, "train_frames": len(all_up),
    }
    if cfg.init_from:
        report["init_from"] = init if init is not None else {"from": cfg.init_from, "resumed": True}
    save_vqvae(model, out_dir, {"train": asdict(cfg), "train_seconds": secs, "step": cfg.steps, "report": report})
    log.info("done in %.0f s: %s", secs, json.dumps(final_val))
    return report

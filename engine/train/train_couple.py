"""Training loop of the salsa follower (:class:`engine.models.follower.FollowerGPT`) on real couples."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine.models.conditioning import COND_DIM, rhythm_mask
from engine.models.follower import FOLLOWER_PRESETS, FollowerConfig, FollowerGPT, save_follower
from engine.models.gpt import GPTConfig
from engine.train.common import file_logger, seed_everything, set_threads, warmup_cosine_lr
from engine.train.couple_data import CoupleTokens


@dataclass
class CoupleTrainConfig:
    """Optimisation settings of the follower."""

    steps: int = 3000
    batch: int = 16
    lr: float = 5e-4
    lr_final: float = 5e-5
    warmup: int = 100
    seed: int = 0
    threads: int = 1
    token_noise: float = 0.1  # share of the follower's input tokens replaced by random ids (as train_gpt)
    #: Placement features are perturbed as if the follower stood elsewhere (a Gaussian offset per window, in
    #: metres, and a heading error in radians) while the targets stay the real placement: the placement head
    #: learns to bring a drifting follower back to where a real follower would be, not only to continue.
    place_offset_m: float = 0.25
    place_yaw_rad: float = 0.3
    place_jitter_m: float = 0.03  # per-step Gaussian jitter on top (metres)
    place_perturbed: float = 0.7  # share of windows perturbed
    place_weight: float = 2.0  # weight of the placement head's MSE next to the two token cross-entropies
    log_every: int = 50
    val_every: int = 100


def sample_batch(data: list[CoupleTokens], cfg: CoupleTrainConfig, gcfg: GPTConfig, rng: np.random.Generator
                 ) -> dict[str, torch.Tensor]:
    """Random windows of ``context`` steps (length-weighted); inputs are the follower's previous tokens."""
    length = gcfg.context
    lens = np.array([len(d.up) for d in data], dtype=np.float64)
    bos = gcfg.bos_id
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("up_in", "down_in", "up", "down", "lead_up", "lead_down",
                                                         "cond", "place", "target", "pos0")}
    for i in rng.choice(len(data), size=cfg.batch, p=lens / lens.sum()):
        d = data[i]
        n = len(d.up)
        w = min(length, n)
        s = int(rng.integers(0, n - w + 1))
        pad = length - w
        up_prev = np.concatenate([[bos], d.up])
        down_prev = np.concatenate([[bos], d.down])
        cols["up_in"].append(np.pad(up_prev[s : s + w], (0, pad), constant_values=bos))
        cols["down_in"].append(np.pad(down_prev[s : s + w], (0, pad), constant_values=bos))
        cols["up"].append(np.pad(d.up[s : s + w], (0, pad), constant_values=-100))
        cols["down"].append(np.pad(d.down[s : s + w], (0, pad), constant_values=-100))
        cols["lead_up"].append(np.pad(d.lead_up[s : s + w], (0, pad), constant_values=bos))
        cols["lead_down"].append(np.pad(d.lead_down[s : s + w], (0, pad), constant_values=bos))
        cols["cond"].append(np.pad(d.cond[s : s + w], ((0, pad), (0, 0))))
        place = d.place[s : s + w].copy()
        if rng.random() < cfg.place_perturbed:
            place = perturb_placement(place, rng.normal(0.0, cfg.place_offset_m, 2), rng.normal(0.0, cfg.place_yaw_rad),
                                      rng.normal(0.0, cfg.place_jitter_m, (w, 2)))
        cols["place"].append(np.pad(place, ((0, pad), (0, 0))))
        cols["target"].append(np.pad(d.target[s : s + w], ((0, pad), (0, 0)), constant_values=np.nan))
        cols["pos0"].append(np.array(s))
    up_in, down_in = np.stack(cols["up_in"]), np.stack(cols["down_in"])
    if cfg.token_noise > 0:
        for arr in (up_in, down_in):
            hit = (rng.random(arr.shape) < cfg.token_noise) & (arr != bos)
            arr[hit] = rng.integers(0, gcfg.vocab_size, int(hit.sum()))
    cond = np.stack(cols["cond"]) * rhythm_mask()[None, None, :]
    return {
        "up_in": torch.from_numpy(up_in).long(), "down_in": torch.from_numpy(down_in).long(),
        "up": torch.from_numpy(np.stack(cols["up"])).long(), "down": torch.from_numpy(np.stack(cols["down"])).long(),
        "lead_up": torch.from_numpy(np.stack(cols["lead_up"])).long(),
        "lead_down": torch.from_numpy(np.stack(cols["lead_down"])).long(),
        "cond": torch.from_numpy(cond).float(), "place": torch.from_numpy(np.stack(cols["place"])).float(),
        "target": torch.from_numpy(np.stack(cols["target"])).float(),
        "pos0": torch.from_numpy(np.stack(cols["pos0"])).long(),
    }


def perturb_placement(place: np.ndarray, offset: np.ndarray, yaw: float, jitter: np.ndarray) -> np.ndarray:
    """Placement features [T, PLACE_DIM] as seen by a follower standing ``offset`` + ``jitter`` [T, 2] (forward,
    lateral, metres) away from where it is and turned by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    fwd, lat = place[:, 0], place[:, 1]
    out = place.copy()
    out[:, 0] = fwd * c + lat * s - offset[0] - jitter[:, 0]
    out[:, 1] = -fwd * s + lat * c - offset[1] - jitter[:, 1]
    dy = np.arctan2(place[:, 3], place[:, 2]) - yaw
    out[:, 2], out[:, 3] = np.cos(dy), np.sin(dy)
    out[:, 4] = np.linalg.norm(out[:, :2], axis=1)
    return out


def batch_loss(model: FollowerGPT, b: dict[str, torch.Tensor], place_weight: float) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of both token streams + ``place_weight`` x placement MSE; and the parts for logs."""
    lu, ld, pl = model.forward_follow(b["up_in"], b["down_in"], b["cond"], b["lead_up"], b["lead_down"], b["place"],
                                      b["pos0"])
    v = lu.shape[-1]
    ce_u = F.cross_entropy(lu.reshape(-1, v), b["up"].reshape(-1), ignore_index=-100)
    ce_d = F.cross_entropy(ld.reshape(-1, v), b["down"].reshape(-1), ignore_index=-100)
    ok = ~torch.isnan(b["target"][..., 0])
    mse = F.mse_loss(pl[ok], b["target"][ok])
    pos_err = float((pl[ok][:, 0] - b["target"][ok][:, 0]).detach().abs().mean())  # distance error, metres
    acc = float(((lu.detach().argmax(-1) == b["up"])[b["up"] >= 0].float().mean()
                 + (ld.detach().argmax(-1) == b["down"])[b["down"] >= 0].float().mean()) / 2)
    return ce_u + ce_d + place_weight * mse, {"ce": float((ce_u + ce_d).detach()), "place_mse": float(mse.detach()),
                                               "place_err_m": pos_err, "acc": acc}


@torch.no_grad()
def validate(model: FollowerGPT, data: list[CoupleTokens], cfg: CoupleTrainConfig) -> dict:
    model.eval()
    rng = np.random.default_rng(1234)
    clean = CoupleTrainConfig(**{**asdict(cfg), "token_noise": 0.0, "place_perturbed": 0.0})
    parts = [batch_loss(model, sample_batch(data, clean, model.cfg, rng), cfg.place_weight) for _ in range(4)]
    model.train()
    return {"val_loss": float(np.mean([float(p[0]) for p in parts])),
            **{f"val_{k}": float(np.mean([p[1][k] for p in parts])) for k in parts[0][1]}}


def train_follower(train: list[CoupleTokens], val: list[CoupleTokens], out_dir: Path, vocab_size: int,
                   cfg: CoupleTrainConfig | None = None, preset: str = "default",
                   start_offset: tuple[float, float] = (0.6, 0.0), min_root_distance_m: float = 0.3,
                   progress: bool = True) -> dict:
    """Train the follower into ``out_dir`` (follower.safetensors + follower.json; the weights of the best
    validation are kept); returns the report (also written to ``couple_train_report.json``)."""
    cfg = cfg or CoupleTrainConfig()
    if preset not in FOLLOWER_PRESETS:
        raise ValueError(f"unknown follower preset {preset!r}; known: {sorted(FOLLOWER_PRESETS)}")
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = file_logger("groovecast.train.couple", out_dir / "train_couple.log")
    gcfg = GPTConfig(vocab_size=vocab_size, cond_dim=COND_DIM, **FOLLOWER_PRESETS[preset])
    fcfg = FollowerConfig(gpt=gcfg, start_offset=start_offset, min_root_distance_m=min_root_distance_m)
    model = FollowerGPT(fcfg)
    with torch.no_grad():  # rhythm channels only, as the leader GPT (engine.train.train_gpt.apply_cond_mask)
        keep = torch.from_numpy(rhythm_mask())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    rng = np.random.default_rng(cfg.seed)

    def lr_at(s: int) -> float:
        return warmup_cosine_lr(s, cfg.lr, cfg.lr_final, cfg.warmup, cfg.steps)

    history: list[dict] = []
    val_hist: list[dict] = []
    best = np.inf
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(cfg.steps), desc="follower", disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = float(lr_at(step))
        loss, parts = batch_loss(model, sample_batch(train, cfg, gcfg, rng), cfg.place_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            rec = {"step": done, "loss": float(loss.detach()), **parts}
            history.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", place=f"{parts['place_err_m']:.2f}m")
            log.info("step %d %s", done, json.dumps(rec))
        if (done % cfg.val_every == 0 or done == cfg.steps) and val:
            v = {"step": done, **validate(model, val, cfg)}
            val_hist.append(v)
            log.info("val %s", json.dumps(v))
            if v["val_loss"] < best:
                best = v["val_loss"]
                with torch.no_grad():
                    model.cond_proj.weight[:, ~keep] = 0.0
                save_follower(model, out_dir)
    if not val:
        with torch.no_grad():
            model.cond_proj.weight[:, ~keep] = 0.0
        save_follower(model, out_dir)
    rep = {"steps": cfg.steps, "train_seconds": time.perf_counter() - t0, "threads": cfg.threads, "preset": preset,
           "train_pairs": len(train), "train_steps_of_data": int(sum(len(d.up) for d in train)),
           "history": history, "val_history": val_hist, "best_val_loss": float(best) if val else None,
           "train_config": asdict(cfg), "follower_config": json.loads(fcfg.to_json())}
    (out_dir / "couple_train_report.json").write_text(json.dumps(rep, indent=2))
    log.info("done in %.0f s", rep["train_seconds"])
    return rep


def train_couple_folder(model_dir: Path, out_dir: Path, data: Path | None = None, cfg: CoupleTrainConfig | None = None,
                        preset: str = "default", cache_dir: Path | None = None, max_takes: int | None = None,
                        progress: bool = True) -> dict:
    """Train a follower for the VQ-VAE in ``model_dir`` on the real salsa couples.

    Writes a complete couple model folder to ``out_dir``: the leader's files copied when it differs (the GPT
    there, if any, must use the same VQ-VAE), ``follower.*`` and the model card's ``couple`` block. Returns the
    training report.
    """
    import shutil

    from engine.models.dance_model import MODEL_CARD
    from engine.models.vqvae import load_vqvae
    from engine.train.couple_data import build_pairs, min_root_distance, start_offset, tokenize_pairs

    vq = load_vqvae(model_dir)
    t0 = time.perf_counter()
    train_pairs = build_pairs(data, "train", cache_dir=cache_dir, max_takes=max_takes)
    val_pairs = build_pairs(data, "val", cache_dir=cache_dir, max_takes=max_takes)
    tr, va = tokenize_pairs(vq, train_pairs), tokenize_pairs(vq, val_pairs)
    data_s = time.perf_counter() - t0
    rep = train_follower(tr, va, out_dir, vq.cfg.n_codes, cfg, preset, start_offset(train_pairs),
                         min_root_distance(train_pairs), progress)
    rep["data_seconds"] = data_s
    if Path(model_dir).resolve() != Path(out_dir).resolve():
        for name in ("vqvae.json", "vqvae.safetensors", "gpt.json", "gpt.safetensors", MODEL_CARD):
            if (Path(model_dir) / name).is_file():
                shutil.copy2(Path(model_dir) / name, out_dir / name)
    card_path = out_dir / MODEL_CARD
    card = json.loads(card_path.read_text()) if card_path.is_file() else {"model_kind": "vqvae-gpt"}
    best = min(rep["val_history"], key=lambda v: v["val_loss"]) if rep["val_history"] else {}
    card["couple"] = {
        "follower": "follower.safetensors + follower.json (engine.models.follower.FollowerGPT)",
        "data": "CMU salsa, subject 60 leads, 61 follows, 60 fps; train takes "
                + ", ".join(sorted({p.name[4:6] for p in train_pairs})) + "; validation takes "
                + ", ".join(sorted({p.name[4:6] for p in val_pairs})),
        "preset": preset, "steps": rep["steps"], "train_seconds": round(rep["train_seconds"], 1),
        "best_validation": {k: round(float(v), 4) for k, v in best.items()},
        "start_offset_m": list(rep["follower_config"]["start_offset"]),
        "pull": rep["follower_config"]["pull"],
        "min_root_distance_m": round(rep["follower_config"]["min_root_distance_m"], 3),
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "couple_train_report.json").write_text(json.dumps(rep, indent=2))
    return rep


def ship_follower(src: Path, model_dir: Path, measures: dict | None = None) -> None:
    """Copy a trained follower (``src``, from :func:`train_couple_folder`) into the model folder ``model_dir``
    as float16, after checking both use the same tokens (the VQ-VAEs' encoders and codebooks bit-identical: a
    decoder fine-tune, :mod:`engine.train.swap_decoder`, keeps them), and write the ``couple`` block of its model
    card (with ``measures``, e.g. the couple bench summary, when given; the card's ``couple.beat_guidance``, the
    leader's setting in couples, is kept unless the run's block sets one)."""
    from safetensors.numpy import load_file

    from engine.models.dance_model import MODEL_CARD
    from engine.models.follower import load_follower, save_follower
    from engine.train.swap_decoder import token_differences

    if token_differences(load_file(str(model_dir / "vqvae.safetensors")), load_file(str(src / "vqvae.safetensors"))):
        raise ValueError(f"{src} was trained on another VQ-VAE's tokens than {model_dir}'s; train it on that one")
    save_follower(load_follower(src), model_dir, half=True)
    card = json.loads((model_dir / MODEL_CARD).read_text())
    block = json.loads((src / MODEL_CARD).read_text())["couple"]
    block["weights"] = "float16 on disk"
    for key in ("beat_guidance", "beat_guidance_why"):  # the leader's setting in couples: the card's, not the run's
        if key in card.get("couple", {}) and key not in block:
            block[key] = card["couple"][key]
    if measures:
        block["measures"] = measures
    card["couple"] = block
    (model_dir / MODEL_CARD).write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":  # python3 -m engine.train.train_couple SRC MODEL_DIR: ship a trained follower
    import sys

    ship_follower(Path(sys.argv[1]), Path(sys.argv[2]))

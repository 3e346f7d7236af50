"""Evaluation of a dance model on the validation takes, beside real motion and an untrained model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from engine.frames import MODEL_FPS
from engine.models.conditioning import GENRES, sequence_conditions
from engine.models.gpt import CrossCondGPT
from engine.models.pose_repr import lock_feet
from engine.models.vqvae import DOWN
from engine.train import metrics as M
from engine.train.dataset import Sequence
from engine.train.generate import DanceModel, decode_tokens, sample_dance_tokens
from engine.train.losses import VectorFK
from engine.train.train_vqvae import reconstruction_error_mm

_FK: list[VectorFK] = []


def points(upper: np.ndarray, lower: np.ndarray, fps: float = MODEL_FPS) -> np.ndarray:
    """World positions [T, 23, 3] of the model joints + toes, root horizontal motion integrated."""
    if not _FK:
        _FK.append(VectorFK())
    with torch.no_grad():
        p = _FK[0](torch.from_numpy(upper).float(), torch.from_numpy(lower).float()).numpy().astype(np.float64)
    xz = np.cumsum(lower[:, [0, 2]].astype(np.float64), axis=0) / fps
    p[:, :, 0] += xz[:, None, 0]
    p[:, :, 2] += xz[:, None, 1]
    return p


def clip_metrics(pos: np.ndarray, beats_s: np.ndarray) -> dict[str, float]:
    return {
        "bas": M.beat_align_score(pos, MODEL_FPS, beats_s),
        "pfc": M.physical_foot_contact(pos, MODEL_FPS),
        "skate_ms": M.foot_skating(pos, MODEL_FPS),
        "freeze_s": M.longest_freeze_s(pos, MODEL_FPS),
        "speed_ms": float(np.linalg.norm(np.diff(M.root_relative(pos), axis=0), axis=-1).mean() * MODEL_FPS),
    }


def generate_for(model: DanceModel, gpt: CrossCondGPT, seq: Sequence, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = seq.n_frames // DOWN
    m = seq.music
    cond = sequence_conditions(m.features, m.period_s, m.next_beat_s, n)
    ups, downs = sample_dance_tokens(replace(model, gpt=gpt), cond, GENRES.index("salsa"), None, seed=seed)
    up, low = decode_tokens(model.vq, ups, downs)
    return up, (lock_feet(up, low) if model.foot_lock else low)


@torch.no_grad()
def vq_recon(model: DanceModel, seq: Sequence) -> np.ndarray:
    """Real motion passed through the VQ-VAE (encode -> decode): the ceiling of what tokens can express."""
    t = (seq.n_frames // DOWN) * DOWN
    iu, idn = model.vq.encode(torch.from_numpy(seq.upper[:t])[None], torch.from_numpy(seq.lower[:t])[None])
    return points(*decode_tokens(model.vq, iu[0].numpy(), idn[0].numpy()))


def evaluate_model(
    model: DanceModel, val: list[Sequence], reference: list[tuple[np.ndarray, np.ndarray]] | None = None, seed: int = 0,
    samples: int = 2,
) -> dict:
    """Metrics for real validation motion, its VQ-VAE reconstruction, the model, and the model untrained.

    FID is measured against ``reference`` (the real training takes as captured) when given, else against
    the real validation motion; features are per segment (SEGMENT_S windows), as there are few takes.
    ``reference`` holds (upper, lower) vector pairs.
    """
    real = {s.name: points(s.upper, s.lower) for s in val}
    torch.manual_seed(seed)
    untrained = CrossCondGPT(replace(model.gpt.cfg, dropout=0.0)).eval()
    guided = model.beat_guidance.enabled
    plain = replace(model, card={**model.card, "sampling": {**model.card.get("sampling", {}), "beat_guidance": None}})
    # With beat guidance on, the same GPTs are also sampled plainly: what the guidance adds stays visible.
    names = ("real", "vq_recon", "model", "untrained") + (("model_plain", "untrained_plain") if guided else ())
    rows: dict[str, dict[str, list]] = {n: {} for n in names}
    clips: dict[str, list[np.ndarray]] = {n: [] for n in names}
    examples: dict[str, np.ndarray] = {}
    for si, s in enumerate(val):
        beats = s.music.beats_s
        variants: list[tuple[str, np.ndarray]] = [("real", real[s.name]), ("vq_recon", vq_recon(model, s))]
        for k in range(samples):
            up, low = generate_for(model, model.gpt, s, seed + 100 * si + k)
            variants.append(("model", points(up, low)))
            up, low = generate_for(model, untrained, s, seed + 100 * si + k)
            variants.append(("untrained", points(up, low)))
            if guided:
                up, low = generate_for(plain, model.gpt, s, seed + 100 * si + k)
                variants.append(("model_plain", points(up, low)))
                up, low = generate_for(plain, untrained, s, seed + 100 * si + k)
                variants.append(("untrained_plain", points(up, low)))
        for name, pos in variants:
            clips[name].append(pos)
            for key, v in clip_metrics(pos, beats).items():
                rows[name].setdefault(key, []).append(v)
            examples.setdefault(name, pos)
    ref_clips = [points(u, lo) for u, lo in reference] if reference else clips["real"]
    ref_k, ref_g = M.segment_features(ref_clips, MODEL_FPS)
    summary: dict[str, dict] = {}
    for name in names:
        feat_k, feat_g = M.segment_features(clips[name], MODEL_FPS)
        rk, gk = M.normalise_pair(ref_k, feat_k)
        rg, gg = M.normalise_pair(ref_g, feat_g)
        summary[name] = {
            "fid_k": M.frechet_distance(rk, gk), "fid_g": M.frechet_distance(rg, gg),
            "div_k": M.diversity(gk), "div_g": M.diversity(gg),
            **{key: float(np.mean(v)) for key, v in rows[name].items()},
            "max_freeze_s": float(np.max(rows[name]["freeze_s"])), "segments": len(feat_k), "clips": len(clips[name]),
        }
    vq = reconstruction_error_mm(model.vq, [(s.name, s.upper, s.lower) for s in val])
    summary["model"]["vq_mpjpe_mm"] = vq["mpjpe_mm"]
    summary["model"]["vq_contact_acc"] = vq["contact_acc"]
    first = val[0]
    return {
        "summary": summary,
        "notes": {
            "fid_reference": "real training takes as captured" if reference else "real validation motion",
            "features": f"per-segment ({M.SEGMENT_S:.0f} s windows, {M.SEGMENT_HOP_S:.0f} s hop)",
            "music": "synthetic rhythm tracks rendered on the kinetic beats of each validation take",
            "samples_per_clip": samples,
            "sampling": {k: v for k, v in model.card.get("sampling", {}).items()},
            "rows": "model/untrained: the model card's sampling; *_plain: the same GPT without beat guidance"
            if guided else "model/untrained: the model card's sampling (plain)",
            "val_clips": [s.name for s in val],
        },
        "plot": {
            "beats_s": first.music.beats_s.tolist(),
            "real": examples["real"],
            "model": examples["model"],
            "untrained": examples["untrained"],
        },
    }


def write_report(res: dict, out_dir: Path, extra_md: str = "") -> None:
    """eval.json, eval.md and eval.png (motion speed against music beats) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = res["summary"]
    (out_dir / "eval.json").write_text(json.dumps({"summary": summary, "notes": res["notes"]}, indent=2))
    cols = ["fid_k", "fid_g", "div_k", "div_g", "bas", "pfc", "skate_ms", "max_freeze_s", "speed_ms"]
    lines = ["# Dance model evaluation (validation takes 12-13)", "",
             "| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name in ("real", "vq_recon", "model", "model_plain", "untrained", "untrained_plain"):
        if name not in summary:
            continue
        lines.append(f"| {name} | " + " | ".join(f"{summary[name].get(c, float('nan')):.3f}" for c in cols) + " |")
    lines += ["", f"VQ-VAE reconstruction (validation): {summary['model']['vq_mpjpe_mm']:.1f} mm mean joint error, "
              f"foot-contact accuracy {summary['model']['vq_contact_acc']:.3f}.", ""]
    for k, v in res["notes"].items():
        lines.append(f"- {k}: {v}")
    if extra_md:
        lines += ["", extra_md]
    (out_dir / "eval.md").write_text("\n".join(lines) + "\n")
    p = res["plot"]
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    for ax, name in zip(axes, ("real", "model", "untrained"), strict=True):
        pos = p[name]
        mb, v = M.motion_beats(M.upsample(pos, 2), 60.0)
        t = np.arange(len(v)) / 60.0
        ax.plot(t, v, lw=1, label="joint speed (m/s)")
        ax.plot(mb / 60.0, v[mb], "v", ms=4, label="motion beats")
        for b in p["beats_s"]:
            if b <= t[-1]:
                ax.axvline(b, color="r", alpha=0.3, lw=0.8)
        ax.set_ylabel(name)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (s); red lines: music beats")
    fig.suptitle("Motion speed vs music beats (validation take)")
    fig.tight_layout()
    fig.savefig(out_dir / "eval.png", dpi=90)
    plt.close(fig)

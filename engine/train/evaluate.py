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
from engine.models.pose_repr import metric_cmu_skeleton, vectors_to_motion
from engine.models.staging import DEFAULT_STAGING, REAL_SPEED_P999, PointFK, stage_arrays
from engine.models.vqvae import DOWN
from engine.skeleton import rotations as R
from engine.train import metrics as M
from engine.train.dataset import TRAINED_GENRES, Sequence
from engine.train.generate import DanceModel, decode_tokens, sample_dance
from engine.train.losses import VectorFK
from engine.train.sources import style_of
from engine.train.style_classifier import train_style_classifier
from engine.train.train_vqvae import reconstruction_error_mm, sequence_beats

_FK: list[VectorFK] = []
_POINT_FK = PointFK()


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
        "root_speed_ms": float(np.linalg.norm(np.diff(pos[:, 0, [0, 2]], axis=0), axis=-1).mean() * MODEL_FPS),
    }


def staging_metrics(upper: np.ndarray, lower: np.ndarray, style: str) -> dict[str, float]:
    """Staging measures of a dance as ``generate`` outputs it (staged with the default settings): share of frames
    facing the front within 45 deg, largest and 95th percentile distance from the stage centre, and the largest
    joint speed over the real 99.9th percentile of that joint in the style (the limit is 1.2), and the share of frames
    the speed limit held back (``speed_capped``: how often the cap acted)."""
    motion = vectors_to_motion(upper, lower, metric_cmu_skeleton())
    stats: dict[str, float] = {}
    root, quat = stage_arrays(motion.root_pos, R.matrix_to_quat(motion.rot), DEFAULT_STAGING, style, stats=stats)
    pos, _ = _POINT_FK(root, quat)
    far, p95 = M.stage_distance(pos)
    lim = REAL_SPEED_P999.get(style, REAL_SPEED_P999["salsa"])
    return {"facing": M.facing_share(pos), "stage_max_m": far, "stage_p95_m": p95,
            "speed_ratio_max": float(M.joint_speed_ratio(pos, MODEL_FPS, np.array(lim)).max()),
            "speed_capped": stats["speed_capped_share"]}


def style_of_sequence(seq: Sequence) -> str:
    """The style a sequence was captured in (its genre row, else its name)."""
    if 0 < seq.genre < len(GENRES) and GENRES[seq.genre] in TRAINED_GENRES:
        return GENRES[seq.genre]
    return style_of(seq.name)


def generate_for(
    model: DanceModel, gpt: CrossCondGPT, seq: Sequence, seed: int, genre: str = "salsa",
) -> tuple[np.ndarray, np.ndarray]:
    n = seq.n_frames // DOWN
    m = seq.music
    cond = sequence_conditions(m.features, m.period_s, m.next_beat_s, n)
    gid = GENRES.index(genre) if GENRES.index(genre) < gpt.cfg.n_genres else GENRES.index("salsa")
    # the live generator at batch 1, staged step by step as ``generate`` stages it (the staging tells the generator
    # where the dancer stands: beat guidance's stage term); the vectors are the model's own (unstaged) frames
    d = sample_dance(replace(model, gpt=gpt), cond, gid, None, seed=seed, staging=DEFAULT_STAGING)
    return d.upper, d.lower  # foot-locked by the generator when the card asks


@torch.no_grad()
def vq_recon_vectors(model: DanceModel, seq: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Real motion passed through the VQ-VAE (encode -> decode): the ceiling of what tokens can express."""
    t = (seq.n_frames // DOWN) * DOWN
    iu, idn = model.vq.encode(torch.from_numpy(seq.upper[:t])[None], torch.from_numpy(seq.lower[:t])[None])
    beat = sequence_beats([seq])[0] if model.vq.cfg.beat_dim else None  # a beat-conditioned decoder's input
    return decode_tokens(model.vq, iu[0].numpy(), idn[0].numpy(), beat)


def vq_recon(model: DanceModel, seq: Sequence) -> np.ndarray:
    return points(*vq_recon_vectors(model, seq))


def _summarise(
    names: tuple[str, ...], clips: dict[str, list[np.ndarray]], rows: dict[str, dict[str, list]],
    ref_clips: list[np.ndarray], acc: dict[str, list[float]],
) -> dict[str, dict]:
    ref_k, ref_g = M.segment_features(ref_clips, MODEL_FPS)
    out: dict[str, dict] = {}
    for name in names:
        if not clips[name]:
            continue
        feat_k, feat_g = M.segment_features(clips[name], MODEL_FPS)
        rk, gk = M.normalise_pair(ref_k, feat_k)
        rg, gg = M.normalise_pair(ref_g, feat_g)
        out[name] = {
            "fid_k": M.frechet_distance(rk, gk), "fid_g": M.frechet_distance(rg, gg),
            "div_k": M.diversity(gk), "div_g": M.diversity(gg),
            **{key: float(np.mean(v)) for key, v in rows[name].items()},
            "max_freeze_s": float(np.max(rows[name]["freeze_s"])), "segments": len(feat_k), "clips": len(clips[name]),
            "speed_ratio_peak": float(np.max(rows[name]["speed_ratio_max"])),
            "stage_max_peak_m": float(np.max(rows[name]["stage_max_m"])),
        }
        if acc.get(name):
            out[name]["style_acc"] = float(np.nanmean(acc[name]))
    if "real" in out:
        for r in out.values():
            r["speed_ratio"] = r["speed_ms"] / max(out["real"]["speed_ms"], 1e-9)
            r["root_speed_ratio"] = r["root_speed_ms"] / max(out["real"]["root_speed_ms"], 1e-9)
    return out


def evaluate_model(
    model: DanceModel, val: list[Sequence], reference: list[tuple[np.ndarray, np.ndarray]] | None = None, seed: int = 0,
    samples: int = 2, reference_names: list[str] | None = None, untrained_guided: bool = True,
    compare: bool = True,
) -> dict:
    """Metrics for real validation motion, its VQ-VAE reconstruction, the model, and the model untrained.

    All validation clips pooled (``summary``) and per style (``by_style``; each style's dances are generated
    under that genre control). FID is measured against ``reference`` (the real training takes as captured,
    (upper, lower) pairs) when given, else against the real validation motion; per style against that
    style's reference clips when ``reference_names`` (sequence names of ``reference``) are given. Features
    are per segment (SEGMENT_S windows), as there are few takes. With ``reference_names`` a style
    classifier is trained on the reference clips and each row's ``style_acc`` is the share of its 4 s windows
    classified as the style it was meant to be. ``untrained_guided=False`` samples the untrained GPT plainly
    only (beat guidance on random weights costs the most and says least). ``compare=False`` generates the
    model row only (no ``model_plain`` and no untrained GPT: a sweep over a sampling setting).
    """
    torch.manual_seed(seed)
    untrained = CrossCondGPT(replace(model.gpt.cfg, dropout=0.0)).eval()
    guided = model.beat_guidance.enabled and compare
    plain = replace(model, card={**model.card, "sampling": {**model.card.get("sampling", {}), "beat_guidance": None}})
    # With beat guidance on, the same GPTs are also sampled plainly: what the guidance adds stays visible.
    names = ("real", "vq_recon", "model") + (("untrained",) if compare and (untrained_guided or not guided) else ()) + (
        ("model_plain", "untrained_plain") if guided else ())
    styles = sorted({style_of_sequence(s) for s in val})
    clf = None
    if reference and reference_names:
        clf = train_style_classifier(
            [(style_of(n), u, lo) for n, (u, lo) in zip(reference_names, reference, strict=True)])
    per: dict[str, dict[str, dict[str, list]]] = {st: {n: {} for n in names} for st in styles}
    clips: dict[str, dict[str, list[np.ndarray]]] = {st: {n: [] for n in names} for st in styles}
    acc: dict[str, dict[str, list[float]]] = {st: {n: [] for n in names} for st in styles}
    examples: dict[str, np.ndarray] = {}
    for si, s in enumerate(val):
        st = style_of_sequence(s)
        beats = s.music.beats_s
        variants: list[tuple[str, tuple[np.ndarray, np.ndarray]]] = [
            ("real", (s.upper, s.lower)), ("vq_recon", vq_recon_vectors(model, s))]
        for k in range(samples):
            sd = seed + 100 * si + k
            variants.append(("model", generate_for(model, model.gpt, s, sd, st)))
            if "untrained" in names:
                variants.append(("untrained", generate_for(model, untrained, s, sd, st)))
            if guided:
                variants.append(("model_plain", generate_for(plain, model.gpt, s, sd, st)))
                variants.append(("untrained_plain", generate_for(plain, untrained, s, sd, st)))
        for name, (up, low) in variants:
            pos = points(up, low)
            clips[st][name].append(pos)
            for key, v in {**clip_metrics(pos, beats), **staging_metrics(up, low, st)}.items():
                per[st][name].setdefault(key, []).append(v)
            if clf is not None and st in clf.styles:
                acc[st][name].append(clf.accuracy([(up, low)], st))
            examples.setdefault(name, pos)
    ref_all = [points(u, lo) for u, lo in reference] if reference else [c for st in styles for c in clips[st]["real"]]
    by_style: dict[str, dict] = {}
    for st in styles:
        if reference and reference_names:
            ref_st = [points(u, lo) for n, (u, lo) in zip(reference_names, reference, strict=True) if style_of(n) == st]
        else:
            ref_st = clips[st]["real"]
        by_style[st] = _summarise(names, clips[st], per[st], ref_st or ref_all, acc[st])
    pooled_clips = {n: [c for st in styles for c in clips[st][n]] for n in names}
    pooled_rows: dict[str, dict[str, list]] = {n: {} for n in names}
    pooled_acc: dict[str, list[float]] = {n: [] for n in names}
    for st in styles:
        for n in names:
            for key, vals in per[st][n].items():
                pooled_rows[n].setdefault(key, []).extend(vals)
            pooled_acc[n].extend(acc[st][n])
    summary = _summarise(names, pooled_clips, pooled_rows, ref_all, pooled_acc)
    vq = reconstruction_error_mm(model.vq, [(s.name, s.upper, s.lower) for s in val], None,
                                 sequence_beats(val) if model.vq.cfg.beat_dim else None)
    summary["model"]["vq_mpjpe_mm"] = vq["mpjpe_mm"]
    summary["model"]["vq_contact_acc"] = vq["contact_acc"]
    first = val[0]
    return {
        "summary": summary,
        "by_style": by_style,
        "notes": {
            "fid_reference": ("real training takes as captured" + (", per style" if reference_names else ""))
            if reference else "real validation motion",
            "features": f"per-segment ({M.SEGMENT_S:.0f} s windows, {M.SEGMENT_HOP_S:.0f} s hop)",
            "music": "synthetic rhythm tracks rendered on the kinetic beats of each validation take",
            "samples_per_clip": samples,
            "sampling": {k: v for k, v in model.card.get("sampling", {}).items()},
            "rows": "model/untrained: the model card's sampling; *_plain: the same GPT without beat guidance"
            if guided else "model/untrained: the model card's sampling (plain)",
            "genre_control": "each style's dances are generated with that style's genre row",
            "staging": "facing, stage_*_m, speed_ratio_*, speed_capped (share of frames the speed limit held back): "
                       "the dance as generate outputs it (staged: front +Z, radius 1.5 m, joint speeds <= 1.2x the "
                       "real 99.9th percentile); the other measures: the model's motion before staging",
            "style_acc": "share of 4 s windows a logistic-regression style classifier (trained on the real training "
                         "takes) assigns to the intended style" if clf is not None else "not measured (no reference)",
            "val_clips": [s.name for s in val],
        },
        "plot": {
            "beats_s": first.music.beats_s.tolist(),
            "real": examples["real"],
            "model": examples["model"],
            "untrained": examples.get("untrained", examples.get("untrained_plain")),
        },
    }


def write_report(res: dict, out_dir: Path, extra_md: str = "") -> None:
    """eval.json, eval.md and eval.png (motion speed against music beats) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = res["summary"]
    (out_dir / "eval.json").write_text(json.dumps(
        {"summary": summary, "by_style": res.get("by_style", {}), "notes": res["notes"],
         **({"couple": res["couple"]} if "couple" in res else {})}, indent=2))
    cols = ["fid_k", "fid_g", "div_k", "div_g", "bas", "pfc", "skate_ms", "max_freeze_s", "speed_ms", "speed_ratio",
            "root_speed_ms", "root_speed_ratio", "style_acc", "facing", "stage_max_peak_m", "stage_p95_m",
            "speed_ratio_peak", "speed_capped"]
    order = ("real", "vq_recon", "model", "model_plain", "untrained", "untrained_plain")

    def table(rows: dict) -> list[str]:
        out = ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for name in order:
            if name in rows:
                out.append(f"| {name} | " + " | ".join(f"{rows[name].get(c, float('nan')):.3f}" for c in cols) + " |")
        return out

    lines = ["# Dance model evaluation (held-out validation takes of every style)", ""]
    for st, rows in res.get("by_style", {}).items():
        lines += [f"## {st}", "", *table(rows), ""]
    lines += ["## all styles pooled", "", *table(summary), ""]
    lines += [f"VQ-VAE reconstruction (validation): {summary['model']['vq_mpjpe_mm']:.1f} mm mean joint error, "
              f"foot-contact accuracy {summary['model']['vq_contact_acc']:.3f}.", "",
              "speed_ms: mean root-relative joint speed; root_speed_ms: mean horizontal root speed; *_ratio: "
              "against the real row (a dance played at twice its speed shows 2.0).", ""]
    for k, v in res["notes"].items():
        lines.append(f"- {k}: {v}")
    if extra_md:
        lines += ["", extra_md]
    (out_dir / "eval.md").write_text("\n".join(lines) + "\n")
    p = res["plot"]
    shown = [n for n in ("real", "model", "untrained") if p.get(n) is not None]  # no untrained row: compare=False
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, 7 * len(shown) / 3), sharex=True)
    for ax, name in zip(axes, shown, strict=True):
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

"""Assemble a model folder for shipping: weights, model card (model.json) and a training report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.conditioning import COND_DIM, GENRES, TEXT_DIM
from engine.models.pose_repr import CMU_SCALE, LOWER_JOINTS, UPPER_JOINTS
from engine.models.vqvae import DOWN
from engine.train.dataset import TRAINED_GENRES, Sequence
from engine.train.evaluate import clip_metrics, points
from engine.train.sources import SOURCES, style_of

WEIGHT_FILES = ("vqvae.json", "vqvae.safetensors", "gpt.json", "gpt.safetensors")


def real_reference(seqs: list[Sequence]) -> dict:
    """Foot skating / PFC / freeze / speed levels of real motion (all styles, and per style): the bar generated
    motion is held to."""

    def levels(group: list[Sequence]) -> dict[str, float]:
        skate, pfc, freeze, speed, root = [], [], [], [], []
        for s in group:
            p = points(s.upper, s.lower)
            m = clip_metrics(p, s.music.beats_s)
            skate.append(m["skate_ms"])
            pfc.append(m["pfc"])
            freeze.append(m["freeze_s"])
            speed.append(m["speed_ms"])
            root.append(m["root_speed_ms"])
        return {"skate_ms": float(np.mean(skate)), "skate_ms_max": float(np.max(skate)), "pfc": float(np.mean(pfc)),
                "longest_freeze_s": float(np.max(freeze)), "speed_ms": float(np.mean(speed)),
                "root_speed_ms": float(np.mean(root)), "clips": len(group)}

    out: dict = levels(seqs)
    styles = sorted({style_of(s.name) for s in seqs})
    out["by_style"] = {st: levels([s for s in seqs if style_of(s.name) == st]) for st in styles}
    return out


def write_model_folder(
    run_dir: Path, out_dir: Path, reference: dict[str, float], sampling: dict, report_md: str,
    eval_summary: dict | None = None,
) -> Path:
    """Copy the weights of ``run_dir`` into ``out_dir`` and write model.json + TRAINING.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for n in WEIGHT_FILES:
        shutil.copy2(run_dir / n, out_dir / n)
    vq_meta = json.loads((run_dir / "vqvae.json").read_text())
    gpt_rep = json.loads((run_dir / "gpt_train_report.json").read_text())
    card = {
        "name": out_dir.name,
        "kind": "groovecast dance model (FreqVQ-VAE + cross-conditional GPT)",
        "skeleton": "cmu",
        "skeleton_scale_from_cmu_files": CMU_SCALE,
        "fps": MODEL_FPS,
        "frames_per_token": DOWN,
        "decoder_latency_frames": 0,
        "cond_dim": COND_DIM,
        # the GPT's own width: 384 (the sentence) or 386 with the energy input (conditioning.has_energy)
        "text_dim": int(json.loads((run_dir / "gpt.json").read_text()).get("text_dim", TEXT_DIM)),
        "genres": list(GENRES),
        "trained_genres": list(TRAINED_GENRES),
        "sources": {st: {"fps": src.fps, "header_fps": src.header_fps, "train_takes": list(src.train_takes),
                         "val_takes": list(src.val_takes), "why": src.why} for st, src in SOURCES.items()},
        "lower_joints": list(LOWER_JOINTS),
        "upper_joints": list(UPPER_JOINTS),
        "sampling": sampling,
        "training": {
            "data": "CMU mocap at each source's true rate: salsa (subjects 60/61, 60 fps), Indian (subject 94, "
                    "120 fps), modern (subject 05, iClone skeleton retargeted, 60 fps); validation held out by take; "
                    "synthetic music locked to the kinetic beats of each take",
            "vqvae_seconds": vq_meta.get("train_seconds"),
            "vqvae_steps": vq_meta.get("step"),
            "gpt_seconds": gpt_rep.get("train_seconds"),
            "gpt_steps": gpt_rep.get("step"),
            "vq_val": vq_meta.get("report", {}).get("val"),
            # the weights shipped: the best validation of a keep_best run, else the last
            "gpt_val": gpt_rep.get("best") or (gpt_rep.get("val_history") or [{}])[-1],
            "gpt_val_last": (gpt_rep.get("val_history") or [{}])[-1],
            # a fine-tune (train_gpt's init_from): the GPT it started from, and what it trained
            **({"gpt_init_from": gpt_rep["init_from"],
                "gpt_train_only": gpt_rep.get("train_config", {}).get("train_only") or None}
               if gpt_rep.get("init_from") else {}),
        },
        "real_reference": reference,
        "eval": eval_summary or {},
        "acknowledgement": "The data used in this project was obtained from mocap.cs.cmu.edu. "
                           "The database was created with funding from NSF EIA-0196217.",
    }
    (out_dir / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "TRAINING.md").write_text(report_md)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.train.ship RUN_DIR --data PACKED [--out DIR] [--report DIR]``: evaluate and ship."""
    import argparse

    from engine.cli.train_cmds import _reference, load_data
    from engine.train.evaluate import evaluate_model, write_report
    from engine.train.generate import DEFAULT_MODEL_DIR, load_dance_model

    ap = argparse.ArgumentParser(prog="python -m engine.train.ship")
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--report", type=Path, default=Path("bench/reports"))
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--no-foot-lock", action="store_true")
    ap.add_argument("--beat-guidance", type=int, default=32, metavar="N",
                    help="beat-guided sampling with N candidates in the model card (0: plain; default 32)")
    ap.add_argument("--max-repeat", type=int, default=6, metavar="N",
                    help="repetition guard in the model card: no token drawn more than N times in a row (0: off; "
                         "default 6)")
    ap.add_argument("--samples", type=int, default=4, help="generated dances per validation clip")
    ap.add_argument("--untrained-plain-only", action="store_true", help="skip the beat-guided untrained row")
    ap.add_argument("--notes", type=Path, default=None, help="Markdown appended to TRAINING.md and eval.md")
    args = ap.parse_args(argv)
    from engine.models.beat_guidance import GuidanceConfig

    sampling: dict = {"temperature": args.temperature, "top_k": args.top_k, "foot_lock": not args.no_foot_lock}
    guide = GuidanceConfig().with_candidates(args.beat_guidance)
    sampling["beat_guidance"] = guide.to_card() if guide.enabled else None
    if args.max_repeat < 0:
        ap.error(f"--max-repeat must be >= 0, got {args.max_repeat}")
    sampling["max_repeat"] = args.max_repeat or None
    val = load_data(args.data, "val", None)
    ref_names, ref_pairs = _reference(args.data)
    ref_seqs = [Sequence(name=n, upper=u, lower=lo, music=val[0].music)
                for n, (u, lo) in zip(ref_names, ref_pairs, strict=True)]
    reference = real_reference(ref_seqs)
    tmp = write_model_folder(args.run_dir, args.out, reference, sampling, "(pending evaluation)\n")
    model = load_dance_model(tmp)
    res = evaluate_model(model, val, reference=ref_pairs, samples=args.samples, reference_names=ref_names,
                         untrained_guided=not args.untrained_plain_only)
    notes = args.notes.read_text() if args.notes else ""
    write_report(res, args.report, notes)
    eval_md = (args.report / "eval.md").read_text()
    gpt_rep = json.loads((args.run_dir / "gpt_train_report.json").read_text())
    vq_meta = json.loads((args.run_dir / "vqvae.json").read_text())
    report = [
        "# Training report: default dance model", "",
        f"- VQ-VAE: {vq_meta.get('step')} steps, {vq_meta.get('train_seconds', 0) / 60:.1f} min",
        f"- GPT: {gpt_rep.get('step')} steps, {gpt_rep.get('train_seconds', 0) / 60:.1f} min",
        f"- sampling: {json.dumps(sampling)}",
        f"- real reference (training takes as captured): {json.dumps(reference)}", "",
        notes, "", eval_md,
    ]
    write_model_folder(args.run_dir, args.out, reference, sampling, "\n".join(report) + "\n",
                       {**res["summary"], "by_style": res["by_style"]})
    print(json.dumps(res["summary"], indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""``groovecast train vqvae|gpt|beats``, ``groovecast eval`` and ``groovecast generate``."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

from engine.cli import (
    GENRE_GUIDANCE_HELP,
    MAX_REPEAT_HELP,
    TEXT_GUIDANCE_HELP,
    CliError,
    check_genre_guidance,
    check_max_repeat,
    check_text_guidance,
)
from engine.cli.staging_args import add_staging_arguments, staging_config

log = logging.getLogger(__name__)

TEXT_STEER_HELP = ("weight of beat guidance's text attribute term: candidates scored by the attribute a prompt names "
                   "(0: off; default: the model card's sampling.beat_guidance.text_weight)")


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train the dance models (VQ-VAE, then GPT)")
    tsub = p.add_subparsers(dest="what", metavar="MODEL")
    for what in ("vqvae", "gpt"):
        q = tsub.add_parser(what, help=f"train the {'FreqVQ-VAE' if what == 'vqvae' else 'cross-conditional GPT'}")
        q.add_argument("--data", type=Path, default=None,
                       help="CMU salsa folder, or a folder with packed train.npz/val.npz (default: shared CMU data)")
        q.add_argument("--config", type=Path, default=None, help='JSON file {"train": {...}, "model": {...}}')
        q.add_argument("--out", type=Path, default=Path("runs/dance"), help="model folder (default runs/dance)")
        q.add_argument("--steps", type=int, default=None, help="override the number of training steps")
        q.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
        q.add_argument("--cache", type=Path, default=None, help="cache folder for rendered music and features")
        q.add_argument("--pack", type=Path, default=None, help="also write the prepared data (train/val .npz) here")
        if what == "gpt":
            q.add_argument("--vqvae", type=Path, default=None, help="folder of the trained VQ-VAE (default: --out)")
            q.add_argument("--no-text", action="store_true", help="train without caption embeddings")
        q.set_defaults(handler=_train)
    c = tsub.add_parser("couple", help="train the salsa follower of couple mode (--couple) on the real couples")
    c.add_argument("--model", type=Path, default=None,
                   help="folder of the leader's VQ-VAE + GPT (default: the shipped model)")
    c.add_argument("--data", type=Path, default=None, help="data root or the cmu_salsa folder (default: shared data)")
    c.add_argument("--out", type=Path, default=Path("runs/couple"),
                   help="couple model folder written: the leader's files, follower.*, model card (default runs/couple)")
    c.add_argument("--steps", type=int, default=None, help="training steps (default 3000)")
    c.add_argument("--preset", default="default", help="follower size: default or tiny (tests)")
    c.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    c.add_argument("--max-takes", type=int, default=None, help="use only the first N takes of each split (tests)")
    c.add_argument("--cache", type=Path, default=None, help="cache folder for rendered music and features")
    c.set_defaults(handler=_train_couple)
    b = tsub.add_parser("beats", help="train the causal beat/downbeat network on rendered music (see docs/audio.md)")
    b.add_argument("--out", type=Path, default=Path("runs/beats"),
                   help="model folder (default runs/beats; the shipped one is engine/data/models/beats)")
    b.add_argument("--clips", type=int, default=None, help="rendered training clips (default 320)")
    b.add_argument("--steps", type=int, default=None, help="training steps (default 2000)")
    b.add_argument("--seed", type=int, default=0, help="seed of the clip choices, augmentation and training")
    b.add_argument("--cache", type=Path, default=Path(".cache"), help="cache folder for the rendered features")
    b.set_defaults(handler=_train_beats)
    p.set_defaults(handler=lambda a: _need_sub(p))

    e = sub.add_parser("eval", help="evaluate a dance model on the validation takes")
    e.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    e.add_argument("--data", type=Path, default=None, help="CMU folder or packed data folder")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--report", type=Path, default=None, help="write eval.md/.json/.png into this folder")
    e.add_argument("--seed", type=int, default=0, help="random seed of the generated dances (default 0)")
    e.add_argument("--samples", type=int, default=2, help="generated dances per validation clip (default 2)")
    e.add_argument("--temperature", type=float, default=None, help="override the model card's sampling")
    e.add_argument("--top-k", type=int, default=None, help="override the model card's sampling")
    e.add_argument("--beat-guidance", type=int, default=None, metavar="N",
                   help="beat-guided sampling with N candidates (0: plain sampling; default: the model card's)")
    e.add_argument("--max-repeat", type=int, default=None, metavar="N", help=MAX_REPEAT_HELP)
    e.add_argument("--genre-guidance", type=float, default=None, metavar="S", help=GENRE_GUIDANCE_HELP)
    e.add_argument("--text-guidance", type=float, default=None, metavar="S", help=TEXT_GUIDANCE_HELP)
    e.add_argument("--text-steer", type=float, default=None, metavar="W", help=TEXT_STEER_HELP + " (with --controls)")
    e.add_argument("--seed-offset", type=int, default=0, metavar="N",
                   help="--controls: pair i dances with seed i + N (default 0; another N: other dances on the same "
                        "music, to check a setting tuned on the first)")
    e.add_argument("--model-only", action="store_true",
                   help="generate only the model card's row (skip model_plain and the untrained GPT)")
    e.add_argument("--no-foot-lock", action="store_true", help="evaluate without root-velocity foot locking")
    e.add_argument("--untrained-plain-only", action="store_true",
                   help="sample the untrained GPT plainly only (skip its costly beat-guided row)")
    e.add_argument("--couple", action="store_true",
                   help="also measure salsa couples (the live couple kind) against the real held-out couples: "
                        "partner distances, holds, facing, interpenetration, skating, the pair on stage (--samples "
                        "couples per take; the model folder must hold a follower)")
    e.add_argument("--controls", action="store_true",
                   help="measure the controls instead (energy, text, keyframes, genre switch: paired dances through "
                        "the live generator; report controls.md/.json/.png)")
    e.add_argument("--pairs", type=int, default=12, help="--controls: paired dances per row (default 12)")
    e.add_argument("--seconds", type=float, default=12.0, help="--controls: length of each dance (default 12)")
    e.add_argument("--parts", default="energy,text,keyframes,genre",
                   help="--controls: which controls to measure (comma-separated; default all)")
    e.set_defaults(handler=_eval)

    g = sub.add_parser("generate", help="render a dance for an audio file to BVH (offline)")
    g.add_argument("audio", type=Path, help="PCM WAV file")
    g.add_argument("--out", type=Path, required=True, help="output .bvh")
    g.add_argument("--genre", default="salsa", help="genre: salsa, indian or modern (trained); see docs/models.md")
    g.add_argument("--text", default=None, help="text prompt, e.g. 'an energetic salsa dance'")
    g.add_argument("--seconds", type=float, default=None, help="only the first N seconds")
    g.add_argument("--model", default=None,
                   help="model folder, or 'retrieval' for motion matching over the capture "
                        "(default: the shipped model)")
    g.add_argument("--data", type=Path, default=None,
                   help="motion capture that --model retrieval indexes (default: ../shared/data)")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the model card's)")
    g.add_argument("--top-k", type=int, default=None,
                   help="sample from the k most likely tokens (0: all; default: the model card's)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--beat-guidance", type=int, default=None, metavar="N",
                   help="beat-guided sampling with N candidates (0: plain sampling; default: the model card's)")
    g.add_argument("--max-repeat", type=int, default=None, metavar="N", help=MAX_REPEAT_HELP)
    g.add_argument("--genre-guidance", type=float, default=None, metavar="S", help=GENRE_GUIDANCE_HELP)
    g.add_argument("--text-guidance", type=float, default=None, metavar="S", help=TEXT_GUIDANCE_HELP)
    g.add_argument("--text-steer", type=float, default=None, metavar="W", help=TEXT_STEER_HELP)
    g.add_argument("--couple", action="store_true",
                   help="a salsa couple: writes OUT with _lead and _follow before the suffix (two BVH files, one "
                        "per dancer, in one world frame); the model folder must hold a follower")
    g.add_argument("--energy", type=float, default=None, metavar="0..1",
                   help="how much the dancer moves (models trained with the energy control; rendered by the live "
                        "generator)")
    g.add_argument("--keyframe", action="append", default=[], metavar="POSE.bvh@SECONDS[:upper|:lower]",
                   help="reach the first pose of POSE.bvh at SECONDS (repeatable; :upper/:lower pins half the body; "
                        "rendered by the live generator)")
    add_staging_arguments(g)
    g.set_defaults(handler=_generate)


def _train_beats(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.train.beat_data import build_beat_set
    from engine.train.train_beats import BeatTrainConfig, train_beats

    cfg = BeatTrainConfig()
    over: dict[str, Any] = {"seed": args.seed}
    if args.clips is not None:
        over["clips"] = args.clips
    if args.steps is not None:
        over["steps"] = args.steps
    if any(v is not None and v <= 0 for v in (args.clips, args.steps)):
        raise CliError("--clips and --steps must be positive")
    from engine.train.common import override

    cfg = override(cfg, over, "train")
    with tqdm(total=cfg.clips, desc="render clips", unit="clip") as bar:
        data = build_beat_set(cfg.clips, args.cache, seed=cfg.seed, progress=lambda i, n: bar.update(i - bar.n))
    with tqdm(total=cfg.steps, desc="train beats", unit="step") as bar:
        def step(i: int, n: int, loss: float) -> None:
            bar.update(i - bar.n)
            bar.set_postfix(loss=f"{loss:.4f}")

        rep = train_beats(data, args.out, cfg, progress=step)
    print(json.dumps({"out": str(args.out), "history": rep["history"][-1:], "train_seconds": rep["train_seconds"]}))
    return 0


def _train_couple(args: argparse.Namespace) -> int:
    from engine.train.dataset import default_cache_dir
    from engine.train.train_couple import CoupleTrainConfig, train_couple_folder

    cfg = CoupleTrainConfig(threads=args.threads)
    if args.steps is not None:
        if args.steps <= 0:
            raise CliError("--steps must be positive")
        cfg = CoupleTrainConfig(steps=args.steps, threads=args.threads)
    model = args.model or _default_model()
    try:
        rep = train_couple_folder(model, args.out, args.data, cfg, args.preset, args.cache or default_cache_dir(),
                                  args.max_takes)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    last = rep["val_history"][-1] if rep["val_history"] else {}
    print(json.dumps({"out": str(args.out), "follower_val": last, "train_seconds": rep["train_seconds"],
                      "data_seconds": rep["data_seconds"]}))
    return 0


def _default_model() -> Path:
    from engine.models.dance_model import DEFAULT_MODEL_DIR

    return DEFAULT_MODEL_DIR


def _need_sub(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def load_data(data: Path | None, split: str, cache: Path | None) -> list:
    """Sequences of a split from a packed folder (train.npz/val.npz) or a CMU BVH folder."""
    from engine.train.dataset import build_sequences, load_packed

    if data is not None and (data / f"{split}.npz").is_file():
        return load_packed(data / f"{split}.npz")
    if data is not None and not data.is_dir():
        raise CliError(f"--data {data} is not a folder")
    try:
        return build_sequences(data, split, cache_dir=cache)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None


def _read_config(path: Path | None) -> dict:
    from engine.train.common import read_config_file

    try:
        return read_config_file(path)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _train(args: argparse.Namespace) -> int:
    import time

    from engine.train.dataset import save_packed

    conf = _read_config(args.config)
    t0 = time.perf_counter()
    train = load_data(args.data, "train", args.cache)
    val = load_data(args.data, "val", args.cache)
    if args.pack is not None:
        args.pack.mkdir(parents=True, exist_ok=True)
        save_packed(args.pack / "train.npz", train)
        save_packed(args.pack / "val.npz", val)
    prep_s = time.perf_counter() - t0
    log.info("data: %d train / %d val sequences in %.0f s", len(train), len(val), prep_s)
    try:
        if args.what == "vqvae":
            _train_vqvae(args, conf, train, val, prep_s)
        else:
            _train_gpt(args, conf, train, val, prep_s)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return 0


def _train_vqvae(args: argparse.Namespace, conf: dict, train: list, val: list, prep_s: float) -> None:
    from engine.models.vqvae import VQVAEConfig
    from engine.train.common import override
    from engine.train.train_vqvae import VQTrainConfig, grid_beat_sets, sequence_beats, train_vqvae

    tcfg = override(VQTrainConfig(), conf.get("train", {}), "train")
    if args.steps is not None:
        tcfg = override(tcfg, {"steps": args.steps}, "train")
    mcfg = override(VQVAEConfig(), conf.get("model", {}), "model")
    beats = mcfg.beat_dim > 0  # a beat-conditioned decoder reads the tracker's predicted phase per frame
    rep = train_vqvae(
        [(s.name, s.upper, s.lower) for s in train], [(s.name, s.upper, s.lower) for s in val],
        args.out, tcfg, mcfg, resume=not args.no_resume,
        train_beats=sequence_beats(train) if beats else None, val_beats=sequence_beats(val) if beats else None,
        grid_beats=grid_beat_sets(train) if beats and tcfg.true_phase + tcfg.shift_phase > 0 else None,
    )
    print(json.dumps({"vq_val": rep["val"], "train_seconds": rep["train_seconds"], "data_seconds": prep_s}))


def _train_gpt(args: argparse.Namespace, conf: dict, train: list, val: list, prep_s: float) -> None:
    import time

    from engine.models.gpt import GPT_PRESETS
    from engine.models.vqvae import load_vqvae
    from engine.train.common import override
    from engine.train.train_gpt import GPTTrainConfig, caption_thresholds, tokenize, train_gpt

    vq_dir = args.vqvae or args.out
    try:
        vq = load_vqvae(vq_dir)
    except FileNotFoundError as exc:
        raise CliError(f"{exc}; train the VQ-VAE first (groovecast train vqvae --out {vq_dir})") from None
    tcfg = override(GPTTrainConfig(), conf.get("train", {}), "train")
    if args.steps is not None:
        tcfg = override(tcfg, {"steps": args.steps}, "train")
    model_conf = dict(conf.get("model", {}))
    preset = model_conf.pop("preset", "default")
    if preset not in GPT_PRESETS:
        raise CliError(f"unknown GPT preset {preset!r}; known: {sorted(GPT_PRESETS)}")
    mcfg = override(GPT_PRESETS[preset], model_conf, "model")
    t1 = time.perf_counter()
    th = caption_thresholds(train, mcfg.context)
    from engine.train.dataset import default_cache_dir

    emb_cache = (args.cache or default_cache_dir()) / "caption_embeddings.npz"
    tok_train = tokenize(vq, train, texts=not args.no_text, thresholds=th, context=mcfg.context, embed_cache=emb_cache)
    tok_val = tokenize(vq, val, texts=not args.no_text, thresholds=th, context=mcfg.context, seed=1,
                       embed_cache=emb_cache)
    log.info("tokenized in %.0f s", time.perf_counter() - t1)
    if vq_dir != args.out:
        _copy_vqvae(vq_dir, args.out)
    rep = train_gpt(tok_train, tok_val, args.out, tcfg, mcfg, resume=not args.no_resume, vq=vq)
    last = rep["val_history"][-1] if rep["val_history"] else {}
    print(json.dumps({"gpt_val": last, "train_seconds": rep["train_seconds"], "data_seconds": prep_s}))


def _copy_vqvae(src: Path, dst: Path) -> None:
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for n in ("vqvae.json", "vqvae.safetensors"):
        shutil.copy2(src / n, dst / n)


def _load_model(path: Path | None) -> Any:
    from engine.train.generate import load_dance_model

    try:
        return load_dance_model(path)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _eval(args: argparse.Namespace) -> int:
    from engine.train.evaluate import evaluate_model, write_report

    if args.controls:
        return _eval_controls(args)
    if args.couple:
        from engine.models.dance_model import DEFAULT_MODEL_DIR
        from engine.models.follower import has_follower

        if not has_follower(args.model or DEFAULT_MODEL_DIR):
            raise CliError(f"--couple: {args.model or DEFAULT_MODEL_DIR} has no follower (follower.safetensors + "
                           "follower.json); train one with `groovecast train couple`")
    model = _load_model(args.model)
    sampling = model.card.setdefault("sampling", {})
    if args.temperature is not None:
        sampling["temperature"] = args.temperature
    if args.top_k is not None:
        sampling["top_k"] = args.top_k
    if args.no_foot_lock:
        sampling["foot_lock"] = False
    _apply_guidance(model, args.beat_guidance)
    _apply_max_repeat(model, args.max_repeat)
    _apply_genre_guidance(model, args.genre_guidance)
    _apply_text_guidance(model, args.text_guidance)
    val = load_data(args.data, "val", None)
    ref_names, ref_pairs = _reference(args.data)
    res = evaluate_model(model, val, reference=ref_pairs, seed=args.seed, samples=args.samples,
                         reference_names=ref_names, untrained_guided=not args.untrained_plain_only,
                         compare=not args.model_only)
    if args.couple:
        res["couple"] = _eval_couple(args)
    if args.report is not None:
        extra = ""
        if "couple" in res:
            from engine.train.couple_eval import couple_table

            extra = "\n".join(["## salsa couples (`--couple`)", "", *couple_table(res["couple"])])
        write_report(res, args.report, extra)
    if args.json:
        print(json.dumps({**res["summary"], "by_style": res["by_style"],
                          **({"couple": res["couple"]} if "couple" in res else {})}, indent=2))
    else:
        for style, rows in [("all", res["summary"]), *res["by_style"].items()]:
            for row, vals in rows.items():
                print(style, row, " ".join(f"{k}={v:.4g}" for k, v in vals.items() if isinstance(v, float)))
    return 0


def _eval_couple(args: argparse.Namespace) -> dict[str, Any]:
    """The couple measures of ``eval --couple`` (``engine/train/couple_eval.py``): the summary rows and settings."""
    from engine.models.dance_model import DEFAULT_MODEL_DIR
    from engine.train.couple_eval import evaluate_couples

    model_dir = args.model or DEFAULT_MODEL_DIR
    # the couples need both dancers of the raw takes: a packed data folder (train.npz) holds each dancer alone
    data = None if args.data is None or (args.data / "train.npz").is_file() else args.data
    res = evaluate_couples(model_dir, data, seeds=args.samples, progress=False)
    return {k: v for k, v in res.items() if k != "samples"}


def _eval_controls(args: argparse.Namespace) -> int:
    from engine.runtime.assemble import AssemblyError
    from engine.train.control_eval import evaluate_controls, write_controls_report

    if args.pairs < 2 or not 10.0 <= args.seconds <= 120.0:
        raise CliError("--pairs must be >= 2 and --seconds in [10, 120] (keyframes are pinned at 6 s, the genre "
                       "switch at 8 s)")
    from engine.train.control_eval import PARTS

    check_genre_guidance(args.genre_guidance)
    check_text_guidance(args.text_guidance)
    _check_text_steer(args.text_steer)
    if args.seed_offset < 0:
        raise CliError(f"--seed-offset must be >= 0, got {args.seed_offset}")
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    if not parts or set(parts) - set(PARTS):
        raise CliError(f"--parts must name some of {', '.join(PARTS)}, got {args.parts!r}")
    val = load_data(args.data, "val", None)
    names, ref = _reference(args.data)
    try:
        res = evaluate_controls(args.model, val, [(n, u, lo) for n, (u, lo) in zip(names, ref, strict=True)],
                                pairs=args.pairs, seconds=args.seconds, beat_guidance=args.beat_guidance,
                                progress=lambda s: log.info("controls: %s", s), parts=parts,
                                genre_guidance=args.genre_guidance, text_guidance=args.text_guidance,
                                text_steer=args.text_steer, seed_offset=args.seed_offset)
    except (AssemblyError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.report is not None:
        write_controls_report(res, args.report, f"# Controls: {args.model or 'the shipped model'}\n")
    print(json.dumps(res, indent=2) if args.json else json.dumps({"out": str(args.report), "pairs": args.pairs}))
    return 0


def _reference(data: Path | None) -> tuple[list[str], list]:
    """Real training motion as captured (no tempo warps, no mirror images): the FID and style reference.

    Returns the sequence names and their (upper, lower) vector pairs.
    """
    from engine.train.dataset import build_motion, load_packed

    if data is not None and (data / "train.npz").is_file():
        seqs = [s for s in load_packed(data / "train.npz") if "_x1.00_" in s.name and not s.name.endswith("_m")]
        return [s.name for s in seqs], [(s.upper, s.lower) for s in seqs]
    try:
        rows = build_motion(data, "train", (1.0,), mirror=False)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    return [n for n, _, _ in rows], [(u, lo) for _, u, lo in rows]


def _check_text_steer(w: float | None) -> None:
    if w is not None and not (math.isfinite(w) and w >= 0):
        raise CliError(f"--text-steer must be a finite number >= 0, got {w}")


def _apply_text_steer(model: Any, w: float | None) -> None:
    """``--text-steer W`` over the model card's beat guidance (None: keep the card's)."""
    if w is None:
        return
    _check_text_steer(w)
    cfg = model.beat_guidance.with_text_weight(w)
    model.card.setdefault("sampling", {})["beat_guidance"] = cfg.to_card() if cfg.enabled else None


def _apply_guidance(model: Any, candidates: int | None) -> None:
    """``--beat-guidance N`` over the model card's beat guidance (None: keep the card's)."""
    if candidates is None:
        return
    cfg = model.beat_guidance.with_candidates(candidates)
    model.card.setdefault("sampling", {})["beat_guidance"] = cfg.to_card() if cfg.enabled else None


def _apply_max_repeat(model: Any, n: int | None) -> None:
    """``--max-repeat N`` over the model card's repetition guard (None: keep the card's; 0: off)."""
    if n is None:
        return
    check_max_repeat(n)
    model.card.setdefault("sampling", {})["max_repeat"] = n or None


def _apply_genre_guidance(model: Any, s: float | None) -> None:
    """``--genre-guidance S`` over the model card's genre guidance (None: keep the card's; 1: off)."""
    if s is None:
        return
    check_genre_guidance(s)
    model.card.setdefault("sampling", {})["genre_guidance"] = None if s == 1.0 else s


def _apply_text_guidance(model: Any, s: float | None) -> None:
    """``--text-guidance S`` over the model card's text guidance (None: keep the card's)."""
    if s is None:
        return
    check_text_guidance(s)
    model.card.setdefault("sampling", {})["text_guidance"] = s


def _generate(args: argparse.Namespace) -> int:
    from engine.models.pose_repr import motion_positions
    from engine.train.generate import generate_dance, write_motion_bvh
    from engine.train.metrics import longest_freeze_s

    if not args.audio.is_file():
        raise CliError(f"audio file {args.audio} does not exist")
    audio, sr = _read_audio(args.audio)
    check_genre_guidance(args.genre_guidance)
    if args.couple:
        return _generate_couple(args, audio, sr)
    if args.model == "retrieval":
        return _generate_live_kind(args, audio, sr)
    if args.energy is not None or args.keyframe:
        return _generate_controlled(args, audio, sr)
    model = _load_model(Path(args.model) if args.model else None)
    _apply_guidance(model, args.beat_guidance)
    _apply_text_steer(model, args.text_steer)
    _apply_max_repeat(model, args.max_repeat)
    _apply_genre_guidance(model, args.genre_guidance)
    _apply_text_guidance(model, args.text_guidance)
    try:
        g = generate_dance(model, audio, sr, genre=args.genre, text=args.text, seconds=args.seconds,
                           temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                           staging=staging_config(args))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_motion_bvh(g.motion, args.out)
    pos = motion_positions(g.motion)
    print(json.dumps({"out": str(args.out), "frames": g.motion.n_frames, "seconds": g.motion.n_frames / g.motion.fps,
                      "beats": len(g.beats_s), "longest_freeze_s": longest_freeze_s(pos, g.motion.fps)}))
    return 0


def _generate_controlled(args: argparse.Namespace, audio: Any, sr: int) -> int:
    """``generate --energy/--keyframe``: the live generator at batch 1 with those controls set."""
    from engine.models.pose_repr import motion_positions
    from engine.runtime.assemble import AssemblyError
    from engine.skeleton.bvh import write_bvh
    from engine.train.generate import KeyframeSpec, render_controlled
    from engine.train.metrics import longest_freeze_s

    try:
        kfs = tuple(KeyframeSpec.parse(k) for k in args.keyframe)
        m, beats = render_controlled(Path(args.model) if args.model else None, audio, sr, genre=args.genre,
                                     text=args.text, energy=args.energy, keyframes=kfs, seconds=args.seconds,
                                     seed=args.seed, temperature=args.temperature, beat_guidance=args.beat_guidance,
                                     max_repeat=args.max_repeat, genre_guidance=args.genre_guidance,
                                     text_guidance=args.text_guidance, text_steer=args.text_steer)
    except (AssemblyError, ValueError) as exc:
        raise CliError(str(exc)) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_bvh(args.out, m.skeleton, m.root_pos, 1.0 / m.fps, local_rot_mats=m.rot, rotation_orders="ZXY")
    print(json.dumps({"out": str(args.out), "frames": m.n_frames, "seconds": m.n_frames / m.fps,
                      "beats": len(beats), "longest_freeze_s": longest_freeze_s(motion_positions(m), m.fps),
                      "energy": args.energy, "keyframes": [str(k.path) + f"@{k.seconds}:{k.joints}" for k in kfs]}))
    return 0


def _generate_live_kind(args: argparse.Namespace, audio: Any, sr: int) -> int:
    """Offline render of a model kind through the live model at batch 1 (engine.runtime.offline)."""
    from engine.models.pose_repr import motion_positions
    from engine.runtime.assemble import AssemblyError, ModelSpec, build_model
    from engine.runtime.offline import render
    from engine.skeleton.bvh import write_bvh
    from engine.train.metrics import longest_freeze_s

    try:
        model = build_model(ModelSpec(model=args.model, genre=args.genre, seed=args.seed, data=args.data,
                                      temperature=args.temperature, staging=staging_config(args)))
        r = render(model, audio, sr, seconds=args.seconds)
    except (AssemblyError, ValueError) as exc:
        raise CliError(str(exc)) from None
    m = r.motion
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_bvh(args.out, m.skeleton, m.root_pos, 1.0 / m.fps, local_rot_mats=m.rot, rotation_orders="ZXY")
    pos = motion_positions(m)
    print(json.dumps({"out": str(args.out), "frames": m.n_frames, "seconds": m.n_frames / m.fps,
                      "beats": len(r.beats_s), "longest_freeze_s": longest_freeze_s(pos, m.fps)}))
    return 0


def couple_paths(out: Path) -> tuple[Path, Path]:
    """The two files ``generate --couple --out OUT`` writes: OUT_lead.bvh and OUT_follow.bvh."""
    ext = out.suffix or ".bvh"
    return out.with_name(f"{out.stem}_lead{ext}"), out.with_name(f"{out.stem}_follow{ext}")


def _generate_couple(args: argparse.Namespace, audio: Any, sr: int) -> int:
    """A salsa couple through the live couple kind at one couple: two BVH files in one world frame."""
    import numpy as np

    from engine.models.pose_repr import motion_positions
    from engine.runtime.assemble import AssemblyError, ModelSpec, build_model
    from engine.runtime.offline import render
    from engine.skeleton.bvh import write_bvh
    from engine.train.metrics import longest_freeze_s

    if args.model == "retrieval":
        raise CliError("--couple needs a VQ-VAE + GPT model folder with a follower, not retrieval")
    try:
        model = build_model(ModelSpec(model=args.model, genre=args.genre, seed=args.seed, temperature=args.temperature,
                                      top_k=args.top_k, beat_guidance=args.beat_guidance,
                                      max_repeat=args.max_repeat, genre_guidance=args.genre_guidance, backend="torch",
                                      decode="torch", performers=2, couple=True, staging=staging_config(args)))
        r = render(model, audio, sr, seconds=args.seconds)
    except (AssemblyError, ValueError) as exc:
        raise CliError(str(exc)) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for path, pid in zip(couple_paths(args.out), model.performer_ids(), strict=True):
        m = r.motions[pid]
        write_bvh(path, m.skeleton, m.root_pos, 1.0 / m.fps, local_rot_mats=m.rot, rotation_orders="ZXY")
        out[path.stem.rsplit("_", 1)[-1]] = {"out": str(path), "longest_freeze_s": longest_freeze_s(motion_positions(m),
                                                                                                     m.fps)}
    lead, follow = (r.motions[p] for p in model.performer_ids())
    dist = np.linalg.norm(lead.root_pos[:, [0, 2]] - follow.root_pos[:, [0, 2]], axis=1)
    print(json.dumps({**out, "frames": r.motion.n_frames, "seconds": r.motion.n_frames / r.motion.fps,
                      "beats": len(r.beats_s), "root_distance_m": {"min": float(dist.min()),
                                                                   "median": float(np.median(dist)),
                                                                   "max": float(dist.max())}}))
    return 0


def _read_audio(path: Path) -> tuple[Any, int]:
    """Mono float32 samples and the sample rate of a WAV file (the audio module's reader)."""
    from engine.audio.source import AudioSourceError, read_wav

    try:
        return read_wav(path)
    except AudioSourceError as exc:
        raise CliError(str(exc)) from None

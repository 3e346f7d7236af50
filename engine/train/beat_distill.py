"""Beat-alignment distillation: the GPT learns to choose on its own what beat-guided sampling chooses for it.

Beat-guided sampling (engine.models.beat_guidance) lands the dance's speed minima on the predicted beats by
picking, among candidate tokens the GPT itself proposes, the ones whose decoded motion dips at the beat. A GPT
trained only on the captured takes does not learn that rule (too few takes; see docs/models.md). Here the
trained GPT dances to the *training* music with the model card's sampling (beat guidance on), and those
dances -- tokens plus the conditioning they were generated under, exactly what a training sequence holds --
make up a share of the batches of a short continuation of the GPT's training. The GPT's plain sampling then imitates
its guided choices (expert iteration with the guidance as the expert); the captured takes keep it close to
real motion.

``python -m engine.train.beat_distill RUN_DIR --data PACKED --out DIR [--steps N] [--warps ...]``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.models.conditioning import GENRES, sequence_conditions
from engine.models.vqvae import DOWN
from engine.train.dataset import Sequence
from engine.train.generate import DanceModel, sample_dance
from engine.train.train_gpt import TokenSequence

#: Suffix of the names of guided-dance training sequences (the style prefix keeps balanced_weights working).
GUIDED_SUFFIX = "_guided"


def guided_sequences(model: DanceModel, seqs: list[Sequence], seed: int = 0,
                     progress: Callable[[str], None] | None = None) -> list[TokenSequence]:
    """One dance per sequence to its music, sampled with the model card's sampling, as GPT training sequences.

    Each dance is generated under its sequence's genre row (as ``groovecast eval`` does) with no text; the
    sequence keeps the tracker conditioning it was generated under.
    """
    out = []
    width = model.gpt.cfg.text_dim
    for i, s in enumerate(seqs):
        n = s.n_frames // DOWN
        m = s.music
        cond = sequence_conditions(m.features, m.period_s, m.next_beat_s, n)
        genre = s.genre if 0 < s.genre < model.gpt.cfg.n_genres else GENRES.index("salsa")
        d = sample_dance(model, cond, genre, None, seed=seed + i)
        out.append(TokenSequence(name=s.name + GUIDED_SUFFIX, up=d.tokens_up.astype(np.int64),
                                 down=d.tokens_down.astype(np.int64), cond=cond, genre=genre,
                                 text=np.zeros(width, np.float32), caption=""))
        if progress is not None:
            progress(f"guided dance {i + 1}/{len(seqs)}: {s.name} ({n} tokens)")
    return out


def continue_run(run_dir: Path, out_dir: Path) -> None:
    """Start ``out_dir`` as a continuation of the GPT run in ``run_dir`` (weights, optimizer state, report,
    VQ-VAE; not the early-stopping copy, so the continuation keeps its own final weights)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for n in ("gpt.json", "gpt.safetensors", "gpt_train_state.pt", "gpt_train_report.json", "vqvae.json",
              "vqvae.safetensors"):
        if not (run_dir / n).is_file():
            raise FileNotFoundError(f"{run_dir} lacks {n}: not a finished GPT run")
        shutil.copy2(run_dir / n, out_dir / n)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import logging
    from dataclasses import replace

    from engine.models.dance_model import MODEL_CARD
    from engine.train.common import override, read_config_file
    from engine.train.dataset import default_cache_dir, load_packed
    from engine.train.generate import load_dance_model
    from engine.train.train_gpt import GPTTrainConfig, caption_thresholds, tokenize, train_gpt

    ap = argparse.ArgumentParser(prog="python -m engine.train.beat_distill", description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a finished GPT run (groovecast train gpt --out RUN_DIR)")
    ap.add_argument("--data", type=Path, required=True, help="folder with the packed train.npz / val.npz")
    ap.add_argument("--out", type=Path, required=True, help="folder of the continued run")
    ap.add_argument("--config", type=Path, required=True, help="the run's training config (JSON)")
    ap.add_argument("--card", type=Path, required=True, help="model card whose sampling makes the guided dances")
    ap.add_argument("--steps", type=int, default=300, help="training steps to continue for (default 300)")
    ap.add_argument("--warps", default="1.00", help="tempo warps of the training takes to dance to (default 1.00)")
    ap.add_argument("--share", type=float, default=0.5, help="share of batches drawn from the guided dances")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not 0.0 <= args.share <= 1.0 or args.steps < 1:
        ap.error(f"--share must be in [0, 1] and --steps >= 1, got {args.share} and {args.steps}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("groovecast.train.beat_distill")
    t0 = time.perf_counter()
    try:
        train = load_packed(args.data / "train.npz")
        val = load_packed(args.data / "val.npz")
    except FileNotFoundError as exc:
        ap.error(f"{exc} (pack the data with groovecast train vqvae --pack DIR)")
    try:
        continue_run(args.run_dir, args.out)
    except FileNotFoundError as exc:
        ap.error(str(exc))
    shutil.copy2(args.card, args.out / MODEL_CARD)
    model = load_dance_model(args.out)
    warps = tuple(f"_x{w}_" for w in args.warps.split(","))
    chosen = [s for s in train if any(w in s.name for w in warps) and not s.name.endswith("_m")]
    guided = guided_sequences(model, chosen, seed=args.seed, progress=log.info)
    gen_s = time.perf_counter() - t0
    conf = read_config_file(args.config)
    tcfg = override(GPTTrainConfig(), conf.get("train", {}), "train")
    done = json.loads((args.run_dir / "gpt_train_report.json").read_text())["step"]
    tcfg = replace(tcfg, steps=int(done) + args.steps, keep_best=False)
    th = caption_thresholds(train, model.gpt.cfg.context)
    cache = default_cache_dir() / "caption_embeddings.npz"
    texts = model.gpt.cfg.text_dim > 0
    tok_train = tokenize(model.vq, train, texts=texts, thresholds=th, context=model.gpt.cfg.context, embed_cache=cache)
    tok_val = tokenize(model.vq, val, texts=texts, thresholds=th, context=model.gpt.cfg.context, seed=1,
                       embed_cache=cache)
    rep = train_gpt(tok_train, tok_val, args.out, tcfg, model.gpt.cfg, resume=True, vq=model.vq, extra=guided,
                    extra_share=args.share)
    rep["beat_distill"] = {"from": str(args.run_dir), "guided_sequences": len(guided), "warps": args.warps,
                           "share": args.share,
                           "guided_tokens": int(sum(len(g.up) for g in guided)), "generate_seconds": gen_s,
                           "steps": args.steps, "seconds": time.perf_counter() - t0}
    (args.out / "gpt_train_report.json").write_text(json.dumps(rep, indent=2))
    print(json.dumps(rep["beat_distill"]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Beat-alignment distillation: the GPT learns to choose on its own what beat-guided sampling chooses for it.

Beat-guided sampling (engine.models.beat_guidance) lands the dance's speed minima on the predicted beats by
picking, among candidate tokens the GPT itself proposes, the ones whose decoded motion dips at the beat. A GPT
trained only on the captured takes does not learn that rule (too few takes; see docs/models.md). Here the
trained GPT dances to the *training* music with the model card's sampling (beat guidance on), and those
dances -- tokens plus the conditioning they were generated under, exactly what a training sequence holds --
make up a share of the batches of a short continuation of the GPT's training. The GPT's plain sampling then imitates
its guided choices (expert iteration with the guidance as the expert); the captured takes keep it close to
real motion.

Options for a *low* share of natural dances (session 6): ``--candidates K`` dances per sequence (seeds apart),
of which the most natural is kept (:class:`Naturalness`: its mean kinetic and geometric features against those of
the captured take it dances to, and its joint speed against the take's); ``--keep F`` keeps that share of the
sequences, the most natural first; ``--reencode`` replaces a dance's tokens by the VQ-VAE's encoding of its
decoded motion (the GPT learns from the motion, not only from the guidance's token choices); ``--dances FILE``
keeps the generated dances (.npz) so several continuations reuse one generation.

``python -m engine.train.beat_distill RUN_DIR --data PACKED --out DIR [--steps N] [--warps ...]``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from engine.frames import MODEL_FPS
from engine.models.conditioning import GENRES, sequence_conditions
from engine.models.vqvae import DOWN, VQVAE
from engine.train import metrics as M
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


@dataclass
class Scored:
    """A guided dance as a training sequence, with how far it is from the captured take it dances to."""

    seq: TokenSequence
    #: RMS over the standardised kinetic + geometric features of the mean difference between the dance's 4 s
    #: segments and the take's (0: the same on average; 1: one real standard deviation per feature).
    distance: float
    #: The dance's mean root-relative joint speed over the take's.
    speed_ratio: float


class Naturalness:
    """Scores a dance against the captured take it dances to (:meth:`__call__`), features standardised by the
    segments of ``takes`` (the real training sequences the dances are made for)."""

    def __init__(self, takes: list[Sequence]) -> None:
        from engine.train.evaluate import points

        self._points = points
        feats = [self._features(points(s.upper, s.lower)) for s in takes]
        allf = np.concatenate([f for f, _ in feats])
        self.mu = allf.mean(0)
        self.sd = allf.std(0) + 1e-8
        self._takes = {s.name: (f.mean(0), sp) for s, (f, sp) in zip(takes, feats, strict=True)}

    @staticmethod
    def _features(pos: np.ndarray) -> tuple[np.ndarray, float]:
        kin, geo = M.segment_features([pos], MODEL_FPS)
        speed = float(np.linalg.norm(np.diff(M.root_relative(pos), axis=0), axis=-1).mean() * MODEL_FPS)
        return np.concatenate([kin, geo], axis=1), speed

    def __call__(self, take: str, upper: np.ndarray, lower: np.ndarray) -> tuple[float, float]:
        """(distance, speed ratio) of a dance (model vectors) to the take named ``take``."""
        f, speed = self._features(self._points(upper, lower))
        ref, ref_speed = self._takes[take]
        d = (f.mean(0) - ref) / self.sd
        return float(np.sqrt(np.mean(d**2))), speed / max(ref_speed, 1e-9)


@torch.no_grad()
def reencode(vq: VQVAE, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The VQ-VAE's tokens of a dance's decoded motion (model vectors [4N, Du], [4N, Dl]): [N] x 2 int64."""
    t = (len(upper) // DOWN) * DOWN
    iu, idn = vq.encode(torch.from_numpy(upper[:t]).float()[None], torch.from_numpy(lower[:t]).float()[None])
    return iu[0].numpy().astype(np.int64), idn[0].numpy().astype(np.int64)


def scored_sequences(model: DanceModel, seqs: list[Sequence], candidates: int = 2, seed: int = 0,
                     natural: Naturalness | None = None, reencode_tokens: bool = False,
                     progress: Callable[[str], None] | None = None) -> list[Scored]:
    """``candidates`` card-sampled dances per sequence (seeds ``seed + candidates * i + k``); the most natural one
    of each sequence (smallest distance among those within 0.8-1.25x the take's joint speed, else the smallest
    speed error), scored by ``natural`` (default: against ``seqs`` themselves)."""
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")
    natural = natural or Naturalness(seqs)
    width = model.gpt.cfg.text_dim
    out = []
    for i, s in enumerate(seqs):
        n = s.n_frames // DOWN
        m = s.music
        cond = sequence_conditions(m.features, m.period_s, m.next_beat_s, n)
        genre = s.genre if 0 < s.genre < model.gpt.cfg.n_genres else GENRES.index("salsa")
        best: tuple[tuple[int, float], Scored] | None = None
        for k in range(candidates):
            d = sample_dance(model, cond, genre, None, seed=seed + candidates * i + k)
            dist, ratio = natural(s.name, d.upper, d.lower)
            up, down = d.tokens_up.astype(np.int64), d.tokens_down.astype(np.int64)
            if reencode_tokens:
                up, down = reencode(model.vq, d.upper, d.lower)
            ts = TokenSequence(name=s.name + GUIDED_SUFFIX, up=up, down=down, cond=cond[: len(up)], genre=genre,
                               text=np.zeros(width, np.float32), caption="")
            ok = 0.8 <= ratio <= 1.25
            key = (0, dist) if ok else (1, abs(np.log(max(ratio, 1e-9))))
            if best is None or key < best[0]:
                best = (key, Scored(ts, dist, ratio))
        assert best is not None
        out.append(best[1])
        if progress is not None:
            progress(f"guided dance {i + 1}/{len(seqs)}: {s.name} ({n} tokens) distance {best[1].distance:.3f} "
                     f"speed {best[1].speed_ratio:.2f}")
    return out


def select_natural(dances: list[Scored], keep: float) -> list[Scored]:
    """The ``keep`` share of ``dances`` (at least one), those within 0.8-1.25x the take's speed first, then the
    smallest distance."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    order = sorted(dances, key=lambda d: (not 0.8 <= d.speed_ratio <= 1.25, d.distance))
    return order[: max(1, round(keep * len(dances)))]


def save_dances(path: Path, dances: list[Scored]) -> None:
    """Guided dances to an .npz (tokens, conditioning, genre, scores; no text: they are made without)."""
    arrays: dict[str, np.ndarray] = {"names": np.asarray([d.seq.name for d in dances]),
                                     "genre": np.asarray([d.seq.genre for d in dances], np.int64),
                                     "distance": np.asarray([d.distance for d in dances]),
                                     "speed_ratio": np.asarray([d.speed_ratio for d in dances]),
                                     "text_dim": np.asarray(len(dances[0].seq.text) if dances else 0)}
    for i, d in enumerate(dances):
        arrays[f"up_{i}"], arrays[f"down_{i}"], arrays[f"cond_{i}"] = d.seq.up, d.seq.down, d.seq.cond
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def load_dances(path: Path) -> list[Scored]:
    """What :func:`save_dances` wrote."""
    with np.load(path, allow_pickle=False) as z:
        width = int(z["text_dim"])
        return [Scored(TokenSequence(name=str(n), up=z[f"up_{i}"], down=z[f"down_{i}"], cond=z[f"cond_{i}"],
                                     genre=int(g), text=np.zeros(width, np.float32), caption=""), float(dist), float(r))
                for i, (n, g, dist, r) in enumerate(zip(z["names"], z["genre"], z["distance"], z["speed_ratio"],
                                                        strict=True))]


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
    ap.add_argument("--candidates", type=int, default=0,
                    help="dances per sequence, the most natural kept (0: one dance each, unscored, as first built)")
    ap.add_argument("--keep", type=float, default=1.0, help="with --candidates: share of sequences kept, most natural "
                    "first (default 1)")
    ap.add_argument("--reencode", action="store_true",
                    help="with --candidates: train on the VQ-VAE's tokens of the dances' decoded motion")
    ap.add_argument("--dances", type=Path, default=None,
                    help="with --candidates: .npz of the scored dances, read when it exists, else written")
    ap.add_argument("--no-text", action="store_true", help="continue without captions (text input zero)")
    ap.add_argument("--lr", type=float, default=None, help="constant learning rate of the continuation "
                    "(default: the run's cosine schedule extended over the new steps)")
    args = ap.parse_args(argv)
    if not 0.0 <= args.share <= 1.0 or args.steps < 1:
        ap.error(f"--share must be in [0, 1] and --steps >= 1, got {args.share} and {args.steps}")
    if args.candidates < 0 or not 0.0 < args.keep <= 1.0 or (args.lr is not None and not 0.0 < args.lr < 1.0):
        ap.error(f"--candidates must be >= 0, --keep in (0, 1] and --lr in (0, 1), got {args.candidates}, "
                 f"{args.keep} and {args.lr}")
    if args.candidates == 0 and (args.keep < 1.0 or args.reencode or args.dances is not None):
        ap.error("--keep, --reencode and --dances need --candidates K")
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
    stats: dict = {}
    if args.candidates == 0:
        guided = guided_sequences(model, chosen, seed=args.seed, progress=log.info)
    else:
        if args.dances is not None and args.dances.is_file():
            scored = load_dances(args.dances)
            log.info("read %d scored dances from %s", len(scored), args.dances)
        else:
            scored = scored_sequences(model, chosen, args.candidates, seed=args.seed,
                                      reencode_tokens=args.reencode, progress=log.info)
            if args.dances is not None:
                save_dances(args.dances, scored)
        kept = select_natural(scored, args.keep)
        guided = [k.seq for k in kept]
        stats = {"candidates": args.candidates, "keep": args.keep, "reencode": args.reencode,
                 "kept": len(kept), "of": len(scored),
                 "distance_kept_max": max(k.distance for k in kept),
                 "distance_median_all": float(np.median([d.distance for d in scored])),
                 "speed_ratio_kept": [min(k.speed_ratio for k in kept), max(k.speed_ratio for k in kept)]}
        log.info("kept %s", json.dumps(stats))
    gen_s = time.perf_counter() - t0
    conf = read_config_file(args.config)
    tcfg = override(GPTTrainConfig(), conf.get("train", {}), "train")
    done = json.loads((args.run_dir / "gpt_train_report.json").read_text())["step"]
    tcfg = replace(tcfg, steps=int(done) + args.steps, keep_best=False)
    if args.lr is not None:
        tcfg = replace(tcfg, lr=args.lr, lr_final=args.lr, warmup=0)
    th = caption_thresholds(train, model.gpt.cfg.context)
    cache = default_cache_dir() / "caption_embeddings.npz"
    texts = model.gpt.cfg.text_dim > 0 and not args.no_text
    tok_train = tokenize(model.vq, train, texts=texts, thresholds=th, context=model.gpt.cfg.context, embed_cache=cache)
    tok_val = tokenize(model.vq, val, texts=texts, thresholds=th, context=model.gpt.cfg.context, seed=1,
                       embed_cache=cache)
    rep = train_gpt(tok_train, tok_val, args.out, tcfg, model.gpt.cfg, resume=True, vq=model.vq, extra=guided,
                    extra_share=args.share)
    rep["beat_distill"] = {"from": str(args.run_dir), "guided_sequences": len(guided), "warps": args.warps,
                           "share": args.share,
                           "guided_tokens": int(sum(len(g.up) for g in guided)), "generate_seconds": gen_s,
                           "steps": args.steps, "seconds": time.perf_counter() - t0, "no_text": args.no_text,
                           "lr": args.lr, **stats}
    (args.out / "gpt_train_report.json").write_text(json.dumps(rep, indent=2))
    print(json.dumps(rep["beat_distill"]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

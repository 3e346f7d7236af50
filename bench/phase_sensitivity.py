"""How much does the GPT's next-token distribution depend on the beat phase it is given? (issue 10 item 6)

On the held-out takes, teacher-forced (the real tokens as history, the card's genre row, no text), the GPT's
upper and lower distributions with the conditioning as the tracker gives it are compared (KL divergence, nats
per token, mean of both streams) with the same windows when

* ``phase_half``: every phase input is moved half a beat (the predicted-phase entries of the token and the
  tracker's beat-phase channels of the 4 frames before it rotated by pi, the beat flags of those frames cleared):
  the beat falls where the off-beat was;
* ``genre_none``: the genre row is 0 (what the genre guidance amplifies, for scale);
* ``music_zero``: every conditioning entry is zero (no music at all).

If the GPT had learned "slow down on the beat", moving the beat by half a period would move its distribution
about as much as the music does. Also the token accuracy on the real tokens under each input, and the
rendered beat grid (``grid``) in place of the tracker's phase, and the cross-entropy of the real tokens (``nll_``,
nats per token and stream): if the phase carried the dance's timing, the real tokens would be less likely with
the beat moved.

``python3 -m bench.phase_sensitivity --model DIR --data /work/runs/data3 [--windows 64]`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.analysis.features import BEAT, PHASE_COS, PHASE_SIN
from engine.models.conditioning import FRAMES_PER_TOKEN, GENRES, MUSIC_DIM, rhythm_mask, with_grid_phase

__all__ = ["BEAT", "PHASE_COS", "PHASE_SIN", "half_beat_later", "sensitivity"]


def half_beat_later(cond: np.ndarray) -> np.ndarray:
    """Conditioning rows [N, COND_DIM] with every beat-phase input rotated by half a period, beat flags cleared."""
    out = np.array(cond, dtype=np.float32, copy=True)
    for f in range(FRAMES_PER_TOKEN):
        out[:, f * MUSIC_DIM + PHASE_SIN] *= -1.0
        out[:, f * MUSIC_DIM + PHASE_COS] *= -1.0
        out[:, f * MUSIC_DIM + BEAT] = 0.0
    out[:, FRAMES_PER_TOKEN * MUSIC_DIM :] *= -1.0
    return out


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    lp = F.log_softmax(p_logits, -1)
    lq = F.log_softmax(q_logits, -1)
    return float((lp.exp() * (lp - lq)).sum(-1).mean())


@torch.no_grad()
def sensitivity(model_dir: Path, data: Path, windows: int = 64, seed: int = 0) -> dict:
    from engine.models.gpt import load_gpt
    from engine.models.vqvae import load_vqvae
    from engine.train.dataset import load_packed
    from engine.train.evaluate import style_of_sequence
    from engine.train.train_gpt import tokenize

    gpt = load_gpt(model_dir).eval()
    vq = load_vqvae(model_dir).eval()
    val = load_packed(data / "val.npz")
    toks = tokenize(vq, val, texts=False, context=gpt.cfg.context)
    rng = np.random.default_rng(seed)
    ctx = gpt.cfg.context
    mask = rhythm_mask()[None, :]
    res: dict[str, list[float]] = {}
    for _ in range(windows):
        i = int(rng.integers(len(toks)))
        t, s = toks[i], val[i]
        n = len(t.up)
        w = min(ctx, n)
        a = int(rng.integers(0, n - w + 1))
        bos = gpt.cfg.vocab_size
        up_in = torch.from_numpy(np.concatenate([[bos], t.up])[a : a + w])[None].long()
        down_in = torch.from_numpy(np.concatenate([[bos], t.down])[a : a + w])[None].long()
        genre = GENRES.index(style_of_sequence(s))
        conds = {"tracker": t.cond[a : a + w], "phase_half": half_beat_later(t.cond[a : a + w]),
                 "music_zero": np.zeros_like(t.cond[a : a + w]),
                 "grid": with_grid_phase(t.cond, s.music.beats_s)[a : a + w]}
        logits = {}
        for name, c in conds.items():
            ct = torch.from_numpy(c * mask)[None].float()
            logits[name] = gpt(up_in, down_in, ct, torch.tensor([genre]), None, pos0=torch.tensor([a]))
        logits["genre_none"] = gpt(up_in, down_in, torch.from_numpy(conds["tracker"] * mask)[None].float(),
                                   torch.tensor([0]), None, pos0=torch.tensor([a]))
        ref_u, ref_d = logits["tracker"]
        for name, (lu, ld) in logits.items():
            if name != "tracker":
                res.setdefault(f"kl_{name}", []).append((_kl(ref_u, lu) + _kl(ref_d, ld)) / 2)
            hit_u = lu.argmax(-1)[0].numpy() == t.up[a : a + w]
            hit_d = ld.argmax(-1)[0].numpy() == t.down[a : a + w]
            acc = (hit_u.mean() + hit_d.mean()) / 2
            res.setdefault(f"acc_{name}", []).append(float(acc))
            ce = (F.cross_entropy(lu[0], torch.from_numpy(t.up[a : a + w]).long())
                  + F.cross_entropy(ld[0], torch.from_numpy(t.down[a : a + w]).long())) / 2
            res.setdefault(f"nll_{name}", []).append(float(ce))
    return {"model": str(model_dir), "windows": windows, **{k: float(np.mean(v)) for k, v in res.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.phase_sensitivity", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="model folder (gpt.* and vqvae.*)")
    ap.add_argument("--data", type=Path, required=True, help="folder with the packed val.npz")
    ap.add_argument("--windows", type=int, default=64, help="random validation windows (default 64)")
    args = ap.parse_args(argv)
    if args.windows < 1:
        ap.error(f"--windows must be >= 1, got {args.windows}")
    print(json.dumps(sensitivity(args.model, args.data, args.windows), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

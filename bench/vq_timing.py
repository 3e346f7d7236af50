"""Does a VQ-VAE keep the beat timing? (issue 10 item 6 diagnostic)

The held-out validation motion is passed through each given VQ-VAE (encode -> decode, as the ``vq_recon`` row of
``groovecast eval``) and scored with the Beat Align Score of ``groovecast eval`` (``metrics.beat_align_score``:
speed minima of the 60 fps up-sampled motion against the grid the music was rendered on), pooled over the clips
and per style, next to raw real motion, with the chance level of each row (``bench.beat_chance``: the same motion
against the grid moved by k/n of its period) and the reconstruction error and foot-contact accuracy that
``groovecast train vqvae`` reports (``train_vqvae.reconstruction_error_mm``). A GPT trained on a tokenizer can at
best reproduce its reconstructions, so a VQ-VAE whose reconstruction scores below the plain-sampling goal
(0.9x real) caps every GPT trained on it.

``python3 -m bench.vq_timing --data /work/runs/data3 --vqvae DIR [DIR ...] [--shifts 8] [--unquantized]
[--out DIR --name NAME]``
prints JSON (and writes NAME.json/.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from bench.beat_chance import chance_scores
from engine.models.vqvae import DOWN, VQVAE, load_vqvae
from engine.train import metrics as M

#: The plain-sampling goal of issue 10 item 6, as a share of real motion's BAS.
GOAL_SHARE = 0.9


@torch.no_grad()
def reconstruct(vq: VQVAE, upper: np.ndarray, lower: np.ndarray, quantize: bool = True,
                beat: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Motion vectors through the VQ-VAE (frames cut to whole tokens; contacts thresholded as generation does).

    ``quantize=False`` decodes the encoder's continuous outputs instead of their nearest codes: what the encoder
    and the causal decoder keep at 4 frames per token before the codebook (the decoder was trained on codes, so
    this is an estimate of the codebook's share of the loss, not a trained continuous model). ``beat`` [T, F]: the
    clip's per-frame decoder beat features (from the tracker's predicted phase), read by a beat-conditioned
    decoder."""
    from engine.train.generate import decode_tokens

    t = (len(upper) // DOWN) * DOWN
    up, low = torch.from_numpy(upper[:t])[None], torch.from_numpy(lower[:t])[None]
    if vq.cfg.beat_dim and beat is None:
        raise ValueError("a beat-conditioned decoder needs the clip's beat features")
    bt = torch.from_numpy(beat[:t])[None] if vq.cfg.beat_dim and beat is not None else None
    if not quantize:
        nu, nd = vq._norm(up, low)
        ru, rd = vq._denorm(vq.dec_up(vq.enc_up(nu), bt), vq.dec_down(vq.enc_down(nd), bt))
        out_low = rd[0].numpy().astype(np.float32)
        out_low[:, -4:] = (out_low[:, -4:] > 0.5).astype(np.float32)
        return ru[0].numpy().astype(np.float32), out_low
    iu, idn = vq.encode(up, low)
    return decode_tokens(vq, iu[0].numpy(), idn[0].numpy(), None if bt is None else bt[0].numpy())


def score_clip(upper: np.ndarray, lower: np.ndarray, beats_s: np.ndarray, shifts: int) -> dict[str, float]:
    """BAS (exactly as ``groovecast eval``), its chance level and excess, and motion beats per beat of one clip."""
    from engine.train.evaluate import points

    pos = points(upper, lower)
    r = chance_scores(pos, 30.0, beats_s, shifts)
    bas = M.beat_align_score(pos, 30.0, beats_s)
    if abs(bas - r["bas"]) > 1e-9:  # the two implementations must agree, or the table would mix definitions
        raise AssertionError(f"BAS {bas} != {r['bas']}")
    return {"bas": bas, "chance": r["chance"], "excess": r["excess"],
            "motion_beats_per_beat": r["motion_beats_per_beat"]}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {**{k: float(np.mean([r[k] for r in rows])) for k in rows[0]}, "clips": len(rows)}


def follows_beats(vq: VQVAE, val: list, k_of: int = 8) -> dict[str, float]:
    """Does a beat-conditioned decoder put the speed minima where its beat features say? The validation tokens
    decoded with the features of the true beat grid (a perfect tracker) and of that grid moved by k/``k_of`` of a
    beat (k = 2, 4, 6), each scored (BAS) against the unmoved grid and against the grid the features came from.
    A decoder that ignores its features scores the same against the unmoved grid whatever the move."""
    from dataclasses import replace

    from engine.train.evaluate import points
    from engine.train.train_vqvae import sequence_beats

    out: dict[str, float] = {}
    for k in (0, 2, 4, 6):
        vs_grid, vs_fed = [], []
        for s in val:
            bs = np.asarray(s.music.beats_s, dtype=np.float64)
            moved = bs + k / k_of * np.gradient(bs)
            fed = sequence_beats([replace(s, music=replace(s.music, beats_s=moved))], grid=True)[0]
            up, low = reconstruct(vq, s.upper, s.lower, beat=fed)
            pos = points(up, low)
            vs_grid.append(M.beat_align_score(pos, 30.0, bs))
            vs_fed.append(M.beat_align_score(pos, 30.0, moved))
        out[f"moved_{k}_of_{k_of}_vs_grid"] = float(np.mean(vs_grid))
        out[f"moved_{k}_of_{k_of}_vs_fed"] = float(np.mean(vs_fed))
    return out


def run(data: Path, vq_dirs: list[Path], shifts: int = 8, unquantized: bool = False) -> dict:
    from engine.train.dataset import load_packed
    from engine.train.evaluate import style_of_sequence
    from engine.train.train_vqvae import reconstruction_error_mm, sequence_beats

    val = load_packed(data / "val.npz")
    beats = sequence_beats(val)  # what a beat-conditioned decoder reads: the tracker's predicted phase per frame
    rows: dict[str, dict[str, list[dict[str, float]]]] = {"real": {}}
    for s in val:
        rows["real"].setdefault(style_of_sequence(s), []).append(score_clip(s.upper, s.lower, s.music.beats_s, shifts))
    recon: dict[str, dict[str, float]] = {}
    for d in vq_dirs:
        vq = load_vqvae(d).eval()
        name = str(d)
        rows[name] = {}
        for s, bt in zip(val, beats, strict=True):
            up, low = reconstruct(vq, s.upper, s.lower, beat=bt)
            rows[name].setdefault(style_of_sequence(s), []).append(score_clip(up, low, s.music.beats_s, shifts))
        recon[name] = reconstruction_error_mm(vq, [(s.name, s.upper, s.lower) for s in val], None,
                                              beats if vq.cfg.beat_dim else None)
        if vq.cfg.beat_dim:
            recon[name]["follows_beats"] = follows_beats(vq, val)  # type: ignore[assignment]
        if unquantized:
            per: dict[str, list[dict[str, float]]] = {}
            rows[f"{name} (no quantiser)"] = per
            for s, bt in zip(val, beats, strict=True):
                up, low = reconstruct(vq, s.upper, s.lower, quantize=False, beat=bt)
                per.setdefault(style_of_sequence(s), []).append(score_clip(up, low, s.music.beats_s, shifts))
    out: dict[str, dict] = {}
    for name, per in rows.items():
        entry: dict = {"pooled": _mean([r for rs in per.values() for r in rs]),
                       "by_style": {st: _mean(rs) for st, rs in per.items()}}
        if name in recon:
            entry.update(recon[name])
        out[name] = entry
    goal = GOAL_SHARE * out["real"]["pooled"]["bas"]
    settings = {"data": str(data), "shifts": shifts, "unquantized": unquantized}
    return {"rows": out, "goal_bas": goal, "settings": settings}


def table(res: dict) -> list[str]:
    """Markdown rows: one per VQ-VAE (and real motion), pooled BAS / chance / excess, per-style BAS, errors."""
    styles = list(res["rows"]["real"]["by_style"])
    lines = ["| row | recon error mm | contact acc | BAS pooled | chance | excess | motion beats per beat | "
             + " / ".join(styles) + " BAS |", "|---|---|---|---|---|---|---|---|"]
    for name, e in res["rows"].items():
        p = e["pooled"]
        err = f"{e['mpjpe_mm']:.1f}" if "mpjpe_mm" in e else "-"
        acc = f"{e['contact_acc']:.3f}" if "contact_acc" in e else "-"
        per = " / ".join(f"{e['by_style'][st]['bas']:.3f}" if st in e["by_style"] else "-" for st in styles)
        lines.append(f"| {name} | {err} | {acc} | {p['bas']:.3f} | {p['chance']:.3f} | {p['excess']:+.3f} | "
                     f"{p['motion_beats_per_beat']:.2f} | {per} |")
    moved = [(n, e["follows_beats"]) for n, e in res["rows"].items() if "follows_beats" in e]
    if moved:
        lines += ["", "Beat-conditioned decoders, fed the true beat grid's features moved by k/8 of a beat: BAS "
                  "against the unmoved grid / against the moved grid (a decoder that follows its features keeps "
                  "the second high):",
                  "", "| row | k = 0 | k = 2 | k = 4 | k = 6 |", "|---|---|---|---|---|"]
        for n, f in moved:
            cells = " | ".join(f"{f[f'moved_{k}_of_8_vs_grid']:.3f} / {f[f'moved_{k}_of_8_vs_fed']:.3f}"
                               for k in (0, 2, 4, 6))
            lines.append(f"| {n} | {cells} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.vq_timing", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with the packed val.npz")
    ap.add_argument("--vqvae", type=Path, nargs="+", required=True, help="VQ-VAE folders (vqvae.json + .safetensors)")
    ap.add_argument("--shifts", type=int, default=8, help="phases of the shifted grids: k/n, k = 1..n-1 (default 8)")
    ap.add_argument("--unquantized", action="store_true",
                    help="also score each VQ-VAE's encoder outputs decoded without the codebook")
    ap.add_argument("--out", type=Path, default=None, help="write NAME.json and NAME.md here")
    ap.add_argument("--name", default="vq_timing")
    args = ap.parse_args(argv)
    if args.shifts < 2:
        ap.error(f"--shifts must be >= 2, got {args.shifts}")
    if not (args.data / "val.npz").is_file():
        ap.error(f"{args.data} has no val.npz (pack the data with groovecast train vqvae --pack DIR)")
    for d in args.vqvae:
        if not (d / "vqvae.json").is_file():
            ap.error(f"{d} has no vqvae.json")
    res = run(args.data, args.vqvae, args.shifts, args.unquantized)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.name}.json").write_text(json.dumps(res, indent=2))
        head = [f"# Does the tokenizer keep the timing? {args.name}", "",
                f"Goal (plain sampling, issue 10 item 6): BAS >= {res['goal_bas']:.3f} "
                f"({GOAL_SHARE}x real). Settings: `{json.dumps(res['settings'])}`", ""]
        (args.out / f"{args.name}.md").write_text("\n".join(head + table(res)) + "\n")
    print("\n".join(table(res)))
    print(f"goal: BAS >= {res['goal_bas']:.3f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

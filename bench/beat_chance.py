"""How much of a dance's Beat Align Score is alignment, and how much is chance? (issue 10 item 6 diagnostic)

Bailando's BAS rewards a music beat for any motion beat (speed minimum) near it, so motion with many speed
minima scores well even when they fall anywhere. Here every row's BAS is measured twice on the held-out takes:
against the beats the music was rendered on, and against the same beat grid shifted by k/n of its period
(k = 1..n-1: the same tempo and the same motion at every other phase) -- the mean of those is the **chance**
level of that motion. ``excess = BAS - chance`` is the alignment the motion has beyond its minima density; also
the number of motion beats per music beat. Rows: real validation motion, real motion through the VQ-VAE (the
ceiling of what a GPT on these tokens can express), and, with ``--model``, the model's dances as
``groovecast eval`` samples them (same seeds: seed + 100 x clip + sample; ``--beat-guidance 0`` plain).

``python3 -m bench.beat_chance --data /work/runs/data3 [--model DIR] [--beat-guidance N] [--temperature T]
[--samples 2] [--seed 0] [--shifts 8] [--out DIR --name NAME]`` prints JSON (and writes NAME.json/.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.train import metrics as M


def shifted_beats(beats_s: np.ndarray, fraction: float) -> np.ndarray:
    """The beat grid moved later by ``fraction`` of its median period (the same tempo at another phase)."""
    if len(beats_s) < 2:
        return beats_s.copy()
    return beats_s + fraction * float(np.median(np.diff(beats_s)))


def bas_of_events(motion_beats_60: np.ndarray, beats_s: np.ndarray, dur_s: float, sigma: float = 3.0) -> float:
    """Bailando's BAS (``metrics.beat_align_score``) from motion beats given as 60 fps frame positions."""
    beats = np.asarray([b for b in beats_s if 0 <= b < dur_s]) * 60.0
    if len(motion_beats_60) == 0 or len(beats) == 0:
        return 0.0
    d = np.abs(beats[:, None] - np.asarray(motion_beats_60, np.float64)[None]).min(1)
    return float(np.mean(np.exp(-(d**2) / (2 * sigma**2))))


def event_scores(motion_beats_60: np.ndarray, beats_s: np.ndarray, dur_s: float, shifts: int) -> dict[str, float]:
    """BAS against ``beats_s``, against the grid moved by k/``shifts`` of its period (k = 1..shifts-1; their mean
    is the chance level), and motion beats per music beat."""
    if shifts < 2:
        raise ValueError(f"shifts must be >= 2, got {shifts}")
    bas = bas_of_events(motion_beats_60, beats_s, dur_s)
    moved = [bas_of_events(motion_beats_60, shifted_beats(beats_s, k / shifts), dur_s) for k in range(1, shifts)]
    chance = float(np.mean(moved))
    n_b = int(np.sum((beats_s >= 0) & (beats_s < dur_s)))
    return {"bas": bas, "chance": chance, "excess": bas - chance,
            "motion_beats_per_beat": len(motion_beats_60) / max(n_b, 1),
            **{f"shift_{k}": v for k, v in enumerate(moved, start=1)}}


def chance_scores(pos: np.ndarray, fps: float, beats_s: np.ndarray, shifts: int) -> dict[str, float]:
    """:func:`event_scores` of the motion beats (speed minima, as ``metrics.beat_align_score`` finds them) of
    joint positions ``pos`` [T, J, 3] at ``fps``."""
    p60 = M.upsample(pos, 2) if abs(fps - 30.0) < 1e-6 else pos
    return event_scores(M.motion_beats(p60, 60.0)[0].astype(np.float64), beats_s, len(p60) / 60.0, shifts)


def _rows_table(res: dict) -> list[str]:
    n = res["settings"]["shifts"]
    out = ["| style | row | BAS | chance | excess | motion beats per beat | clips | BAS with the grid moved by "
           + ", ".join(f"{k}/{n}" for k in range(1, n)) + " of a period |", "|---|---|---|---|---|---|---|---|"]
    for st, rows in [("all", res["summary"]), *res["by_style"].items()]:
        for name, v in rows.items():
            moved = " ".join(f"{v[f'shift_{k}']:.2f}" for k in range(1, n))
            out.append(f"| {st} | {name} | {v['bas']:.3f} | {v['chance']:.3f} | {v['excess']:+.3f} | "
                       f"{v['motion_beats_per_beat']:.2f} | {v['clips']} | {moved} |")
    return out


def run(data: Path, model_dir: Path | None, samples: int, seed: int, shifts: int,
        beat_guidance: int | None = None, temperature: float | None = None) -> dict:
    from bench.beat_phase_check import predicted_beats_s
    from engine.train.dataset import load_packed
    from engine.train.evaluate import generate_for, points, style_of_sequence, vq_recon_vectors
    from engine.train.generate import load_dance_model

    val = load_packed(data / "val.npz")
    model = load_dance_model(model_dir)
    sampling = model.card.setdefault("sampling", {})
    if temperature is not None:
        sampling["temperature"] = temperature
    if beat_guidance is not None:  # as `groovecast eval --beat-guidance N`
        cfg = model.beat_guidance.with_candidates(beat_guidance)
        sampling["beat_guidance"] = cfg.to_card() if cfg.enabled else None
    per: dict[str, dict[str, list[dict[str, float]]]] = {}
    for si, s in enumerate(val):
        st = style_of_sequence(s)
        rows = per.setdefault(st, {})
        variants = [("real", (s.upper, s.lower)), ("vq_recon", vq_recon_vectors(model, s))]
        if model_dir is not None:
            variants += [("model", generate_for(model, model.gpt, s, seed + 100 * si + k, st)) for k in range(samples)]
        for name, (up, low) in variants:
            rows.setdefault(name, []).append(chance_scores(points(up, low), 30.0, s.music.beats_s, shifts))
        # a dancer who dips exactly on every beat the tracker predicts (all the live model knows of the beat)
        tracked = predicted_beats_s(s) * 60.0
        rows.setdefault("tracker_beats", []).append(event_scores(tracked, s.music.beats_s, s.n_frames / 30.0, shifts))

    def mean(rs: list[dict[str, float]]) -> dict[str, float]:
        return {**{k: float(np.mean([r[k] for r in rs])) for k in rs[0]}, "clips": len(rs)}

    by_style = {st: {n: mean(rs) for n, rs in rows.items()} for st, rows in per.items()}
    names = list(dict.fromkeys(n for rows in per.values() for n in rows))
    summary = {n: mean([r for rows in per.values() for r in rows.get(n, [])]) for n in names}
    return {"summary": summary, "by_style": by_style,
            "settings": {"model": str(model_dir) if model_dir else None, "samples": samples, "seed": seed,
                         "shifts": shifts, "beat_guidance": beat_guidance, "temperature": temperature}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.beat_chance", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with the packed val.npz")
    ap.add_argument("--model", type=Path, default=None, help="model folder whose dances to score (default: none)")
    ap.add_argument("--beat-guidance", type=int, default=None, help="candidates (0: plain; default: the card's)")
    ap.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the card's)")
    ap.add_argument("--samples", type=int, default=2, help="dances per validation clip (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shifts", type=int, default=8, help="phases of the shifted grids: k/n, k = 1..n-1 (default 8)")
    ap.add_argument("--out", type=Path, default=None, help="write NAME.json and NAME.md here")
    ap.add_argument("--name", default="beat_chance")
    args = ap.parse_args(argv)
    if args.shifts < 2 or args.samples < 1:
        ap.error(f"--shifts must be >= 2 and --samples >= 1, got {args.shifts} and {args.samples}")
    if not (args.data / "val.npz").is_file():
        ap.error(f"{args.data} has no val.npz (pack the data with groovecast train vqvae --pack DIR)")
    res = run(args.data, args.model, args.samples, args.seed, args.shifts, args.beat_guidance, args.temperature)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.name}.json").write_text(json.dumps(res, indent=2))
        head = [f"# Beat alignment beyond chance: {args.name}", "", f"Settings: `{json.dumps(res['settings'])}`", ""]
        (args.out / f"{args.name}.md").write_text("\n".join(head + _rows_table(res)) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

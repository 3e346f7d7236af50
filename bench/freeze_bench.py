"""Does a dance model freeze? Longest still stretch and mean speed over many seeds, styles and tracks.

Tracks: a plain click track (110 Hz clicks every 0.55 s, the one of docs/models.md), two unseen synthetic
rhythm tracks (99 and 126 bpm) and, when ``soundfile`` is installed, the first seconds of the four real CC
recordings of ../shared/data/music_cc. Every trained style, ``--seeds`` seeds each, with the model card's
sampling (beat-guided when the card says so); ``--plain`` adds plain sampling. A freeze is a stretch where the
mean root-relative joint speed stays below 0.05 m/s (``engine.train.metrics.longest_freeze_s``); real
training motion stays under 2 s. Writes ``OUT/freeze.{json,md}``.

    python -m bench.freeze_bench [--model DIR] [--seeds 6] [--seconds 20] [--max-repeat N] [--out bench/reports]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from engine.frames import ENGINE_SAMPLE_RATE
from engine.train.dataset import TRAINED_GENRES
from engine.train.evaluate import clip_metrics, points
from engine.train.generate import DEFAULT_MODEL_DIR, generate_dance, load_dance_model
from engine.train.synth_music import render_track


def click_track(seconds: float, sr: int = ENGINE_SAMPLE_RATE) -> np.ndarray:
    """110 Hz clicks (50 ms, decaying) every 0.55 s."""
    x = np.zeros(int(seconds * sr), np.float32)
    t = np.arange(int(0.05 * sr)) / sr
    click = (0.5 * np.sin(2 * np.pi * 110 * t) * np.exp(-t / 0.015)).astype(np.float32)
    for s in np.arange(0.0, seconds - 0.05, 0.55):
        i = int(s * sr)
        x[i : i + len(click)] += click
    return x


def tracks(seconds: float) -> dict[str, np.ndarray]:
    out = {"click": click_track(seconds)}
    for bpm, seed in ((99.0, 9101), (126.0, 9102)):
        beats = np.arange(0.0, seconds + 1.0, 60.0 / bpm)
        out[f"synth{bpm:.0f}"] = render_track(beats, seconds, seed=seed).astype(np.float32)
    try:
        from bench.music_cc_bench import MUSIC, read_audio

        for f in sorted(MUSIC.glob("*.ogg")):
            out[f.stem[:24]] = read_audio(f, seconds)
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.freeze_bench")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--plain", action="store_true", help="also sample without beat guidance")
    ap.add_argument("--out", type=Path, default=Path("bench/reports"))
    ap.add_argument("--name", default="freeze")
    ap.add_argument("--reference", type=Path, default=None,
                    help="model.json whose real-motion reference gives the speed ratios (default: the model's)")
    ap.add_argument("--max-repeat", type=int, default=None, metavar="N",
                    help="repetition guard (0: off; default: the model card's sampling.max_repeat)")
    ap.add_argument("--genre-guidance", type=float, default=None, metavar="S",
                    help="genre guidance scale (1: off; default: the model card's sampling.genre_guidance)")
    args = ap.parse_args(argv)
    model = load_dance_model(args.model)
    if args.genre_guidance is not None:
        model.card.setdefault("sampling", {})["genre_guidance"] = None if args.genre_guidance == 1.0 else (
            args.genre_guidance)
    if args.max_repeat is not None:
        model.card.setdefault("sampling", {})["max_repeat"] = args.max_repeat or None
    genres = [g for g in TRAINED_GENRES if g in model.card.get("trained_genres", ["salsa"])]
    card = json.loads(args.reference.read_text()) if args.reference else model.card
    ref = card.get("real_reference", {}).get("by_style", {})
    modes = ["card"] + (["plain"] if args.plain else [])
    rows: list[dict] = []
    t0 = time.perf_counter()
    guided_card = model.card.get("sampling", {}).get("beat_guidance")
    for track, audio in tracks(args.seconds).items():
        from engine.analysis import analyze_signal

        a = analyze_signal(audio, ENGINE_SAMPLE_RATE)
        ana = (a.features, a.period_s, a.next_beat_s, list(a.beats))
        for mode in modes:
            model.card.setdefault("sampling", {})["beat_guidance"] = guided_card if mode == "card" else None
            for genre in genres:
                for seed in range(args.seeds):
                    g = generate_dance(model, audio, ENGINE_SAMPLE_RATE, genre=genre, seed=seed, analysis=ana)
                    m = clip_metrics(points(g.upper, g.lower), np.asarray(g.beats_s))
                    real = ref.get(genre, {}).get("speed_ms")
                    rows.append({"track": track, "mode": mode, "genre": genre, "seed": seed,
                                 "freeze_s": m["freeze_s"], "speed_ms": m["speed_ms"],
                                 "speed_ratio": m["speed_ms"] / real if real else None})
                    print(json.dumps(rows[-1]), flush=True)
    model.card["sampling"]["beat_guidance"] = guided_card
    meta = {"model": str(args.model), "seeds": args.seeds, "seconds": args.seconds,
            "max_repeat": model.max_repeat, "genre_guidance": model.genre_guidance, "total_s": time.perf_counter() - t0,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "shared 2-core machine, other sessions running"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"# Freeze check: `{args.model}`, {args.seeds} seeds x {args.seconds:.0f} s per track", "",
             "| mode | genre | runs | longest freeze s (max) | median | runs > 2 s still | speed ratio vs real |",
             "|---|---|---|---|---|---|---|"]
    for mode in modes:
        for genre in genres:
            rs = [r for r in rows if r["mode"] == mode and r["genre"] == genre]
            fz = np.array([r["freeze_s"] for r in rs])
            ratios = [r["speed_ratio"] for r in rs if r["speed_ratio"] is not None]
            lines.append(f"| {mode} | {genre} | {len(rs)} | {fz.max():.2f} | {np.median(fz):.2f} | "
                         f"{int((fz > 2.0).sum())} | {(np.median(ratios) if ratios else float('nan')):.2f} |")
    lines += ["", "| track | longest freeze s (all styles, seeds) |", "|---|---|"]
    for track in dict.fromkeys(r["track"] for r in rows):
        lines.append(f"| {track} | {max(r['freeze_s'] for r in rows if r['track'] == track):.2f} |")
    lines += ["", *(f"- {k}: {v}" for k, v in meta.items())]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

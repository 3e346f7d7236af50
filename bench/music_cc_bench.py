"""The shipped model dancing to the four real CC recordings of ../shared/data/music_cc, in every trained style.

No beat annotations exist for these recordings, so BAS is measured against the beats the engine's own
live tracker committed to (what the dance was conditioned on). Also: longest freeze, foot skating, mean
joint and root speed (against the real motion of that style in the model card). Reads Ogg Vorbis with
``soundfile`` (``pip install soundfile``; not a dependency of the engine). Writes
``bench/reports/music_cc.{json,md}``.

    python -m bench.music_cc_bench [--seconds 20] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from engine.audio.resample import resample
from engine.frames import ENGINE_SAMPLE_RATE, MODEL_FPS
from engine.train.dataset import TRAINED_GENRES
from engine.train.evaluate import clip_metrics, points
from engine.train.generate import DEFAULT_MODEL_DIR, generate_dance, load_dance_model

MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "music_cc"


def read_audio(path: Path, seconds: float) -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float32", always_2d=True, frames=int(seconds * 48000) + 1)
    mono = x.mean(axis=1)
    return resample(mono, int(sr), ENGINE_SAMPLE_RATE)[: int(seconds * ENGINE_SAMPLE_RATE)]


def write_markdown(rows: list[dict], meta: dict, out: Path, seconds: float) -> None:
    """music_cc.md from the rows of music_cc.json."""
    cols = ["bas_tracked", "longest_freeze_s", "skate_ms", "speed_ms", "speed_ratio_vs_real", "root_speed_ms",
            "max_joint_speed_ms"]
    lines = [f"# Dancing to real recordings (`../shared/data/music_cc`, first {seconds:.0f} s of each)", "",
             "| recording | genre | beats | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for r in rows:
        vals = [("-" if r[c] is None else f"{r[c]:.3f}") for c in cols]
        lines.append(f"| {r['recording'][:28]} | {r['genre']} | {r['beats']} | " + " | ".join(vals) + " |")
    by_genre = {name: [r for r in rows if r["genre"] == name] for name in TRAINED_GENRES}
    by_genre = {name: rs for name, rs in by_genre.items() if rs}
    lines += ["", "| genre | mean BAS | max freeze s | mean skate m/s | mean speed ratio |", "|---|---|---|---|---|"]
    for gname, rs in by_genre.items():
        ratios = [r["speed_ratio_vs_real"] for r in rs if r["speed_ratio_vs_real"] is not None]
        lines.append(f"| {gname} | {np.mean([r['bas_tracked'] for r in rs]):.3f} | "
                     f"{max(r['longest_freeze_s'] for r in rs):.2f} | {np.mean([r['skate_ms'] for r in rs]):.3f} | "
                     f"{(np.mean(ratios) if ratios else float('nan')):.2f} |")
    lines += ["", *(f"- {k}: {v}" for k, v in meta.items())]
    (out / "music_cc.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.music_cc_bench")
    ap.add_argument("--seconds", type=float, default=20.0, help="excerpt length from the start of each recording")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--out", type=Path, default=Path("bench/reports"))
    args = ap.parse_args(argv)
    files = sorted(MUSIC.glob("*.ogg"))
    if not files:
        raise SystemExit(f"no .ogg recordings in {MUSIC}")
    model = load_dance_model(args.model)
    ref = model.card.get("real_reference", {}).get("by_style", {})
    rows: list[dict] = []
    t0 = time.perf_counter()
    for f in files:
        audio = read_audio(f, args.seconds)
        for genre in [g for g in TRAINED_GENRES if g in model.card.get("trained_genres", ["salsa"])]:
            t1 = time.perf_counter()
            g = generate_dance(model, audio, ENGINE_SAMPLE_RATE, genre=genre, seed=0)
            pos = points(g.upper, g.lower)
            m = clip_metrics(pos, np.asarray(g.beats_s))
            real_speed = ref.get(genre, {}).get("speed_ms")
            rows.append({
                "recording": f.stem, "genre": genre, "beats": len(g.beats_s), "bas_tracked": m["bas"],
                "longest_freeze_s": m["freeze_s"], "skate_ms": m["skate_ms"], "speed_ms": m["speed_ms"],
                "root_speed_ms": m["root_speed_ms"],
                "speed_ratio_vs_real": m["speed_ms"] / real_speed if real_speed else None,
                "max_joint_speed_ms": float(np.linalg.norm(np.diff(pos, axis=0), axis=-1).max() * MODEL_FPS),
                "seconds_to_generate": time.perf_counter() - t1,
            })
            print(json.dumps(rows[-1]), flush=True)
    meta = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "excerpt_s": args.seconds,
            "sampling": model.card.get("sampling"), "total_s": time.perf_counter() - t0,
            "note": "BAS against the live tracker's committed beats (no annotations exist); shared 2-core machine"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "music_cc.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    write_markdown(rows, meta, args.out, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

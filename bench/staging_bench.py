"""Staging for an audience, before and after (``engine/models/staging.py``): facing, stage distance, joint speed
against the real data's 99.9th percentile, foot skating and spin rates.

Dances: the held-out takes (real motion as captured, and the music of each take danced by the GPT model and by the
retrieval model) and the four real recordings of ``../shared/data/music_cc`` (first ``--seconds`` of each, the GPT
under every genre its card trained, and retrieval). Each dance is generated once without staging (the model's own
motion: "raw") and then staged exactly as the live engine stages it step by step (``stage_arrays``; the chunking
test in ``tests/models/test_staging.py`` shows it is the same filter), with the default settings (front +Z, radius
1.5 m). Since session 10 the GPT dances as the live engine has it dance: the staging tells the generator where the
dancer stands after each step (beat guidance's stage term steers the dance home while it is out), so its "raw" is
the GPT's own frames danced under the staging (before the staging's corrections), not the GPT unstaged. The real
data's per-joint 99.9th percentile speeds and spin rates are measured on the training takes of each style. Writes
``bench/reports/staging.{json,md,png}``.

    python -m bench.staging_bench [--data /work/runs/data3] [--seconds 30] [--model DIR] [--seed-offset N]
        [--kinds real,gpt,retrieval]

``--seed-offset`` adds N to every dance's seed (fresh dances to check a change on, beside the report's seeds);
``--kinds`` picks which kinds of dance to run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.frames import ENGINE_SAMPLE_RATE, MODEL_FPS
from engine.models.conditioning import GENRES, sequence_conditions
from engine.models.pose_repr import metric_cmu_skeleton, vectors_to_motion
from engine.models.staging import REAL_SPEED_P999, SPEED_FACTOR, PointFK, StagingConfig, stage_arrays
from engine.skeleton import rotations as R
from engine.train import metrics as M

MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "music_cc"
STYLES = ("salsa", "indian", "modern")
FK = PointFK()


def real_reference(data: Path | None) -> dict[str, Any]:
    """Per style, on the real training takes as captured: per-point p99.9 speed (m/s) and spin-rate percentiles."""
    from engine.train.cmu_data import load_split

    out: dict[str, Any] = {}
    for style in STYLES:
        speeds, spins = [], []
        for take in load_split(None, "train", (style,)):
            for m in take.dancers:
                pos, _ = FK(m.root_pos, R.matrix_to_quat(m.rot))
                speeds.append(np.linalg.norm(np.diff(pos, axis=0), axis=-1) * MODEL_FPS)
                spins.append(M.spin_rates(pos, MODEL_FPS))
        v = np.concatenate(speeds)
        s = np.concatenate(spins)
        out[style] = {"p999": np.percentile(v, 99.9, axis=0).round(3).tolist(), "frames": len(v),
                      "spin_pcts": np.percentile(s, [50, 90, 95, 99]).round(3).tolist()}
    return out


def measure(root: np.ndarray, quat: np.ndarray, style: str) -> dict[str, Any]:
    pos, _ = FK(root, quat)
    far, p95 = M.stage_distance(pos)
    ratio = M.joint_speed_ratio(pos, MODEL_FPS, np.array(REAL_SPEED_P999[style]))
    spin = M.spin_rates(pos, MODEL_FPS)
    return {"facing": M.facing_share(pos), "dist_max_m": far, "dist_p95_m": p95, "speed_ratio_max": float(ratio.max()),
            "skate_ms": M.foot_skating(pos, MODEL_FPS), "spin_p50": float(np.percentile(spin, 50)),
            "spin_p90": float(np.percentile(spin, 90)), "spin_p99": float(np.percentile(spin, 99)),
            "_path": pos[:, 0, [0, 2]][::3].round(3).tolist(), "_yaw": M.facing_yaw(pos).round(3).tolist(),
            "_spin": spin.round(3).tolist()}


def gpt_vectors_motion(model: Any, cond: np.ndarray, genre: str, seed: int, cfg: StagingConfig | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The GPT's own frames (the live generator at batch 1, before staging) for conditioning rows; with ``cfg``
    danced as the live engine dances them, staged by ``cfg`` step by step (the staging tells the generator where the
    dancer stands: beat guidance's stage term), the frames before staging returned (staging them again with ``cfg``
    gives the staged dance exactly: the staging is a causal filter of these frames)."""
    from engine.train.generate import sample_dance

    d = sample_dance(model, cond, GENRES.index(genre), None, seed=seed, staging=cfg)
    return d.root.astype(np.float64), d.quat.astype(np.float64)


def retrieval_motion(cond: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from engine.runtime.assemble import ModelSpec, build_model

    model = build_model(ModelSpec(model="retrieval", seed=seed, staging=StagingConfig(steer=False,
                                                                                       limit_speed=False)))
    pid = model.performer_ids()[0]
    roots, quats = [], []
    for row in cond:
        for sf in model.step(row):
            if sf.pid == pid:
                roots.append(sf.root)
                quats.append(sf.quat)
    return np.concatenate(roots).astype(np.float64), np.concatenate(quats).astype(np.float64)


def row(group: str, kind: str, clip: str, style: str, root: np.ndarray, quat: np.ndarray, cfg: StagingConfig
        ) -> dict[str, Any]:
    t0 = time.perf_counter()
    sr, sq = stage_arrays(root, quat, cfg, style)
    ms_per_step = (time.perf_counter() - t0) / max(1, len(root) // 4) * 1000
    r: dict[str, Any] = {"group": group, "kind": kind, "clip": clip, "style": style, "seconds": len(root) / MODEL_FPS,
         "raw": measure(root, quat, style), "staged": measure(sr, sq, style), "stage_ms_per_step": ms_per_step}
    print(json.dumps({k: v for k, v in r.items() if k not in ("raw", "staged")} | {
        w: {k: round(v, 3) for k, v in r[w].items() if not k.startswith("_")} for w in ("raw", "staged")}),
        flush=True)
    return r


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["group"], r["kind"]) for r in rows})
    for g, k in keys:
        rs = [r for r in rows if r["group"] == g and r["kind"] == k]
        s: dict[str, Any] = {"group": g, "kind": k, "dances": len(rs)}
        for w in ("raw", "staged"):
            f = [r[w]["facing"] for r in rs]
            s[w] = {"facing_mean": float(np.mean(f)), "facing_min": float(np.min(f)),
                    "facing_ge_80": float(np.mean(np.array(f) >= 0.8)),
                    "dist_max_m": float(max(r[w]["dist_max_m"] for r in rs)),
                    "dist_p95_mean_m": float(np.mean([r[w]["dist_p95_m"] for r in rs])),
                    "speed_ratio_max": float(max(r[w]["speed_ratio_max"] for r in rs)),
                    "skate_ms": float(np.mean([r[w]["skate_ms"] for r in rs])),
                    "spin_p50": float(np.percentile(np.concatenate([r[w]["_spin"] for r in rs]), 50)),
                    "spin_p90": float(np.percentile(np.concatenate([r[w]["_spin"] for r in rs]), 90)),
                    "spin_p99": float(np.percentile(np.concatenate([r[w]["_spin"] for r in rs]), 99))}
        s["skate_change"] = s["staged"]["skate_ms"] / max(s["raw"]["skate_ms"], 1e-9) - 1.0
        s["stage_ms_per_step"] = float(np.median([r["stage_ms_per_step"] for r in rs]))
        out.append(s)
    return out


def write_markdown(res: dict, out: Path) -> None:
    ref = res["real"]
    lines = ["# Staging for an audience: before (raw) and after (staged)", "",
             "Default staging: front +Z (the viewer's camera side, Unity's forward), stage radius 1.5 m, joint speed "
             f"limit {SPEED_FACTOR}x the real 99.9th percentile. Facing = share of frames whose hip facing is within "
             "+-45 deg of the front. Distance = root from the stage centre. Speed ratio = the largest joint speed / "
             "the real 99.9th percentile of that joint (the limit is 1.2). Skating = mean horizontal speed of foot "
             "points within 5 cm of the floor. Spin = hip turn rate, rev/s.", "",
             "| group | kind | dances | facing mean raw -> staged | min | dances >= 80 % | max dist m "
             "| mean p95 dist m | max speed ratio | skating m/s (change) | spin p50 / p90 / p99 rev/s raw -> staged "
             "| staging ms/step |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in res["summary"]:
        a, b = s["raw"], s["staged"]
        lines.append(
            f"| {s['group']} | {s['kind']} | {s['dances']} | {a['facing_mean']:.2f} -> **{b['facing_mean']:.2f}** | "
            f"{a['facing_min']:.2f} -> {b['facing_min']:.2f} | {a['facing_ge_80']:.0%} -> {b['facing_ge_80']:.0%} | "
            f"{a['dist_max_m']:.2f} -> **{b['dist_max_m']:.2f}** | {a['dist_p95_mean_m']:.2f} -> "
            f"{b['dist_p95_mean_m']:.2f} | {a['speed_ratio_max']:.2f} -> **{b['speed_ratio_max']:.2f}** | "
            f"{a['skate_ms']:.3f} -> {b['skate_ms']:.3f} ({s['skate_change']:+.0%}) | "
            f"{a['spin_p50']:.2f}/{a['spin_p90']:.2f}/{a['spin_p99']:.2f} -> "
            f"{b['spin_p50']:.2f}/{b['spin_p90']:.2f}/{b['spin_p99']:.2f} | {s['stage_ms_per_step']:.2f} |")
    lines += ["", "## Real reference (training takes as captured, 30 fps)", "",
              "| style | frames | spin p50 / p90 / p95 / p99 rev/s | p99.9 joint speed m/s: hip, rFoot, lFoot, head, "
              "rHand, lHand, rToe, lToe |", "|---|---|---|---|"]
    for style, r in ref.items():
        p = r["p999"]
        lines.append(f"| {style} | {r['frames']} | {' / '.join(f'{x:.2f}' for x in r['spin_pcts'])} | "
                     + ", ".join(f"{p[i]:.2f}" for i in (0, 4, 8, 12, 16, 20, 21, 22)) + " |")
    lines += ["", "## Every dance", "", "| group | kind | clip | style | s | facing | max dist | p95 dist "
              "| speed ratio | skating | spin p50/p99 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        a, b = r["raw"], r["staged"]
        lines.append(
            f"| {r['group']} | {r['kind']} | {r['clip'][:26]} | {r['style']} | {r['seconds']:.0f} | "
            f"{a['facing']:.2f} -> {b['facing']:.2f} | {a['dist_max_m']:.2f} -> {b['dist_max_m']:.2f} | "
            f"{a['dist_p95_m']:.2f} -> {b['dist_p95_m']:.2f} | {a['speed_ratio_max']:.2f} -> {b['speed_ratio_max']:.2f}"
            f" | {a['skate_ms']:.3f} -> {b['skate_ms']:.3f} | {a['spin_p50']:.2f}/{a['spin_p99']:.2f} -> "
            f"{b['spin_p50']:.2f}/{b['spin_p99']:.2f} |")
    lines += ["", *(f"- {k}: {v}" for k, v in res["meta"].items())]
    (out / "staging.md").write_text("\n".join(lines) + "\n")


def plot(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({(r["group"], r["kind"]) for r in res["rows"] if r["kind"] != "real"})
    fig, axes = plt.subplots(2, max(2, len(kinds)), figsize=(4.2 * max(2, len(kinds)), 8.4))
    radius = res["meta"]["stage_radius_m"]
    for j, (g, k) in enumerate(kinds):
        ax = axes[0, j]
        for r in [r for r in res["rows"] if r["group"] == g and r["kind"] == k][:4]:
            raw = np.array(r["raw"]["_path"])
            st = np.array(r["staged"]["_path"])
            ax.plot(raw[:, 0], raw[:, 1], color="0.7", lw=0.8)
            ax.plot(st[:, 0], st[:, 1], lw=1.0)
        ax.add_patch(plt.Circle((0, 0), radius, fill=False, ls="--", color="k"))
        ax.set_aspect("equal")
        ax.set_title(f"{g} / {k}: root paths (grey raw)", fontsize=9)
        ax.set_xlabel("x (m)")
        ax.set_ylabel("z (m), audience at +z")
        ax = axes[1, j]
        rs = [r for r in res["rows"] if r["group"] == g and r["kind"] == k]
        bins = np.linspace(-180, 180, 37)
        for w, c in (("raw", "0.6"), ("staged", "C0")):
            y = np.degrees(np.concatenate([r[w]["_yaw"] for r in rs]))
            ax.hist(y, bins=bins, density=True, histtype="step", color=c, lw=1.5, label=w)
        ax.axvspan(-45, 45, color="C2", alpha=0.1)
        ax.set_title(f"{g} / {k}: facing (deg from front)", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "staging.png", dpi=90)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.staging_bench")
    ap.add_argument("--data", type=Path, default=Path("/work/runs/data3"),
                    help="folder with the packed val.npz (held-out takes and their music)")
    ap.add_argument("--seconds", type=float, default=30.0, help="excerpt of each music_cc recording")
    ap.add_argument("--model", type=Path, default=None, help="GPT model folder (default: the shipped model)")
    ap.add_argument("--out", type=Path, default=Path("bench/reports"))
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="added to every dance's seed (0: the report's dances; others: fresh dances to check on)")
    ap.add_argument("--kinds", default="real,gpt,retrieval", help="which kinds of dance (comma-separated)")
    args = ap.parse_args(argv)
    from bench.music_cc_bench import read_audio
    from engine.analysis.analyze import dance_analysis
    from engine.train.dataset import load_packed
    from engine.train.generate import DEFAULT_MODEL_DIR, load_dance_model

    t0 = time.perf_counter()
    cfg = StagingConfig()
    model = load_dance_model(args.model or DEFAULT_MODEL_DIR)
    genres = [g for g in STYLES if g in model.card.get("trained_genres", ["salsa"])
              and GENRES.index(g) < model.gpt.cfg.n_genres]
    rows: list[dict] = []
    kinds = set(args.kinds.split(","))
    if not kinds <= {"real", "gpt", "retrieval"}:
        ap.error(f"--kinds takes real, gpt, retrieval; got {args.kinds!r}")
    so = args.seed_offset
    real = real_reference(None)
    for i, seq in enumerate(load_packed(args.data / "val.npz")):
        style = GENRES[seq.genre] if GENRES[seq.genre] in STYLES else "salsa"
        m = vectors_to_motion(seq.upper, seq.lower, metric_cmu_skeleton())
        if "real" in kinds:
            rows.append(row("held-out", "real", seq.name, style, m.root_pos, R.matrix_to_quat(m.rot), cfg))
        n = seq.n_frames // 4
        cond = sequence_conditions(seq.music.features, seq.music.period_s, seq.music.next_beat_s, n)
        g = style if style in genres else "salsa"
        if "gpt" in kinds:
            rows.append(row("held-out", "gpt", seq.name, g, *gpt_vectors_motion(model, cond, g, i + so, cfg), cfg))
        if "retrieval" in kinds:
            rows.append(row("held-out", "retrieval", seq.name, "salsa", *retrieval_motion(cond, seed=i + so), cfg))
    for f in sorted(MUSIC.glob("*.ogg")):
        audio = read_audio(f, args.seconds)
        feats, period, nxt, _ = dance_analysis(audio, ENGINE_SAMPLE_RATE, None)
        cond = sequence_conditions(feats, period, nxt, len(feats) // 4)
        for g in genres if "gpt" in kinds else ():
            rows.append(row("music_cc", "gpt", f.stem, g, *gpt_vectors_motion(model, cond, g, so, cfg), cfg))
        if "retrieval" in kinds:
            rows.append(row("music_cc", "retrieval", f.stem, "salsa", *retrieval_motion(cond, seed=so), cfg))
    meta = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "python": platform.python_version(),
            "model": str(args.model or DEFAULT_MODEL_DIR), "genres": genres, "music_cc_seconds": args.seconds,
            "seed_offset": so, "kinds": sorted(kinds),
            "stage_radius_m": cfg.radius_m, "front_deg": cfg.front_deg, "total_s": round(time.perf_counter() - t0, 1),
            "note": "shared 2-core machine with other sessions training and testing (load average 5-15); the "
                    "staging ms per step is CPU time under that load, one performer"}
    res = {"meta": meta, "real": real, "summary": summarise(rows), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    slim = {**res, "rows": [{k: ({kk: vv for kk, vv in v.items() if not kk.startswith("_")} if isinstance(v, dict)
                                 else v) for k, v in r.items()} for r in rows]}
    (args.out / "staging.json").write_text(json.dumps(slim, indent=2))
    write_markdown(res, args.out)
    plot(res, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

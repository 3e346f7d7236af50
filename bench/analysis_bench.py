"""Analysis benchmark: per-hop cost of the streaming analyzer, and beat F-measure vs aubio on the beat set.

Run: ``python3 -m bench.analysis_bench`` (writes bench/reports/analysis.{md,json,png}).
Options: ``--quick`` (3 clips), ``--out DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis_beatset import TEST_CLIPS, build_set, read_wav
from engine.analysis import MusicAnalyzer, SpeechAnalyzer, analyze_signal
from engine.analysis.baseline import AUBIO_HOP, AUBIO_WIN, aubio_default_beats
from engine.analysis.onset import HOP, OnsetStrength
from engine.analysis.tracker import BeatTracker
from engine.audio.resample import resample
from engine.audio.synth import SyntheticSignal
from engine.clock import SYSTEM_CLOCK
from engine.frames import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME, AudioBlock

HOP_US = HOP / ENGINE_SAMPLE_RATE * 1e6


def _pct(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns, dtype=np.float64) / 1e3
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99)),
            "max_us": float(a.max()), "n": len(a)}


def _time_calls(fn: Any, items: list[Any], warmup: int = 200) -> list[int]:
    clock = SYSTEM_CLOCK
    out = []
    for i, it in enumerate(items):
        t0 = clock.monotonic_ns()
        fn(it)
        dt = clock.monotonic_ns() - t0
        if i >= warmup:
            out.append(dt)
    return out


def per_hop_cost(x: np.ndarray) -> dict[str, Any]:
    """Cost of each stage on real music at the engine rate, one hop (256 samples) per call."""
    hops = [x[i:i + HOP].copy() for i in range(0, len(x) - HOP + 1, HOP)]
    frames = [x[i:i + SAMPLES_PER_FRAME].copy() for i in range(0, len(x) - SAMPLES_PER_FRAME + 1, SAMPLES_PER_FRAME)]
    res: dict[str, Any] = {}
    an = MusicAnalyzer()
    blocks = [AudioBlock((i + 1) * HOP, 0, h) for i, h in enumerate(hops)]
    res["MusicAnalyzer (per 256-sample block, all outputs)"] = _pct(_time_calls(lambda b: list(an.process(b)), blocks))
    onset = OnsetStrength()
    res["OnsetStrength (ODF per hop)"] = _pct(_time_calls(onset.process, hops))
    onset2 = OnsetStrength()
    odf = [(onset2.process(h), onset2.bass) for h in hops]
    tr = BeatTracker()
    res["BeatTracker (per hop)"] = _pct(_time_calls(lambda o: tr.process(*o), odf))
    from engine.analysis.features import MusicFrameFeatures

    mf = MusicFrameFeatures()
    res["MusicFrameFeatures (MFCC+chroma per 30 fps frame)"] = _pct(_time_calls(mf.process, frames, warmup=60))
    sp = SpeechAnalyzer()
    fblocks = [AudioBlock((i + 1) * SAMPLES_PER_FRAME, 0, f) for i, f in enumerate(frames)]
    res["SpeechAnalyzer (per 30 fps frame)"] = _pct(_time_calls(lambda b: list(sp.process(b)), fblocks, warmup=60))
    import aubio

    at = aubio.tempo("default", AUBIO_WIN, AUBIO_HOP, ENGINE_SAMPLE_RATE)
    res["aubio.tempo default (per hop, baseline)"] = _pct(_time_calls(at, hops))
    for name, r in res.items():
        budget = HOP_US if "frame" not in name else SAMPLES_PER_FRAME / ENGINE_SAMPLE_RATE * 1e6
        r["budget_us"] = budget
        r["p50_frac"] = r["p50_us"] / budget
        r["p99_frac"] = r["p99_us"] / budget
    return res


def _f(ref: np.ndarray, est: np.ndarray | list[float]) -> float:
    import mir_eval

    return float(mir_eval.beat.f_measure(mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(np.asarray(est))))


def beat_scores(names: tuple[str, ...] | None) -> list[dict[str, Any]]:
    rows = []
    for c in build_set(names):
        x, sr = read_wav(c.wav)
        a = analyze_signal(x, sr)
        ours = _f(c.beats, a.beats)
        base = _f(c.beats, aubio_default_beats(x, sr))
        down = _f(c.downbeats, a.downbeats)
        true_bpm = 60.0 / float(np.median(np.diff(c.beats[-8:])))
        rows.append({"clip": c.spec.name, "category": c.spec.category, "ours": ours, "aubio": base, "downbeat_f": down,
                     "bpm_est": a.bpm, "bpm_true_end": true_bpm, "drums": c.spec.drums, "meter": c.spec.meter})
        print(f"  {c.spec.name:14s} ours {ours:.3f}  aubio {base:.3f}  bpm {a.bpm:6.1f} (true {true_bpm:6.1f})",
              flush=True)
    return rows


def synthetic_checks() -> dict[str, Any]:
    """Tempo accuracy on steady clicks and beats needed to re-lock after a tempo jump."""
    steady = {}
    for bpm in (72.0, 97.0, 120.0, 151.0):
        sig = SyntheticSignal.clicks([(16.0, bpm, bpm)], noise_level=0.01)
        a = analyze_signal(sig.samples, ENGINE_SAMPLE_RATE)
        steady[f"{bpm:g}"] = {"bpm_est": a.bpm, "abs_err_bpm": abs(a.bpm - bpm)}
    jumps = {}
    for b0, b1 in ((100.0, 140.0), (140.0, 100.0), (120.0, 90.0), (80.0, 110.0)):
        sig = SyntheticSignal.clicks([(12.0, b0, b0), (12.0, b1, b1)], noise_level=0.01)
        a = analyze_signal(sig.samples, ENGINE_SAMPLE_RATE)
        after = [(t, b) for t, b in zip(a.beats, a.beat_bpm, strict=True) if t > 12.0]
        ok = [abs(b - b1) < 1.5 and float(np.min(np.abs(sig.beats - t))) < 0.07 for t, b in after]
        k = next((i for i in range(len(ok)) if all(ok[i:])), None)
        jumps[f"{b0:g}->{b1:g}"] = {"beats_to_relock": k, "seconds_to_relock": (after[k][0] - 12.0) if k is not None
                                    else None}
    return {"steady": steady, "jumps": jumps}


def _plot(path: Path, cats: list[str], ours: list[float], base: list[float], cost: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    idx = np.arange(len(cats))
    ax1.bar(idx - 0.2, ours, 0.4, label="groovecast tracker")
    ax1.bar(idx + 0.2, base, 0.4, label="aubio default (win 512 / hop 256)")
    ax1.set_xticks(idx, cats, rotation=30, ha="right")
    ax1.set_ylabel("F-measure (70 ms, first 5 s trimmed)")
    ax1.set_ylim(0, 1.05)
    ax1.set_title("Beat tracking on the project's beat set")
    ax1.legend(loc="lower right")
    names = [n.split(" (")[0] for n in cost]
    p50 = [r["p50_frac"] * 100 for r in cost.values()]
    p99 = [r["p99_frac"] * 100 for r in cost.values()]
    j = np.arange(len(names))
    ax2.barh(j + 0.2, p50, 0.4, label="p50")
    ax2.barh(j - 0.2, p99, 0.4, label="p99")
    ax2.set_yticks(j, names)
    ax2.set_xlabel("% of the real-time budget (hop or frame duration)")
    ax2.set_title("Processing cost per call")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="only the test subset of clips")
    ap.add_argument("--out", default=str(Path(__file__).parent / "reports"), help="report directory")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from engine.cli.audio_cmds import demo_path

    x, sr = read_wav(demo_path())
    print("per-hop cost on the demo clip ...", flush=True)
    cost = per_hop_cost(resample(np.tile(x, 2), sr))
    print("beat set ...", flush=True)
    rows = beat_scores(TEST_CLIPS if args.quick else None)
    cats = list(dict.fromkeys(r["category"] for r in rows))
    ours = [float(np.mean([r["ours"] for r in rows if r["category"] == c])) for c in cats]
    base = [float(np.mean([r["aubio"] for r in rows if r["category"] == c])) for c in cats]
    mean_ours = float(np.mean([r["ours"] for r in rows]))
    mean_base = float(np.mean([r["aubio"] for r in rows]))
    mean_down = float(np.mean([r["downbeat_f"] for r in rows]))
    print("synthetic tempo checks ...", flush=True)
    synth = synthetic_checks()

    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "system": platform.platform(), "cpus": os.cpu_count(), "loadavg_1min": os.getloadavg()[0]},
        "engine_rate": ENGINE_SAMPLE_RATE, "hop": HOP, "hop_us": HOP_US,
        "per_call_cost": cost,
        "beat_set": {"clips": rows, "categories": dict(zip(cats, zip(ours, base, strict=True), strict=True)),
                     "mean_ours": mean_ours, "mean_aubio": mean_base, "margin": mean_ours - mean_base,
                     "mean_downbeat_f": mean_down,
                     "n_clips": len(rows)},
        "synthetic": synth,
    }
    (out / "analysis.json").write_text(json.dumps(report, indent=2))
    _plot(out / "analysis.png", cats, ours, base, cost)

    md = ["# Analysis benchmark", "",
          "Written by `python3 -m bench.analysis_bench` "
          f"({'quick subset' if args.quick else 'full set'}; {report['machine']['system']}, "
          f"Python {report['machine']['python']}, {report['machine']['cpus']} CPUs, "
          f"1-min load average {report['machine']['loadavg_1min']:.1f} at the end: p99 includes preemption "
          "when the machine is shared).", "",
          "## Per-call cost (streaming, one call per hop of 256 samples = "
          f"{HOP_US:.0f} µs of audio, or per 30 fps frame = {SAMPLES_PER_FRAME / ENGINE_SAMPLE_RATE * 1e6:.0f} µs)",
          "", "| stage | p50 µs | p99 µs | p50 of budget | p99 of budget |", "|---|---:|---:|---:|---:|"]
    for name, r in cost.items():
        md.append(f"| {name} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['p50_frac']:.1%} | {r['p99_frac']:.1%} |")
    md += ["", "## Beat F-measure per category (mir_eval, 70 ms window, first 5 s trimmed)", "",
           "aubio: `aubio.tempo(\"default\", 512, 256, 22050)` (its 1024/512 at 44.1 kHz scaled to the engine rate), "
           "beats from `get_last_s()`; both trackers read the same 22.05 kHz audio in the same run.", "",
           "| category | clips | groovecast | aubio default | difference |", "|---|---:|---:|---:|---:|"]
    for c, o, b in zip(cats, ours, base, strict=True):
        n = sum(r["category"] == c for r in rows)
        md.append(f"| {c} | {n} | {o:.3f} | {b:.3f} | {o - b:+.3f} |")
    md.append(f"| **mean over clips** | {len(rows)} | **{mean_ours:.3f}** | **{mean_base:.3f}** | "
              f"**{mean_ours - mean_base:+.3f}** |")
    md += ["", f"Downbeats (groovecast only; aubio has none): mean F-measure {mean_down:.3f} "
           "(same window; a heuristic, see docs/audio.md).", ""]
    md += ["", "<details><summary>per clip</summary>", "", "| clip | category | groovecast | aubio | downbeat F | "
           "BPM est | BPM true (end) |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['clip']} | {r['category']} | {r['ours']:.3f} | {r['aubio']:.3f} | {r['downbeat_f']:.3f} | "
                  f"{r['bpm_est']:.1f} | {r['bpm_true_end']:.1f} |")
    md += ["", "</details>", "", "## Synthetic clicks", "", "| steady BPM | estimate | error |", "|---:|---:|---:|"]
    for k, v in synth["steady"].items():
        md.append(f"| {k} | {v['bpm_est']:.2f} | {v['abs_err_bpm']:.2f} |")
    md += ["", "| tempo jump at 12 s | beats to re-lock (BPM within 1.5, beats within 70 ms) | seconds |",
           "|---|---:|---:|"]
    for k, v in synth["jumps"].items():
        secs = f"{v['seconds_to_relock']:.2f}" if v["seconds_to_relock"] is not None else "-"
        md.append(f"| {k} | {v['beats_to_relock']} | {secs} |")
    md += ["", "![analysis](analysis.png)", ""]
    (out / "analysis.md").write_text("\n".join(md))
    print(f"mean F: groovecast {mean_ours:.3f}, aubio {mean_base:.3f} ({mean_ours - mean_base:+.3f}); "
          f"report in {out}/analysis.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

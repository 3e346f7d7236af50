"""Analysis benchmark: per-hop cost of the streaming analyzer, and beat tracking side by side with its peers.

Trackers, on the same clips in one run: the project's four trackers (hmm = the default, hybrid and comb =
earlier defaults, neural = an option; see docs/audio.md), madmom's online RNN + DBN and BeatNet's online
CRNN + particle filter (each run in the peers' virtual environment ``.venv-peers`` by ``bench/madmom_peer.py``
and ``bench/beatnet_peer.py``, at the same time as ours; skipped with a note when missing) and aubio's
default tempo tracker.
Sets: the rendered set (27 clips, tunes held out from the network's training), a noise + room stress set,
a tempo-jump set (re-lock time), and synthetic clicks.

Run: ``python3 -m bench.analysis_bench`` (writes bench/reports/analysis.{md,json,png}).
Options: ``--quick`` (3 clips of the rendered set, 3 stress, 2 jumps), ``--no-peers``, ``--out DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis_beatset import (
    JUMP_AT_BEATS,
    TEST_CLIPS,
    Clip,
    build_jump_set,
    build_real_set,
    build_set,
    build_stress_set,
    read_wav,
)
from engine.analysis import MusicAnalyzer, SpeechAnalyzer, analyze_signal
from engine.analysis.baseline import AUBIO_HOP, AUBIO_WIN, aubio_default_beats
from engine.analysis.beat_hmm import BeatHMM
from engine.analysis.beat_net import BeatActivation
from engine.analysis.music import shipped_beat_net
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
    onset3 = OnsetStrength()
    mels = []
    for h in hops:
        onset3.process(h)
        mels.append((onset3.log_mel.copy(), onset3.mel_flux.copy()))
    act = BeatActivation(shipped_beat_net())
    res["BeatActivation (beat network, per hop)"] = _pct(_time_calls(lambda m: act.process(*m), mels))
    act2 = BeatActivation(shipped_beat_net())
    acts = [(*act2.process(*m), o[0]) for m, o in zip(mels, odf, strict=True)]
    hmm = BeatHMM()
    res["BeatHMM (tempo x phase filter, per hop)"] = _pct(_time_calls(lambda a: hmm.process(*a), acts))
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


TRACKERS = ("hmm", "hybrid", "comb", "neural", "madmom", "beatnet", "aubio")
OURS = ("hmm", "hybrid", "comb", "neural")
PEERS = ("madmom", "beatnet")
LABELS = {"hmm": "groovecast hmm (default)", "hybrid": "groovecast hybrid (dance features)",
          "comb": "groovecast comb", "neural": "groovecast neural (option)",
          "madmom": "madmom online (RNN+DBN)", "beatnet": "BeatNet online (CRNN+PF)", "aubio": "aubio default"}
PEERS_PYTHON = Path(__file__).resolve().parent.parent / ".venv-peers" / "bin" / "python"
#: Re-lock: from this reference beat on, every reference beat has an estimate within the window and
#: every estimate a reference beat (mir_eval's 70 ms), to the end of the clip.
RELOCK_WINDOW_S = 0.07


def _trim(b: np.ndarray | list[float]) -> np.ndarray:
    import mir_eval

    return np.asarray(mir_eval.beat.trim_beats(np.asarray(b, dtype=np.float64)))


def beat_metrics(ref: np.ndarray, est: np.ndarray | list[float]) -> dict[str, float]:
    """mir_eval F (70 ms), CMLt and AMLt, the first 5 s trimmed."""
    import mir_eval

    r, e = _trim(ref), _trim(est)
    f = float(mir_eval.beat.f_measure(r, e))
    if len(e) < 2:
        return {"f": f, "cmlt": 0.0, "amlt": 0.0}
    _, cmlt, _, amlt = mir_eval.beat.continuity(r, e)
    return {"f": f, "cmlt": float(cmlt), "amlt": float(amlt)}


def relock(ref: np.ndarray, est: np.ndarray | list[float], jump_s: float) -> tuple[float | None, int | None]:
    """Seconds and reference beats from a tempo jump until the estimates match the reference for good."""
    est = np.asarray(est, dtype=np.float64)
    r = ref[ref > jump_s]
    end = r[-1] - 0.5 if len(r) else jump_s
    r = r[r <= end]
    if not len(r) or not len(est):
        return None, None

    def ok_ref(t: float) -> bool:
        return bool(np.min(np.abs(est - t)) <= RELOCK_WINDOW_S)

    good = [ok_ref(t) for t in r]
    for k in range(len(r)):
        if all(good[k:]):
            tail = est[(est > r[k] - RELOCK_WINDOW_S) & (est <= end)]
            if all(np.min(np.abs(ref - t)) <= RELOCK_WINDOW_S for t in tail):
                return float(r[k] - jump_s), k
    return None, None


def _ours(x: np.ndarray, sr: int, kind: str) -> tuple[list[float], list[float], float, float]:
    t0 = time.process_time()
    a = analyze_signal(x, sr, tracker=kind)
    return a.beats, a.downbeats, time.process_time() - t0, a.bpm


def _start_peer(name: str, paths: list[str], out: Path) -> subprocess.Popen[str] | str:
    """Start ``bench/<name>_peer.py`` in the peers' venv on every path; a string says why it cannot run."""
    if not PEERS_PYTHON.exists():
        return f"not run: {PEERS_PYTHON} missing (see ../shared/peers/madmom/README.md)"
    lst = out / f"{name}_in.json"
    lst.write_text(json.dumps(paths))
    script = Path(__file__).resolve().parent / f"{name}_peer.py"
    return subprocess.Popen([str(PEERS_PYTHON), str(script), str(lst), str(out / f"{name}_out.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish_peer(name: str, proc: subprocess.Popen[str] | str, out: Path) -> dict[str, Any] | str:
    """Wait for a peer started by :func:`_start_peer`; its results, or a string saying why there are none."""
    if isinstance(proc, str):
        return proc
    _, err = proc.communicate(timeout=7200)
    (out / f"{name}_in.json").unlink(missing_ok=True)
    res = out / f"{name}_out.json"
    if proc.returncode != 0 or not res.exists():
        return "failed: " + (err.strip().splitlines() or ["?"])[-1]
    data = json.loads(res.read_text())
    res.unlink()
    return dict(data)


def run_sets(quick: bool, use_peers: bool, out: Path) -> dict[str, Any]:
    """Every tracker on every clip of every set: per-clip metrics and per-tracker CPU time."""
    sets: dict[str, list[Clip]] = {
        "rendered": build_set(TEST_CLIPS if quick else None),
        "stress": build_stress_set()[: 3 if quick else None],
        "tempo jump": build_jump_set()[: 2 if quick else None],
    }
    real, real_record = build_real_set(peers_python=PEERS_PYTHON)
    if real:
        sets["real (consensus)"] = real[: 2 if quick else None]
    print(f"real-music set: {len(real)} clips ({real_record['status']})", flush=True)
    all_paths = [str(c.wav) for cs in sets.values() for c in cs]
    # the peers run in their own processes while ours run here (their CPU time is their own process's)
    started = {name: _start_peer(name, all_paths, out) if use_peers else "not run (--no-peers)" for name in PEERS}
    result: dict[str, Any] = {"sets": {}, "real_set": real_record}
    rows_by_set: dict[str, list[dict[str, Any]]] = {}
    est_by_clip: dict[str, dict[str, tuple[list[float], list[float] | None]]] = {}
    cpu: dict[str, dict[str, float]] = {}
    for set_name, clips in sets.items():
        rows = []
        cpu[set_name] = {k: 0.0 for k in TRACKERS}
        for c in clips:
            x, sr = read_wav(c.wav)
            est: dict[str, tuple[list[float], list[float] | None]] = {}
            row: dict[str, Any] = {"clip": c.spec.name, "category": c.spec.category, "meter": c.spec.meter,
                                   "audio_s": len(x) / sr}
            for kind in OURS:
                beats, downs, secs, bpm = _ours(x, sr, kind)
                est[kind] = (beats, downs)
                cpu[set_name][kind] += secs
                row[f"{kind}_bpm"] = bpm
            t0 = time.process_time()
            est["aubio"] = (list(aubio_default_beats(x, sr)), None)
            cpu[set_name]["aubio"] += time.process_time() - t0
            est_by_clip[str(c.wav)] = est
            rows.append(row)
            print(f"  [{set_name}] {c.spec.name:24s} " + "  ".join(
                f"{k} {beat_metrics(c.beats, est[k][0])['f']:.3f}" for k in OURS), flush=True)
        rows_by_set[set_name] = rows
    peers = {name: _finish_peer(name, proc, out) for name, proc in started.items()}
    for name, res in peers.items():
        result[f"{name}_status"] = res if isinstance(res, str) else "ok"
        if isinstance(res, str):
            print(f"{name}: {res}", flush=True)
    for set_name, clips in sets.items():
        rows = rows_by_set[set_name]
        for c, row in zip(clips, rows, strict=True):
            est = est_by_clip[str(c.wav)]
            for name, res in peers.items():
                if isinstance(res, dict):
                    r = res[str(c.wav)]
                    est[name] = (r["beats"], r.get("downbeats"))
                    cpu[set_name][name] += r["cpu_s"]
            jump_s = float(c.beats[JUMP_AT_BEATS]) if set_name == "tempo jump" else None
            for kind, (b_est, d_est) in est.items():
                m: dict[str, Any] = dict(beat_metrics(c.beats, b_est))
                if d_est is not None and len(c.downbeats):
                    m["downbeat_f"] = beat_metrics(c.downbeats, d_est)["f"]
                if jump_s is not None:
                    secs_r, beats_r = relock(c.beats, b_est, jump_s)
                    m["relock_s"], m["relock_beats"] = secs_r, beats_r
                row[kind] = m
        audio_s = sum(r["audio_s"] for r in rows)
        result["sets"][set_name] = {"clips": rows, "audio_s": audio_s,
                                    "cpu_s_per_s": {k: v / audio_s for k, v in cpu[set_name].items()
                                                    if k in rows[0]}}
    return result


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Mean metrics per set and tracker; median re-lock on the jump set (a clip that never re-locks: inf)."""
    summ: dict[str, Any] = {}
    for set_name, s in result["sets"].items():
        rows = s["clips"]
        per: dict[str, Any] = {}
        for k in TRACKERS:
            if k not in rows[0]:
                continue
            d: dict[str, Any] = {m: float(np.mean([r[k][m] for r in rows])) for m in ("f", "cmlt", "amlt")}
            if "downbeat_f" in rows[0][k]:
                d["downbeat_f"] = float(np.mean([r[k]["downbeat_f"] for r in rows]))
            if "relock_s" in rows[0][k]:
                secs = [r[k]["relock_s"] if r[k]["relock_s"] is not None else float("inf") for r in rows]
                bts = [r[k]["relock_beats"] if r[k]["relock_beats"] is not None else float("inf") for r in rows]
                d["relock_s_median"] = float(np.median(secs))
                d["relock_beats_median"] = float(np.median(bts))
                d["never_relocked"] = sum(r[k]["relock_s"] is None for r in rows)
            d["cpu_s_per_s"] = s["cpu_s_per_s"][k]
            per[k] = d
        summ[set_name] = per
    return summ


def synthetic_checks(kind: str) -> dict[str, Any]:
    """Tempo accuracy on steady clicks and beats needed to re-lock after a tempo jump."""
    steady = {}
    for bpm in (72.0, 97.0, 120.0, 151.0):
        sig = SyntheticSignal.clicks([(16.0, bpm, bpm)], noise_level=0.01)
        a = analyze_signal(sig.samples, ENGINE_SAMPLE_RATE, tracker=kind)
        steady[f"{bpm:g}"] = {"bpm_est": a.bpm, "abs_err_bpm": abs(a.bpm - bpm)}
    jumps = {}
    for b0, b1 in ((100.0, 140.0), (140.0, 100.0), (120.0, 90.0), (80.0, 110.0)):
        sig = SyntheticSignal.clicks([(12.0, b0, b0), (12.0, b1, b1)], noise_level=0.01)
        a = analyze_signal(sig.samples, ENGINE_SAMPLE_RATE, tracker=kind)
        after = [(t, b) for t, b in zip(a.beats, a.beat_bpm, strict=True) if t > 12.0]
        ok = [abs(b - b1) < 1.5 and float(np.min(np.abs(sig.beats - t))) < 0.07 for t, b in after]
        k = next((i for i in range(len(ok)) if all(ok[i:])), None)
        jumps[f"{b0:g}->{b1:g}"] = {"beats_to_relock": k, "seconds_to_relock": (after[k][0] - 12.0) if k is not None
                                    else None}
    return {"steady": steady, "jumps": jumps}


def _plot(path: Path, summ: dict[str, Any], cost: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 5), gridspec_kw={"width_ratios": [3, 1.4, 2]})
    sets = list(summ)
    kinds = [k for k in TRACKERS if any(k in summ[s] for s in sets)]
    idx = np.arange(len(sets))
    w = 0.8 / len(kinds)
    for i, k in enumerate(kinds):
        ax1.bar(idx + (i - (len(kinds) - 1) / 2) * w, [summ[s].get(k, {}).get("f", 0.0) for s in sets], w,
                label=LABELS[k])
    ax1.set_xticks(idx, sets)
    ax1.set_ylabel("F-measure (70 ms, first 5 s trimmed)")
    ax1.set_ylim(0, 1.3)
    ax1.set_yticks(np.arange(0, 1.01, 0.2))
    ax1.set_title("Beat tracking, all trackers on the same clips")
    ax1.legend(loc="upper center", fontsize=8, ncol=2)
    jump = summ.get("tempo jump", {})
    vals = [min(jump[k]["relock_beats_median"], 30.0) if k in jump else 0.0 for k in kinds]
    ax2.bar(np.arange(len(kinds)), vals, color=[f"C{i}" for i in range(len(kinds))])
    ax2.set_xticks(np.arange(len(kinds)), [k for k in kinds], rotation=30)
    ax2.set_ylabel("median beats to re-lock (capped at 30)")
    ax2.set_title("Tempo jump")
    names = [n.split(" (")[0] for n in cost]
    p50 = [r["p50_frac"] * 100 for r in cost.values()]
    p99 = [r["p99_frac"] * 100 for r in cost.values()]
    j = np.arange(len(names))
    ax3.barh(j + 0.2, p50, 0.4, label="p50")
    ax3.barh(j - 0.2, p99, 0.4, label="p99")
    ax3.set_yticks(j, names, fontsize=8)
    ax3.set_xlabel("% of the real-time budget (hop or frame duration)")
    ax3.set_title("Processing cost per call (shared machine)")
    ax3.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _kept(record: dict[str, Any]) -> str:
    if record.get("status") != "ok":
        return f"not built: {record.get('status')}"
    tracks = record["tracks"]
    return f"{sum(t['kept'] for t in tracks.values())} of {len(tracks)} excerpts kept"


def _fmt(v: float | None, spec: str = ".3f") -> str:
    if v is None:
        return "-"
    return "never" if v == float("inf") else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a few clips of each set")
    ap.add_argument("--no-peers", action="store_true", help="skip the madmom and BeatNet peers")
    ap.add_argument("--out", default=str(Path(__file__).parent / "reports"), help="report directory")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from engine.audio.source import demo_path

    x, sr = read_wav(demo_path())
    print("per-hop cost on the demo clip ...", flush=True)
    cost = per_hop_cost(resample(np.tile(x, 2), sr))
    print("beat sets ...", flush=True)
    result = run_sets(args.quick, not args.no_peers, out)
    summ = summarise(result)
    print("synthetic tempo checks ...", flush=True)
    synth = {k: synthetic_checks(k) for k in ("hmm", "hybrid", "neural")}
    hops_per_s = ENGINE_SAMPLE_RATE / HOP
    beat_path_us = (cost["OnsetStrength (ODF per hop)"]["p50_us"] + cost["BeatTracker (per hop)"]["p50_us"]
                    + cost["BeatActivation (beat network, per hop)"]["p50_us"])
    hmm_path_us = beat_path_us + cost["BeatHMM (tempo x phase filter, per hop)"]["p50_us"]
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "system": platform.platform(), "cpus": os.cpu_count(), "loadavg_1min": os.getloadavg()[0]},
        "engine_rate": ENGINE_SAMPLE_RATE, "hop": HOP, "hop_us": HOP_US,
        "per_call_cost": cost,
        "neural_beat_path_cpu_s_per_s": beat_path_us * hops_per_s / 1e6,
        "hmm_beat_path_cpu_s_per_s": hmm_path_us * hops_per_s / 1e6,
        "summary": summ,
        "sets": result["sets"],
        "madmom_status": result["madmom_status"],
        "beatnet_status": result["beatnet_status"],
        "real_set": result["real_set"],
        "synthetic": synth,
    }
    (out / "analysis.json").write_text(json.dumps(report, indent=2))
    _plot(out / "analysis.png", summ, cost)

    load = report["machine"]["loadavg_1min"]
    md = ["# Analysis benchmark", "",
          "Written by `python3 -m bench.analysis_bench` "
          f"({'quick subset' if args.quick else 'full sets'}; {report['machine']['system']}, "
          f"Python {report['machine']['python']}, {report['machine']['cpus']} CPUs, "
          f"1-min load average {load:.1f} at the end). **The machine was shared with other jobs while this ran "
          "(training, other benchmarks): CPU figures and p99 include that contention.**", "",
          "## Beat tracking, side by side (same clips, one run)", "",
          "mir_eval F-measure (70 ms), CMLt and AMLt with the first 5 s trimmed; every tracker is causal "
          "(online). madmom: `RNNBeatProcessor(online=True)` + `DBNBeatTrackingProcessor(fps=100, online=True)` "
          f"in `.venv-peers` ({result['madmom_status']}). BeatNet 1.1.3: `BeatNet(1, mode=\"online\", "
          "inference_model=\"PF\")` (its causal CRNN + particle filter; in `.venv-peers` with librosa, pyaudio "
          f"and the system's torch; {result['beatnet_status']}). aubio: `aubio.tempo(\"default\", 512, 256, 22050)`. "
          "**hmm** (the default beat output): the online tempo x phase HMM on the beat network's activation "
          "mixed with the onset function (`engine/analysis/beat_hmm.py`); its dance features are hybrid's, "
          "bit for bit.", "",
          "Sets: **rendered** = the project's 27-clip beat set (music21 tunes that the network never trained "
          "on; the comb tracker's settings were tuned on it); **stress** = 12 of those clips in a room "
          "(early reflections + a dark tail, RT60 0.6-1.5 s) under crowd babble or pink noise at 0-8 dB SNR "
          "(generators unlike the training augmentation's); **tempo jump** = 6 held-out tunes that jump "
          f"20-35 % after {JUMP_AT_BEATS} beats; **real (consensus)** = 30 s excerpts of the game music in "
          "Debian's xmoto-data, extremetuxracer-data and asc-music (never used for training), kept only where "
          "three offline trackers (Essentia multifeature, Essentia Degara, librosa; never madmom) agree "
          f"pairwise with F >= 0.9; the reference is Essentia's multifeature beats "
          f"({_kept(result['real_set'])}); no downbeat reference there.", "",
          "| set | metric | " + " | ".join(LABELS[k] for k in TRACKERS) + " |",
          "|---|---|" + "---:|" * len(TRACKERS)]
    for set_name, per in summ.items():
        metrics = ["f", "cmlt", "amlt", "downbeat_f", "cpu_s_per_s"]
        if set_name == "tempo jump":
            metrics = ["f", "relock_beats_median", "relock_s_median", "never_relocked", "cpu_s_per_s"]
        for m in metrics:
            cells = []
            for k in TRACKERS:
                v = per.get(k, {}).get(m)
                spec = ".1f" if m.startswith("relock") else ("d" if m == "never_relocked" else ".3f")
                cells.append(_fmt(v, spec) if v is not None else "-")
            md.append(f"| {set_name} | {m} | " + " | ".join(cells) + " |")
    md += ["", "CPU s per s: whole-clip process time; for the groovecast trackers it includes all 30 fps "
           "features (MFCC, chroma), not only beats. The beat path of hybrid/neural alone (onset features + network + "
           f"tracker, per-hop p50 x {hops_per_s:.1f} hops/s): "
           f"**{report['neural_beat_path_cpu_s_per_s']:.3f} s per s** of audio on one core; of hmm (the same plus "
           f"the filter): **{report['hmm_beat_path_cpu_s_per_s']:.3f} s per s**. The peers' CPU is their own "
           "process's time on the whole clip.", "",
           "Re-lock: the first reference beat after the jump from which every reference beat has an estimate "
           "within 70 ms and every estimate a reference beat, to the end; its distance from the jump in "
           "beats and seconds (median over clips; a clip that never re-locks counts as never).", ""]
    md += ["## Per-call cost (streaming, one call per hop of 256 samples = "
           f"{HOP_US:.0f} µs of audio, or per 30 fps frame = {SAMPLES_PER_FRAME / ENGINE_SAMPLE_RATE * 1e6:.0f} µs)",
           "", "| stage | p50 µs | p99 µs | p50 of budget | p99 of budget |", "|---|---:|---:|---:|---:|"]
    for name, r in cost.items():
        md.append(f"| {name} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['p50_frac']:.1%} | {r['p99_frac']:.1%} |")
    md += ["", "<details><summary>per clip (F)</summary>", "",
           "| set | clip | " + " | ".join(TRACKERS) + " | hmm downbeat F | hybrid downbeat F | hmm BPM | "
           "hybrid BPM |", "|---|---|" + "---:|" * (len(TRACKERS) + 4)]
    for set_name, s in result["sets"].items():
        for r in s["clips"]:
            cells = [f"{r[k]['f']:.3f}" if k in r else "-" for k in TRACKERS]
            md.append(f"| {set_name} | {r['clip']} | " + " | ".join(cells)
                      + f" | {_fmt(r['hmm'].get('downbeat_f'))} | {_fmt(r['hybrid'].get('downbeat_f'))} | "
                      f"{r['hmm_bpm']:.1f} | {r['hybrid_bpm']:.1f} |")
    md += ["", "</details>", "", "## Synthetic clicks", "",
           "| steady BPM | hmm estimate | hybrid (= comb) estimate | neural estimate |", "|---:|---:|---:|---:|"]
    for k in synth["neural"]["steady"]:
        hm, hy, ne = (synth[kind]["steady"][k]["bpm_est"] for kind in ("hmm", "hybrid", "neural"))
        md.append(f"| {k} | {hm:.2f} | {hy:.2f} | {ne:.2f} |")
    md += ["", "| click tempo jump at 12 s | hmm: beats to re-lock (s) | hybrid: beats to re-lock (s) | "
           "neural: beats to re-lock (s) |", "|---|---:|---:|---:|"]
    for k in synth["neural"]["jumps"]:
        cells = []
        for kind in ("hmm", "hybrid", "neural"):
            v = synth[kind]["jumps"][k]
            secs = f"{v['seconds_to_relock']:.2f}" if v["seconds_to_relock"] is not None else "-"
            cells.append(f"{v['beats_to_relock']} ({secs})")
        md.append(f"| {k} | " + " | ".join(cells) + " |")
    md += ["", "![analysis](analysis.png)", ""]
    (out / "analysis.md").write_text("\n".join(md))
    for set_name, per in summ.items():
        print(f"{set_name}: " + ", ".join(f"{k} F {v['f']:.3f}" for k, v in per.items()), flush=True)
    print(f"report in {out}/analysis.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

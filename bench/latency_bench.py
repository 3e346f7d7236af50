"""Runtime measures: steady playout, processing latency, reaction latency, beat sync, stalls, capacity.

Run ``groovecast bench latency [--json]`` (or ``python3 -m bench.latency_bench``). Writes
``bench/reports/latency.{md,json,png}``. Every figure comes from the engine's own live path
(:class:`engine.runtime.runtime.DanceRuntime`, built by :mod:`engine.runtime.assemble`); nothing is
simulated except the audio, which is synthesised with exact beat times so errors can be measured.

* steady playout, at 30 and 60 fps, beat-guided and plain: real-time runs (``--pacing-seconds``, 10 min by
  default) with a WebSocket client that keeps up and one that churns: the delay D chosen at start,
  frame-interval jitter (server hand-off and client receive), late and held frames, the share of frames the
  keeping-up client received, processing latency (client receive minus the capture time of the newest
  audio the step used, first frame of each step), step time, resident memory;
* reaction latency: music after silence (first frame leaving the idle pose) and a tempo jump (first
  frame generated from a tempo belief within 4 % of the new tempo), on the output timeline, plus the
  median processing latency;
* beat sync, GPT and retrieval: motion beats (local minima of mean joint speed) against the music's true
  beats on the output timeline, with a chance level from randomly shifted beat grids;
* input stalls: the source goes quiet for a second every minute (``--soak-seconds``);
* capacity, GPT and retrieval: step time for N performers stepped together; real time at 30 fps means a
  step (4 frames, 133 ms) for the whole batch within 133 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.latency_args import add_arguments
from engine.clock import SYSTEM_CLOCK
from engine.frames import ENGINE_SAMPLE_RATE, MODEL_FPS, AudioBlock, PoseFrame

SR = ENGINE_SAMPLE_RATE
TOKEN_S = 4 / MODEL_FPS


def _progress(msg: str) -> None:
    print(f"[bench latency] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ audio


def music(duration_s: float, bpm_segments: list[tuple[float, float, float]], silence_s: float = 0.0,
          seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic rhythm track with exact beats (after ``silence_s`` of silence). Returns (audio, beats)."""
    from engine.audio.synth import beat_times_from_tempo
    from engine.train.synth_music import render_track

    beats = beat_times_from_tempo(bpm_segments, first_beat_s=silence_s + 0.25)
    beats = beats[beats < duration_s]
    x = render_track(beats, duration_s, seed=seed)
    x[: int(silence_s * SR)] = 0.0
    return x.astype(np.float32), beats


def paced_blocks(x: np.ndarray, block: int = 512, stall_every_s: float = 0.0, stall_s: float = 0.0,
                 stop: threading.Event | None = None) -> Iterator[AudioBlock]:
    """Release blocks in real time, as a device would; optionally go quiet for ``stall_s`` every ``stall_every_s``."""
    clock = SYSTEM_CLOCK
    start = clock.monotonic_ns()
    next_stall = stall_every_s
    for s in range(0, len(x), block):
        if stop is not None and stop.is_set():
            return
        b = x[s : s + block]
        end = s + len(b)
        if stall_every_s > 0 and end / SR >= next_stall:
            start += int(stall_s * 1e9)  # the device delivers nothing for stall_s, then resumes
            next_stall += stall_every_s
        clock.sleep_until_ns(start + int(end * 1e9 / SR))
        yield AudioBlock(end, clock.monotonic_ns(), b.copy())


# ------------------------------------------------------------------------------------------------ runtime


#: ``--beat-guidance``: candidates for every generator this bench builds (None: the model card's setting).
BEAT_GUIDANCE: list[int | None] = [None]


def make_runtime(model_dir: Path | str, performers: int = 1, backend: str = "torch", realtime: bool = True,
                 threads: int = 1, sinks: list[Callable[[PoseFrame], None]] | None = None, seed: int = 0,
                 fps: int = 30, guidance: int | None = None, rt_priority: int = 0) -> Any:
    from engine.runtime.assemble import EngineSpec, ModelSpec, build_runtime
    from engine.runtime.runtime import RuntimeConfig

    g = BEAT_GUIDANCE[0] if guidance is None else guidance
    spec = EngineSpec(ModelSpec(model=model_dir, backend=backend, performers=performers, threads=threads, seed=seed,
                                beat_guidance=g),
                      RuntimeConfig(realtime=realtime, output_fps=fps, rt_priority=rt_priority))
    return build_runtime(spec, list(sinks or []))


def _pct(a: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(a, dtype=np.float64), q)) if len(a) else float("nan")


def _summary(ms: list[float] | np.ndarray) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": _pct(ms, 50), "p95_ms": _pct(ms, 95), "p99_ms": _pct(ms, 99),
            "max_ms": float(np.max(ms)) if len(ms) else float("nan")}


async def _ws_client(url: str, out: list[Any], stop: asyncio.Event) -> None:
    from streams.client import PoseClient

    async with PoseClient(url) as c:
        while not stop.is_set():
            try:
                p = await asyncio.wait_for(c.recv_pose(), timeout=0.5)
            except TimeoutError:
                continue
            out.append(p)


async def _churn_client(url: str, stop: asyncio.Event, counter: list[int]) -> None:
    """Connects, reads a few frames, drops the connection without a close handshake; again and again."""
    from streams.client import PoseClient

    while not stop.is_set():
        try:
            c = PoseClient(url)
            await c.__aenter__()
            for _ in range(5):
                await asyncio.wait_for(c.recv_pose(), timeout=2.0)
            assert c.ws is not None
            c.ws.transport.abort()  # vanish mid-stream
            counter[0] += 1
        except Exception:  # a refused or timed-out attempt counts as nothing; try again
            pass
        await asyncio.sleep(0.2)


def run_live(model_dir: Path | str, x: np.ndarray, backend: str, churn: bool = False, stall_every_s: float = 0.0,
             stall_s: float = 0.0, rss_every_s: float = 10.0, fps: int = 30, guidance: int | None = None,
             block: int = 256, rt_priority: int = 0) -> dict[str, Any]:
    """Run the runtime in real time behind a WebSocket server; a client records every pose."""
    from streams.ws_server import PoseServer

    sink_times: list[int] = []
    rt = make_runtime(model_dir, backend=backend, sinks=[lambda f: sink_times.append(SYSTEM_CLOCK.monotonic_ns())],
                      fps=fps, guidance=guidance, rt_priority=rt_priority)
    received: list[Any] = []
    churned = [0]
    rss: list[tuple[float, float]] = []
    load: list[float] = []  # 1-minute load average, sampled with the RSS

    async def main() -> None:
        server = PoseServer("127.0.0.1", 0, on_control=rt.submit_control)
        await server.start()
        rt.sinks.append(server.publish_threadsafe)
        stop = asyncio.Event()
        url = f"ws://127.0.0.1:{server.port}/ws"
        tasks = [asyncio.create_task(_ws_client(url, received, stop))]
        if churn:
            tasks.append(asyncio.create_task(_churn_client(url, stop, churned)))
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        t0 = SYSTEM_CLOCK.monotonic_ns()

        async def sample_rss() -> None:
            while not stop.is_set():
                rss.append(((SYSTEM_CLOCK.monotonic_ns() - t0) / 1e9, _rss_mb()))
                load.append(os.getloadavg()[0])
                await asyncio.sleep(rss_every_s)

        tasks.append(asyncio.create_task(sample_rss()))
        await loop.run_in_executor(None, rt.run, paced_blocks(x, block=block, stall_every_s=stall_every_s,
                                                                stall_s=stall_s))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()

    asyncio.run(main())
    per_step = 4 * fps // 30  # output ticks per model step
    first = [p for p in received if p.frame_index % per_step == 0 and p.src_monotonic_ns > 0]
    lat = [(p.recv_ns - p.src_monotonic_ns) / 1e6 for p in first]
    pub = [(p.server_ns - p.src_monotonic_ns) / 1e6 for p in first]
    intervals = np.diff(np.asarray(sink_times, dtype=np.float64)) / 1e6
    recv_iv = np.diff(np.asarray([p.recv_ns for p in received], dtype=np.float64)) / 1e6
    st = rt.stats
    lag = np.asarray(st.send_lag_ns, dtype=np.float64) / 1e6
    ticks = {p.frame_index for p in received}
    span = (max(ticks) - min(ticks) + 1) if ticks else 0
    return {
        "fps": fps,
        "delay": None if st.delay is None else {
            "d_ms": st.delay.delay_ns / 1e6, "step_p99_ms": st.delay.step_p99_ns / 1e6,
            "block_ms": st.delay.block_ns / 1e6, "margin_ms": st.delay.margin_ns / 1e6,
            "interp_ms": st.delay.interp_ns / 1e6, "text": st.delay.describe()},
        "late": st.late,
        "send_lag": _summary(lag),
        "client_jitter": _summary(np.abs(recv_iv - 1000.0 / fps)) if len(recv_iv) else {},
        "delivered": {"distinct_frames": len(ticks), "span": span,
                      "fraction": len(ticks) / span if span else float("nan"),
                      "skipped": span - len(ticks)},
        "latency": _summary(lat),
        "publish_latency": _summary(pub),
        "step_decode": _summary(list(st.step_ms)),
        "frames_out": st.frames_out,
        "missed": st.missed,
        "stalled_frames": st.stalled_frames,
        "intervals_ms": intervals,
        "jitter": _summary(np.abs(intervals - 1000.0 / fps)) if len(intervals) else {},
        "received": len(received),
        "churned_connections": churned[0],
        "rss_mb": rss,
        "load_average": {"samples": len(load), "mean": float(np.mean(load)) if load else float("nan"),
                         "max": float(np.max(load)) if load else float("nan")},
        "block": block,
        "rt_priority": st.rt_priority,
        "latency_series": lat,
    }


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    except OSError:
        return float("nan")


# ------------------------------------------------------------------------------------------------ measures


def reaction(model_dir: Path | str, backend: str) -> dict[str, Any]:
    """Music after silence, and a tempo jump: output-timeline delay to the first responding frame."""
    out: list[PoseFrame] = []
    x, _ = music(10.0, [(10.0, 120.0, 120.0)], silence_s=4.0)
    rt = make_runtime(model_dir, backend=backend, realtime=False, sinks=[out.append])
    rt.run(iter(_blocks_fast(x)))
    _, idle_q = rt.model.idle_pose()
    start_f = 4.0 * MODEL_FPS
    moved = next((f.frame_index for f in out if f.frame_index >= start_f and _max_angle(f.rotations, idle_q) > 2.0),
                 None)
    music_start_ms = float("nan") if moved is None else (moved - start_f) / MODEL_FPS * 1000.0

    # Tempo jump 100 -> 140 BPM at 12 s: first token generated from a belief within 4 % of 140.
    out2: list[PoseFrame] = []
    x2, _ = music(20.0, [(12.0, 100.0, 100.0), (8.0, 140.0, 140.0)])
    rt2 = make_runtime(model_dir, backend=backend, realtime=False, sinks=[out2.append])
    rt2.run(iter(_blocks_fast(x2)))
    jump_ms = float("nan")
    for tok, bpm in rt2.stats.token_bpm:
        t = tok * TOKEN_S
        if t >= 12.0 and abs(bpm - 140.0) / 140.0 < 0.04:
            jump_ms = (t - 12.0) * 1000.0
            break
    return {"music_start_ms": music_start_ms, "tempo_jump_ms": jump_ms}


def _blocks_fast(x: np.ndarray, block: int = 512) -> Iterator[AudioBlock]:
    for s in range(0, len(x), block):
        b = x[s : s + block]
        yield AudioBlock(s + len(b), SYSTEM_CLOCK.monotonic_ns(), b.copy())


def _max_angle(q: np.ndarray, ref: np.ndarray) -> float:
    d = np.abs(np.sum(q * ref, axis=-1)).clip(0, 1)
    return float(np.degrees(2 * np.arccos(d)).max())


def beat_sync(model_dir: Path | str, backend: str, tempi: tuple[float, ...] = (96.0, 110.0, 124.0)) -> dict[str, Any]:
    """Motion beats vs true music beats on the output timeline (fast mode; same path as live)."""
    from engine.models.pose_repr import metric_cmu_skeleton
    from engine.skeleton import rotations as R
    from engine.skeleton.skeleton import forward_kinematics
    from engine.train.metrics import motion_beats

    skel = metric_cmu_skeleton()
    errs: list[float] = []
    chance: list[float] = []
    per_clip = []
    rng = np.random.default_rng(0)
    for i, bpm in enumerate(tempi):
        out: list[PoseFrame] = []
        x, beats = music(40.0, [(40.0, bpm, bpm)], seed=100 + i)
        rt = make_runtime(model_dir, backend=backend, realtime=False, sinks=[out.append], seed=i)
        rt.run(iter(_blocks_fast(x)))
        frames = [f for f in out if f.performer == 0]
        root = np.stack([f.root_position for f in frames]).astype(np.float64)
        rot = R.quat_to_matrix(np.stack([f.rotations for f in frames]).astype(np.float64))
        pos = forward_kinematics(skel, root, rot)
        mb, _ = motion_beats(pos, MODEL_FPS, sigma=1.5)
        mb_s = (mb + 1) / MODEL_FPS  # speed[i] is between frames i and i+1
        use = beats[(beats > 5.0) & (beats < frames[-1].time_s - 1.0)]
        if len(mb_s) == 0 or len(use) == 0:
            continue
        e = [1000.0 * float(np.min(np.abs(mb_s - b))) for b in use]
        period = 60.0 / bpm
        shifted = [1000.0 * float(np.min(np.abs(mb_s - (b + rng.uniform(0, period))))) for b in use]
        errs += e
        chance += shifted
        per_clip.append({"bpm": bpm, "median_ms": _pct(e, 50), "p90_ms": _pct(e, 90), "motion_beats": len(mb_s),
                         "music_beats": len(use)})
    return {"median_ms": _pct(errs, 50), "p90_ms": _pct(errs, 90), "chance_median_ms": _pct(chance, 50),
            "chance_p90_ms": _pct(chance, 90), "clips": per_clip}


def capacity(model_dir: Path | str, backend: str, sizes: tuple[int, ...], threads: int, steps: int = 20) -> list[dict]:
    """Batched step time per token (GPT: step + guidance + decode) for N performers."""
    from engine.runtime.assemble import ModelSpec, build_model

    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        gen: Any = build_model(ModelSpec(model=model_dir, backend=backend, performers=n, threads=threads,
                                         beat_guidance=BEAT_GUIDANCE[0]))
        be = getattr(gen, "backend", None)
        times = []
        conds = _beat_conditions(steps + 3, rng)
        for i in range(steps + 3):
            cond = conds[i]
            t0 = SYSTEM_CLOCK.monotonic_ns()
            gen.step(cond)
            if i >= 3:
                times.append((SYSTEM_CLOCK.monotonic_ns() - t0) / 1e6)
        p99 = _pct(times, 99)
        rows.append({"performers": n, "p50_ms": _pct(times, 50), "p99_ms": p99, "realtime": p99 < TOKEN_S * 1000,
                     "backend": be.name if be is not None else "numpy",
                     "device": be.device if be is not None else "cpu", "threads": threads})
        _progress(f"capacity {n:4d} performers: p50 {rows[-1]['p50_ms']:.1f} ms, p99 {p99:.1f} ms per token")
        if p99 > 4 * TOKEN_S * 1000:
            break
    return rows


def _beat_conditions(n: int, rng: np.random.Generator, bpm: float = 118.0) -> np.ndarray:
    """Step conditioning rows of music at ``bpm`` with random features: a predicted beat every few steps,
    so beat-guided steps are measured at their real share."""
    from engine.models.conditioning import token_condition

    period = 60.0 / bpm
    rows = []
    for t in range(n):
        f0 = 4 * t / MODEL_FPS
        nxt = 0.25 + np.ceil(max(0.0, f0 - 0.25) / period) * period
        feats = rng.random((4, 40)).astype(np.float32)
        rows.append(token_condition(feats, np.full(4, period), np.full(4, nxt - f0 + 4 / MODEL_FPS), 1))
    return np.stack(rows)


# ------------------------------------------------------------------------------------------------ report


def _guidance_in_words(model_dir: Path, candidates: int | None) -> str:
    """The beat-guidance setting the bench runs with, in words."""
    from engine.models.dance_model import load_dance_model

    g = load_dance_model(model_dir).beat_guidance
    g = g if candidates is None else g.with_candidates(candidates)
    return f"{g.candidates} candidates, weight {g.weight:g}" if g.enabled else "off (plain sampling)"


def _pacing_row(live: dict[str, Any], guided: bool) -> dict[str, Any]:
    st = live
    return {"fps": live["fps"], "guided": guided, "delay": live["delay"], "jitter": live["jitter"],
            "client_jitter": live["client_jitter"], "late": live["late"], "held": live["missed"],
            "send_lag": live["send_lag"], "delivered": live["delivered"], "frames_out": live["frames_out"],
            "latency": live["latency"], "publish_latency": live["publish_latency"], "step": live["step_decode"],
            "rss_start_mb": st["rss_mb"][0][1] if st["rss_mb"] else float("nan"),
            "rss_end_mb": st["rss_mb"][-1][1] if st["rss_mb"] else float("nan"),
            "churned_connections": live["churned_connections"], "load_average": live["load_average"],
            "block": live["block"], "rt_priority": live["rt_priority"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.runtime.assemble import default_model_dir

    model_dir = Path(args.model) if args.model else default_model_dir()
    BEAT_GUIDANCE[0] = args.beat_guidance
    report: dict[str, Any] = {"model": str(model_dir), "backend": args.backend, "machine": _machine()}
    report["beat_guidance"] = _guidance_in_words(model_dir, args.beat_guidance)
    report["pacing_seconds"] = args.pacing_seconds
    report["blocksize"] = args.blocksize
    rows = []
    plots: dict[str, Any] = {}
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    for guided in (True, False):
        for fps in (30, 60):
            if f"{fps}{'g' if guided else 'p'}" not in wanted:
                continue
            name = f"{fps} fps, {'beat-guided' if guided else 'plain'}"
            _progress(f"steady playout: {args.pacing_seconds:.0f} s real time, {name}, a keeping-up and a churning "
                      "WebSocket client")
            x, _ = music(args.pacing_seconds, [(args.pacing_seconds, 118.0, 118.0)], seed=11)
            live = run_live(model_dir, x, args.backend, churn=True, fps=fps, guidance=None if guided else 0,
                            block=args.blocksize, rt_priority=args.rt_priority)
            row = _pacing_row(live, guided)
            rows.append(row)
            _progress(f"  D {row['delay']['d_ms'] if row['delay'] else float('nan'):.1f} ms, jitter p99 "
                      f"{row['jitter'].get('p99_ms', float('nan')):.2f} ms, late {row['late']}, held {row['held']}, "
                      f"delivered {row['delivered']['fraction'] * 100:.2f} %, latency p99 "
                      f"{row['latency']['p99_ms']:.1f} ms, load average {row['load_average']['mean']:.1f}")
            if not plots:
                plots["latency_series"] = live["latency_series"]
                plots["intervals"] = live["intervals_ms"].tolist()
                plots["row"] = name
                plots["fps"] = fps
    report["steady_playout"] = rows
    report["rt_priority"] = args.rt_priority
    if args.pacing_only:
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        report["_plots"] = plots
        return report
    _progress("reaction latency")
    react = reaction(model_dir, args.backend)
    p50 = rows[0]["latency"]["p50_ms"]
    react["processing_p50_ms"] = p50
    react["music_start_total_ms"] = react["music_start_ms"] + p50
    react["tempo_jump_total_ms"] = react["tempo_jump_ms"] + p50
    report["reaction"] = react
    _progress(f"  music start {react['music_start_total_ms']:.0f} ms, tempo jump {react['tempo_jump_total_ms']:.0f} ms")
    _progress("beat sync (GPT, then retrieval)")
    report["beat_sync"] = beat_sync(model_dir, args.backend)
    bsr = report["beat_sync"]
    _progress(f"  median {bsr['median_ms']:.0f} ms (chance {bsr['chance_median_ms']:.0f})")
    report["beat_sync_retrieval"] = beat_sync("retrieval", args.backend)
    _progress(f"  retrieval median {report['beat_sync_retrieval']['median_ms']:.0f} ms")
    _progress(f"input stalls: {args.soak_seconds:.0f} s real time, the source quiet for 1 s every 60 s")
    xs, _ = music(args.soak_seconds, [(args.soak_seconds, 112.0, 112.0)], seed=12)
    soak = run_live(model_dir, xs, args.backend, churn=True, stall_every_s=60.0, stall_s=1.0, block=args.blocksize)
    rss = soak["rss_mb"]
    report["stalls"] = {
        "seconds": args.soak_seconds, "frames_out": soak["frames_out"], "held": soak["missed"],
        "late": soak["late"], "stalled_frames": soak["stalled_frames"], "jitter": soak["jitter"],
        "churned_connections": soak["churned_connections"],
        "rss_start_mb": rss[0][1] if rss else float("nan"), "rss_end_mb": rss[-1][1] if rss else float("nan"),
        "load_average": soak["load_average"],
    }
    _progress("capacity (GPT, then retrieval)")
    sizes = tuple(int(s) for s in args.capacity_sizes.split(","))
    report["capacity"] = capacity(model_dir, args.backend, sizes, threads=2)
    ok = [r["performers"] for r in report["capacity"] if r["realtime"]]
    report["capacity_realtime_performers"] = max(ok) if ok else 0
    rsizes = tuple(int(s) for s in args.retrieval_sizes.split(","))
    report["capacity_retrieval"] = capacity("retrieval", args.backend, rsizes, threads=2)
    ok = [r["performers"] for r in report["capacity_retrieval"] if r["realtime"]]
    report["capacity_retrieval_realtime_performers"] = max(ok) if ok else 0
    report["gpu"] = "no GPU figure exists: no GPU was lent to this session"
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["_plots"] = plots
    return report


def _machine() -> dict[str, Any]:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "processor": _cpu_name(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "nice": os.nice(0)}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_report(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    plots = report.pop("_plots")
    (out / "latency.json").write_text(json.dumps(report, indent=2, default=float))
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    lat = plots["latency_series"]
    ax[0].hist(lat, bins=60, color="tab:blue")
    ax[0].axvline(25.0, color="red", ls="--", label="goal D 25 ms")
    ax[0].set_xlabel("processing latency (ms)")
    ax[0].set_title("audio available -> pose received (first frame of each step)")
    ax[0].legend()
    iv = np.asarray(plots["intervals"])
    ax[1].plot(np.arange(len(iv)) / plots.get("fps", 30), iv, lw=0.5)
    ax[1].set_xlabel("time (s)")
    ax[1].set_ylabel("frame interval (ms)")
    ax[1].set_title(f"output pacing ({plots.get('row', '30 fps, beat-guided')})")
    cap = report.get("capacity", [])
    ax[2].plot([r["performers"] for r in cap], [r["p99_ms"] for r in cap], "o-", label="GPT p99 step")
    rc = report.get("capacity_retrieval", [])
    ax[2].plot([r["performers"] for r in rc], [r["p99_ms"] for r in rc], "s-", label="retrieval p99 step")
    ax[2].axhline(TOKEN_S * 1000, color="red", ls="--", label="token period 133 ms")
    if cap or rc:
        ax[2].set_xscale("log", base=2)
    ax[2].set_xlabel("performers (batched)")
    ax[2].set_ylabel("ms per token")
    ax[2].set_title("capacity on CPU")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    (out / "latency.md").write_text(markdown(report))


def _f(x: Any, fmt: str = ".2f") -> str:
    try:
        return format(float(x), fmt)
    except (TypeError, ValueError):
        return "-"


def _pacing_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| run | D ms | jitter p50 / p99 / max ms (server) | client jitter p99 ms | late | held | delivered | "
        "skipped | latency p50 / p99 ms | step p50 / p99 ms | RSS MB | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        j, cj, d, la = row["jitter"], row["client_jitter"], row["delivered"], row.get("load_average", {})
        dm = row["delay"]["d_ms"] if row["delay"] else float("nan")
        lines.append(
            f"| {row['fps']} fps, {'guided' if row['guided'] else 'plain'} | {_f(dm, '.1f')} | "
            f"{_f(j.get('p50_ms'))} / {_f(j.get('p99_ms'))} / {_f(j.get('max_ms'))} | {_f(cj.get('p99_ms'))} | "
            f"{row['late']} | {row['held']} | {d['distinct_frames']}/{d['span']} "
            f"({_f(100 * d['fraction'], '.2f')} %) | {d.get('skipped', '-')} | "
            f"{_f(row['latency']['p50_ms'], '.1f')} / {_f(row['latency']['p99_ms'], '.1f')} | "
            f"{_f(row['step']['p50_ms'])} / {_f(row['step']['p99_ms'])} | "
            f"{_f(row['rss_start_mb'], '.0f')} -> {_f(row['rss_end_mb'], '.0f')} | "
            f"{_f(la.get('mean'), '.1f')} / {_f(la.get('max'), '.1f')} |")
    lines += ["", "D as chosen at start: " + "; ".join(
        f"{row['fps']} fps {'guided' if row['guided'] else 'plain'}: {row['delay']['text']}"
        for row in rows if row["delay"]) + ".", ""]
    return lines


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Runtime latency, steady playout, beat sync and capacity",
        "",
        f"Model `{r['model']}`, backend `{r['backend']}`, machine: {r['machine']}. The load average shows what "
        "else ran on the 2 cores while this was measured.",
        f"Beat-guided sampling: {r.get('beat_guidance', 'off (plain sampling)')} "
        "(`--beat-guidance N` to change; step cost of guidance alone: `guidance.md`).",
        f"Produced by `{r.get('command', 'groovecast bench latency')}`. ![plots](latency.png)",
        f"Audio blocks of {r.get('blocksize', 512)} samples; the playout thread "
        + (f"asked for real-time priority {r['rt_priority']} (SCHED_FIFO)" if r.get("rt_priority") else
           "at normal scheduling") + (f"; the bench process at nice {r['machine']['nice']}"
                                      if "nice" in r["machine"] else "") + ".",
        "",
        f"## Steady playout ({r['pacing_seconds']:.0f} s real time per row, audio blocks of "
        f"{r.get('blocksize', 512)} samples)",
        "",
        "Every frame is scheduled at audio time + D on the fixed grid; a WebSocket client on this host reads "
        "every frame while a second client connects, reads 5 frames and vanishes, over and over. Jitter is "
        "|interval - frame period| of the hand-off to the sinks (server) and of the client's receive times; "
        "late = left > 2 ms after its slot; held = its step was not ready at the slot (pose held, counted); "
        "delivered = distinct frame indices the keeping-up client received / frames sent; latency = client "
        "receive minus the capture time of the newest audio the step used (first frame of each step); skipped = "
        "frame indices the keeping-up client never received; load = the machine's 1-minute load average sampled "
        "every 10 s during the row (mean / max; 2 cores).",
        "",
    ]
    lines += _pacing_table(r["steady_playout"])
    for extra in r.get("extra_pacing", []):  # other runs quoted with their command (e.g. --rt-priority)
        lines += [f"### {extra['title']}", "", extra["text"], "", *_pacing_table(extra["rows"])]
    if r.get("notes"):
        lines += ["## Conditions, and what dominates the misses", ""] + [f"- {n}" for n in r["notes"]] + [""]
    if "reaction" not in r:  # --pacing-only
        return "\n".join(lines)
    re = r["reaction"]
    lines += [
        "## Reaction latency (goal: <= 150 ms)",
        "",
        "| change | output-timeline delay ms | + processing p50 = total ms |",
        "|---|---|---|",
        f"| music starts after silence (first frame leaving idle) | {re['music_start_ms']:.0f} | "
        f"{re['music_start_total_ms']:.0f} |",
        f"| tempo jump 100 -> 140 BPM (first token from the new tempo) | {re['tempo_jump_ms']:.0f} | "
        f"{re['tempo_jump_total_ms']:.0f} |",
        "",
        "## Beat sync (motion beats vs true music beats, output timeline)",
        "",
    ]
    for name, key in (("GPT", "beat_sync"), ("retrieval", "beat_sync_retrieval")):
        bs = r[key]
        lines += [f"{name}: median error {bs['median_ms']:.0f} ms, p90 {bs['p90_ms']:.0f} ms; chance level (beat grid "
                  f"shifted at random) median {bs['chance_median_ms']:.0f} ms, p90 {bs['chance_p90_ms']:.0f} ms.", "",
                  "| BPM | median ms | p90 ms | motion beats | music beats |", "|---|---|---|---|---|"]
        for c in bs["clips"]:
            lines.append(f"| {c['bpm']:.0f} | {c['median_ms']:.0f} | {c['p90_ms']:.0f} | {c['motion_beats']} | "
                         f"{c['music_beats']} |")
        lines.append("")
    sl = r["stalls"]
    lines += [
        f"## Input stalls ({sl['seconds']:.0f} s real time, 30 fps guided, the source quiet for 1 s every 60 s)",
        "",
        f"- frames out {sl['frames_out']}, held (step not ready) {sl['held']}, late {sl['late']}, held through "
        f"input stalls {sl['stalled_frames']}, churned connections {sl['churned_connections']}",
        f"- jitter p50 {_f(sl['jitter'].get('p50_ms'))} ms, p99 {_f(sl['jitter'].get('p99_ms'))} ms, max "
        f"{_f(sl['jitter'].get('max_ms'))} ms (the stalls themselves re-anchor the audio clock)",
        f"- resident memory {_f(sl['rss_start_mb'], '.0f')} MB -> {_f(sl['rss_end_mb'], '.0f')} MB",
        f"- load average during the run (1 min, mean / max): {_f(sl.get('load_average', {}).get('mean'), '.1f')} / "
        f"{_f(sl.get('load_average', {}).get('max'), '.1f')}",
        "",
    ]
    for name, key, tot in (("GPT (step + guidance + decode), 2 threads", "capacity", "capacity_realtime_performers"),
                           ("retrieval (numpy)", "capacity_retrieval", "capacity_retrieval_realtime_performers")):
        lines += [f"## Capacity: {name}", "", "| performers | p50 ms/step | p99 ms/step | real time (p99 < 133 ms) |",
                  "|---|---|---|---|"]
        for c in r[key]:
            lines.append(f"| {c['performers']} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} | "
                         f"{'yes' if c['realtime'] else 'no'} |")
        lines += ["", f"Performers in real time on this CPU: {r[tot]} (the model step alone; the whole live path "
                  "for retrieval: `retrieval.md`).", ""]
        if r.get(f"{key}_note"):
            lines += [r[f"{key}_note"], ""]
    lines += [f"GPU: {r['gpu']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    return cli(args, " ".join(["python3 -m bench.latency_bench", *(sys.argv[1:] if argv is None else argv)]))


def cli(args: argparse.Namespace, command: str | None = None) -> int:
    report = run(args)
    # the command that made it, with its sizes (reports are made at other sizes than the defaults)
    report["command"] = command or " ".join(["groovecast", *sys.argv[1:]])
    if str(args.out) != "-":
        write_report(dict(report), Path(args.out))
        _progress(f"wrote {Path(args.out) / 'latency.md'}")
    report.pop("_plots", None)
    if args.json:
        print(json.dumps(report, default=float))
    else:
        print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

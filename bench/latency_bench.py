"""Runtime measures: processing latency, reaction latency, beat sync, output pacing + soak, capacity.

Run ``groovecast bench latency [--json]`` (or ``python3 -m bench.latency_bench``). Writes
``bench/reports/latency.{md,json,png}``. Every figure comes from the engine's own live path
(:class:`engine.runtime.runtime.DanceRuntime`); nothing is simulated except the audio, which is
synthesised with exact beat times so errors can be measured.

* processing latency: a WebSocket client on this host receives every pose; for the first frame of each
  model step (lookahead 0, so that frame is due the moment its audio arrives) latency is the client's
  receive time minus the pose's ``src_monotonic_ns`` (the capture time of the newest audio the step
  used): analysis + step + decode + encode + send + loopback delivery;
* reaction latency: music after silence (first frame leaving the idle pose) and a tempo jump (first
  frame generated from a tempo belief within 4 % of the new tempo), on the output timeline, plus the
  median processing latency;
* beat sync: motion beats (local minima of mean joint speed) against the music's true beats on the
  output timeline, with a chance level from randomly shifted beat grids;
* output pacing + soak: a real-time run with two WebSocket clients (one connecting and dropping
  repeatedly) and a source that stalls for a second every minute: frame-interval jitter, missed frames,
  resident memory growth;
* capacity: batched step + decode time for N performers; real time at 30 fps means a token (4 frames,
  133 ms) per performer batch within 133 ms.
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


def make_runtime(model_dir: Path, performers: int = 1, backend: str = "torch", realtime: bool = True,
                 threads: int = 1, sinks: list[Callable[[PoseFrame], None]] | None = None, seed: int = 0) -> Any:
    from engine.runtime.assemble import EngineSpec, ModelSpec, build_runtime
    from engine.runtime.runtime import RuntimeConfig

    spec = EngineSpec(ModelSpec(model=model_dir, backend=backend, performers=performers, threads=threads, seed=seed,
                                beat_guidance=BEAT_GUIDANCE[0]), RuntimeConfig(realtime=realtime))
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


def run_live(model_dir: Path, x: np.ndarray, backend: str, churn: bool = False, stall_every_s: float = 0.0,
             stall_s: float = 0.0, rss_every_s: float = 10.0) -> dict[str, Any]:
    """Run the runtime in real time behind a WebSocket server; a client records every pose."""
    from streams.ws_server import PoseServer

    sink_times: list[int] = []
    rt = make_runtime(model_dir, backend=backend, sinks=[lambda f: sink_times.append(SYSTEM_CLOCK.monotonic_ns())])
    received: list[Any] = []
    churned = [0]
    rss: list[tuple[float, float]] = []

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
                await asyncio.sleep(rss_every_s)

        tasks.append(asyncio.create_task(sample_rss()))
        await loop.run_in_executor(None, rt.run, paced_blocks(x, stall_every_s=stall_every_s, stall_s=stall_s))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()

    asyncio.run(main())
    first = [p for p in received if p.frame_index % 4 == 0 and p.src_monotonic_ns > 0]
    lat = [(p.recv_ns - p.src_monotonic_ns) / 1e6 for p in first]
    pub = [(p.server_ns - p.src_monotonic_ns) / 1e6 for p in first]
    intervals = np.diff(np.asarray(sink_times, dtype=np.float64)) / 1e6
    st = rt.stats
    return {
        "latency": _summary(lat),
        "publish_latency": _summary(pub),
        "step_decode": _summary(list(st.step_ms)),
        "frames_out": st.frames_out,
        "missed": st.missed,
        "stalled_frames": st.stalled_frames,
        "intervals_ms": intervals,
        "jitter": _summary(np.abs(intervals - 1000.0 / 30.0)) if len(intervals) else {},
        "received": len(received),
        "churned_connections": churned[0],
        "rss_mb": rss,
        "latency_series": lat,
    }


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    except OSError:
        return float("nan")


# ------------------------------------------------------------------------------------------------ measures


def reaction(model_dir: Path, backend: str) -> dict[str, Any]:
    """Music after silence, and a tempo jump: output-timeline delay to the first responding frame."""
    out: list[PoseFrame] = []
    x, _ = music(10.0, [(10.0, 120.0, 120.0)], silence_s=4.0)
    rt = make_runtime(model_dir, backend=backend, realtime=False, sinks=[out.append])
    rt.run(iter(_blocks_fast(x)))
    _, idle_q = rt.gen.idle_pose()
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


def beat_sync(model_dir: Path, backend: str, tempi: tuple[float, ...] = (96.0, 110.0, 124.0)) -> dict[str, Any]:
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


def capacity(model_dir: Path, backend: str, sizes: tuple[int, ...], threads: int, steps: int = 20) -> list[dict]:
    """Batched step + decode time per token for N performers."""
    from engine.runtime.assemble import ModelSpec, build_model

    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        gen: Any = build_model(ModelSpec(model=model_dir, backend=backend, performers=n, threads=threads,
                                         beat_guidance=BEAT_GUIDANCE[0]))
        be = gen.backend
        cond_dim = be.config.cond_dim
        times = []
        for i in range(steps + 3):
            cond = rng.standard_normal(cond_dim).astype(np.float32)
            t0 = SYSTEM_CLOCK.monotonic_ns()
            gen.step(cond)
            if i >= 3:
                times.append((SYSTEM_CLOCK.monotonic_ns() - t0) / 1e6)
        p99 = _pct(times, 99)
        rows.append({"performers": n, "p50_ms": _pct(times, 50), "p99_ms": p99, "realtime": p99 < TOKEN_S * 1000,
                     "backend": be.name, "device": be.device, "threads": threads})
        _progress(f"capacity {n:4d} performers: p50 {rows[-1]['p50_ms']:.1f} ms, p99 {p99:.1f} ms per token")
        if p99 > 4 * TOKEN_S * 1000:
            break
    return rows


# ------------------------------------------------------------------------------------------------ report


def _guidance_in_words(model_dir: Path, candidates: int | None) -> str:
    """The beat-guidance setting the bench runs with, in words."""
    from engine.models.dance_model import load_dance_model

    g = load_dance_model(model_dir).beat_guidance
    g = g if candidates is None else g.with_candidates(candidates)
    return f"{g.candidates} candidates, weight {g.weight:g}" if g.enabled else "off (plain sampling)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.runtime.assemble import default_model_dir

    model_dir = Path(args.model) if args.model else default_model_dir()
    BEAT_GUIDANCE[0] = args.beat_guidance
    report: dict[str, Any] = {"model": str(model_dir), "backend": args.backend, "machine": _machine()}
    report["beat_guidance"] = _guidance_in_words(model_dir, args.beat_guidance)
    _progress(f"processing latency: {args.latency_seconds:.0f} s real-time run with a WebSocket client")
    x, _ = music(args.latency_seconds, [(args.latency_seconds, 118.0, 118.0)])
    live = run_live(model_dir, x, args.backend)
    report["processing_latency"] = {k: live[k] for k in ("latency", "publish_latency", "step_decode", "missed")}
    _progress(f"  p50 {live['latency']['p50_ms']:.2f} ms, p99 {live['latency']['p99_ms']:.2f} ms")
    _progress("reaction latency")
    react = reaction(model_dir, args.backend)
    react["processing_p50_ms"] = live["latency"]["p50_ms"]
    react["music_start_total_ms"] = react["music_start_ms"] + live["latency"]["p50_ms"]
    react["tempo_jump_total_ms"] = react["tempo_jump_ms"] + live["latency"]["p50_ms"]
    report["reaction"] = react
    _progress(f"  music start {react['music_start_total_ms']:.0f} ms, tempo jump {react['tempo_jump_total_ms']:.0f} ms")
    _progress("beat sync")
    report["beat_sync"] = beat_sync(model_dir, args.backend)
    bsr = report["beat_sync"]
    _progress(f"  median {bsr['median_ms']:.0f} ms (chance {bsr['chance_median_ms']:.0f})")
    _progress(f"pacing + soak: {args.soak_seconds:.0f} s real time, 2 clients (one churning), input stalls")
    xs, _ = music(args.soak_seconds, [(args.soak_seconds, 112.0, 112.0)], seed=11)
    soak = run_live(model_dir, xs, args.backend, churn=True, stall_every_s=60.0, stall_s=1.0)
    rss = soak["rss_mb"]
    report["pacing_soak"] = {
        "seconds": args.soak_seconds,
        "frames_out": soak["frames_out"],
        "missed": soak["missed"],
        "stalled_frames": soak["stalled_frames"],
        "jitter": soak["jitter"],
        "interval_p50_ms": _pct(soak["intervals_ms"], 50),
        "received_by_steady_client": soak["received"],
        "churned_connections": soak["churned_connections"],
        "rss_start_mb": rss[0][1] if rss else float("nan"),
        "rss_end_mb": rss[-1][1] if rss else float("nan"),
        "rss_series": rss,
        "latency": soak["latency"],
    }
    _progress(f"  jitter p99 {soak['jitter'].get('p99_ms', float('nan')):.2f} ms, missed {soak['missed']}")
    _progress("capacity")
    sizes = tuple(int(s) for s in args.capacity_sizes.split(","))
    report["capacity"] = capacity(model_dir, args.backend, sizes, threads=2)
    ok = [r["performers"] for r in report["capacity"] if r["realtime"]]
    report["capacity_realtime_performers"] = max(ok) if ok else 0
    report["gpu"] = "no GPU figure exists yet: no GPU was available to this session"
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["_plots"] = {"latency_series": live["latency_series"], "intervals": soak["intervals_ms"].tolist()}
    return report


def _machine() -> dict[str, Any]:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "processor": _cpu_name(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


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
    ax[0].axvline(5.0, color="red", ls="--", label="goal p99 5 ms")
    ax[0].set_xlabel("processing latency (ms)")
    ax[0].set_title("audio available -> pose received (first frame of each step)")
    ax[0].legend()
    iv = np.asarray(plots["intervals"])
    ax[1].plot(np.arange(len(iv)) / 30.0, iv, lw=0.5)
    ax[1].set_xlabel("time (s)")
    ax[1].set_ylabel("frame interval (ms)")
    ax[1].set_title("output pacing (soak)")
    cap = report["capacity"]
    ax[2].plot([r["performers"] for r in cap], [r["p99_ms"] for r in cap], "o-", label="p99 step+decode")
    ax[2].axhline(TOKEN_S * 1000, color="red", ls="--", label="token period 133 ms")
    ax[2].set_xscale("log", base=2)
    ax[2].set_xlabel("performers (batched)")
    ax[2].set_ylabel("ms per token")
    ax[2].set_title("capacity on CPU")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    (out / "latency.md").write_text(markdown(report))


def markdown(r: dict[str, Any]) -> str:
    pl = r["processing_latency"]
    lines = [
        "# Runtime latency, beat sync, pacing and capacity",
        "",
        f"Model `{r['model']}`, backend `{r['backend']}`, machine: {r['machine']}. The load average shows what "
        "else ran on the 2 cores while this was measured.",
        f"Beat-guided sampling: {r.get('beat_guidance', 'off (plain sampling)')} "
        "(`--beat-guidance N` to change; step cost of guidance alone: `guidance.md`).",
        "Produced by `groovecast bench latency`. ![plots](latency.png)",
        "",
        "## Processing latency (goal: p99 < 5 ms)",
        "Client receive time minus `src_monotonic_ns`, first frame of each step, lookahead 0:",
        "",
        "| measure | n | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (("audio -> client receive", "latency"), ("audio -> server publish", "publish_latency"),
                      ("GPT step + decode (per token)", "step_decode")):
        s = pl[key]
        lines.append(f"| {name} | {s['n']} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} | {s['p99_ms']:.2f} | "
                     f"{s['max_ms']:.2f} |")
    re = r["reaction"]
    bs = r["beat_sync"]
    ps = r["pacing_soak"]
    lines += [
        "",
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
        f"Median error {bs['median_ms']:.0f} ms, p90 {bs['p90_ms']:.0f} ms; chance level (beat grid shifted at "
        f"random) median {bs['chance_median_ms']:.0f} ms, p90 {bs['chance_p90_ms']:.0f} ms.",
        "",
        "| BPM | median ms | p90 ms | motion beats | music beats |",
        "|---|---|---|---|---|",
    ]
    for c in bs["clips"]:
        lines.append(f"| {c['bpm']:.0f} | {c['median_ms']:.0f} | {c['p90_ms']:.0f} | {c['motion_beats']} | "
                     f"{c['music_beats']} |")
    j = ps["jitter"]
    lines += [
        "",
        f"## Output pacing and soak ({ps['seconds']:.0f} s real time)",
        "",
        "Two WebSocket clients (one connects, reads 5 frames and vanishes, over and over); the source goes quiet "
        "for 1 s every 60 s.",
        "",
        f"- frames out {ps['frames_out']}, missed {ps['missed']}, held through input stalls "
        f"{ps['stalled_frames']}",
        f"- frame interval p50 {ps['interval_p50_ms']:.2f} ms; jitter |interval - 33.3 ms| p50 "
        f"{j.get('p50_ms', float('nan')):.2f} ms, p99 {j.get('p99_ms', float('nan')):.2f} ms, max "
        f"{j.get('max_ms', float('nan')):.2f} ms",
        f"- churned connections {ps['churned_connections']}; steady client received {ps['received_by_steady_client']}",
        f"- resident memory {ps['rss_start_mb']:.0f} MB -> {ps['rss_end_mb']:.0f} MB",
        "",
        "## Capacity (batched performers, CPU, 2 threads)",
        "",
        "| performers | p50 ms/token | p99 ms/token | real time (p99 < 133 ms) |",
        "|---|---|---|---|",
    ]
    for c in r["capacity"]:
        yes = "yes" if c["realtime"] else "no"
        lines.append(f"| {c['performers']} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} | {yes} |")
    lines += ["", f"Real-time capacity on this CPU: {r['capacity_realtime_performers']} performers.",
              f"GPU: {r['gpu']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    return cli(args)


def cli(args: argparse.Namespace) -> int:
    report = run(args)
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

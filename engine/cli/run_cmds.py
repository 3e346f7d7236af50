"""``groovecast play`` and ``groovecast live``: dance to a file (paced as if live) or to an input device."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engine.cli import (
    GENRE_GUIDANCE_HELP,
    MAX_REPEAT_HELP,
    TEXT_GUIDANCE_HELP,
    CliError,
    check_genre_guidance,
    check_max_repeat,
    check_text_guidance,
)
from engine.cli.link_args import add_link_argument, make_link_publisher
from engine.cli.osc_args import add_osc_arguments, make_osc_sender
from engine.cli.record_args import finish_outputs, open_recorders
from engine.cli.staging_args import add_staging_arguments, staging_config

log = logging.getLogger(__name__)

#: Audio block size of play and live. The playout delay D covers one block period, so small blocks keep D
#: small: 256 samples (11.6 ms at 22.05 kHz) + step p99 + 4 ms margin fits D <= 25 ms with a <= 9 ms step.
DEFAULT_BLOCK = 256
MAX_BLOCK = 8192


def register(sub: Any) -> None:
    pp = sub.add_parser(
        "play",
        help="dance to an audio file, paced in real time as if live (--fast: as fast as possible)",
        description="Dance to an audio file through the live path: causal analysis, batched GPT steps, playout.",
    )
    pp.add_argument("audio", nargs="?", help="an audio file: WAV, FLAC, OGG or MP3 (any channels, any common rate)")
    pp.add_argument("--demo", action="store_true", help="use the bundled demo clip instead of AUDIO")
    pp.add_argument("--fast", action="store_true", help="render as fast as possible through the same path")
    pp.add_argument("--loop", action="store_true", help="start the file over at its end")
    add_run_arguments(pp)
    pp.set_defaults(handler=_play)

    lp = sub.add_parser(
        "live",
        help="dance to a microphone or line input",
        description="Dance to a live input device (PortAudio through sounddevice).",
    )
    lp.add_argument("--device", help="input device: index or part of its name (default: the system default)")
    lp.add_argument("--samplerate", type=float, help="device sample rate (default: the device's own)")
    lp.add_argument("--channel", type=int, default=0, help="input channel, 0-based (default 0)")
    lp.add_argument("--hostapi", help="restrict the device search to a host API (e.g. JACK)")
    add_run_arguments(lp)
    lp.set_defaults(handler=_live)

    from bench.latency_args import add_arguments
    from engine.cli.export_cmds import _bench_group

    bl = _bench_group(sub).add_parser(
        "latency", help="runtime latency, reaction, beat sync, pacing + soak, capacity",
        description="Measure the dance runtime; writes bench/reports/latency.{md,json,png}.")
    add_arguments(bl)
    bl.set_defaults(handler=_bench_latency)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by play and live: model, backend, outputs, scheduling."""
    p.add_argument("--model", help="model directory, or 'retrieval' for motion matching over the capture "
                                   "(default: the shipped model)")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="motion capture that --model retrieval indexes (default: ../shared/data; the index is "
                        "built once into .cache/retrieval)")
    p.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt", "auto"), default="auto",
                   help="GPT step backend (default auto: probes the available ones and keeps the fastest)")
    p.add_argument("--decode", choices=("torch", "onnxruntime"), default="onnxruntime",
                   help="engine of the streaming VQ-VAE decoder (default onnxruntime: faster on CPU)")
    p.add_argument("--performers", type=int, default=None,
                   help="dancers generated together in one batch (default 1; with --couple 2, one couple)")
    p.add_argument("--couple", action="store_true",
                   help="salsa couples: a leader and a follower dancing together, two performers per couple "
                        "(--performers 2N gives N couples; ids 2k lead, 2k+1 follow); needs a follower in the model")
    p.add_argument("--genre", default="salsa",
                   help="genre of every performer: salsa, indian or modern (trained; default salsa)")
    p.add_argument("--text", help="text prompt for every performer (sentence embedding)")
    p.add_argument("--energy", type=float, metavar="0..1",
                   help="how much every performer moves, from the start (models trained with the energy control; "
                        "live: the 'energy' control)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the model card's)")
    p.add_argument("--top-k", type=int, help="sample from the k most likely tokens (0: all; default: the model card's)")
    p.add_argument("--seed", type=int, default=0, help="random seed of performer 0 (others: seed + i)")
    p.add_argument("--beat-guidance", type=int, metavar="N",
                   help="candidate tokens drawn near predicted beats (0: plain sampling; default: the model card's)")
    p.add_argument("--max-repeat", type=int, metavar="N", help=MAX_REPEAT_HELP)
    p.add_argument("--genre-guidance", type=float, metavar="S", help=GENRE_GUIDANCE_HELP)
    p.add_argument("--text-guidance", type=float, metavar="S", help=TEXT_GUIDANCE_HELP)
    add_osc_arguments(p)
    add_link_argument(p)
    p.add_argument("--osc-control", metavar="PORT|HOST:PORT",
                   help="listen for OSC control messages here (PORT alone: 127.0.0.1:PORT)")
    p.add_argument("--ws", metavar="PORT|HOST:PORT",
                   help="serve WebSocket + viewer here (PORT alone: 127.0.0.1:PORT; port 0: any free port)")
    p.add_argument("--token", help="require ?token=TOKEN on WebSocket connections")
    p.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                   help="browser Origin allowed to connect (repeatable; '*' for any)")
    p.add_argument("--record", action="append", default=[], metavar="FILE.bvh|FILE.npz",
                   help="record performer 0 to a BVH or NPZ file (repeatable)")
    p.add_argument("--seconds", type=float, help="stop after this many seconds of audio")
    p.add_argument("--fps", type=int, choices=(30, 60), default=30, help="output frame rate (60 interpolates)")
    p.add_argument("--lookahead", type=int, default=0, help="tokens generated ahead of playback (default 0)")
    p.add_argument("--offset-ms", type=float, default=0.0,
                   help="send poses this much early to make up for a renderer's display latency "
                        "(negative: later, for evenly paced frames at the cost of latency)")
    p.add_argument("--beat-pulse", choices=("beat", "frame"), default="beat",
                   help="VJ profile beat: 'beat' sends it on its own at the predicted beat as heard (default); "
                        "'frame' flags the output frame the beat falls on (leaves with the poses, D later)")
    p.add_argument("--beat-offset-ms", type=float, default=0.0, metavar="MS",
                   help="send VJ beat pulses this much after the beat as heard (negative: earlier, for a "
                        "display's latency; positive: for an audio output's latency); default 0")
    p.add_argument("--delay-ms", type=float, metavar="MS",
                   help="playout delay D from audio to pose (default: measured at start: step p99 + audio "
                        "block + margin)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads for the step (default 1)")
    p.add_argument("--rt-priority", type=int, default=0, metavar="N",
                   help="run the playout thread at real-time priority N (Linux SCHED_FIFO, 1-99; needs the right "
                        "to, e.g. an rtprio limit); default 0: normal scheduling")
    p.add_argument("--blocksize", type=int, default=DEFAULT_BLOCK, metavar="N",
                   help=f"audio block: samples per block read from the file (play) or device frames per callback "
                        f"(live); D includes one block period (default {DEFAULT_BLOCK}: 11.6 ms at 22.05 kHz)")
    add_staging_arguments(p)


# ---------------------------------------------------------------------------------------------- wiring


def engine_spec(args: argparse.Namespace, realtime: bool) -> Any:
    """The typed engine spec of parsed play/live arguments."""
    from engine.runtime.assemble import EngineSpec, ModelSpec
    from engine.runtime.runtime import RuntimeConfig

    try:
        cfg = RuntimeConfig(lookahead_tokens=args.lookahead, output_fps=args.fps, output_offset_ms=args.offset_ms,
                            delay_ms=args.delay_ms, beat_offset_ms=args.beat_offset_ms, realtime=realtime,
                            rt_priority=args.rt_priority)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.temperature is not None and not (math.isfinite(args.temperature) and 0.0 < args.temperature <= 10.0):
        raise CliError(f"--temperature must be in (0, 10], got {args.temperature}")
    if args.top_k is not None and args.top_k < 0:
        raise CliError(f"--top-k must be >= 0, got {args.top_k}")
    check_max_repeat(args.max_repeat)
    check_genre_guidance(args.genre_guidance)
    check_text_guidance(args.text_guidance)
    couple = resolve_performers(args)
    if couple and args.performers % 2:
        raise CliError(f"--couple: --performers counts dancers, two per couple; give an even number, got "
                       f"{args.performers}")
    model = ModelSpec(model=args.model, backend=args.backend, decode=args.decode, performers=args.performers,
                      threads=args.threads, seed=args.seed, genre=args.genre, text=args.text, energy=args.energy,
                      temperature=args.temperature, top_k=args.top_k, beat_guidance=args.beat_guidance,
                      max_repeat=args.max_repeat, genre_guidance=args.genre_guidance,
                      text_guidance=args.text_guidance, data=getattr(args, "data", None),
                      couple=couple, staging=staging_config(args))
    return EngineSpec(model=model, runtime=cfg)


def world_groups(performers: int, couple: bool) -> list[list[int]] | None:
    """Performers that share one world frame, for the WebSocket hello's ``groups``: each couple (``2k`` leads,
    ``2k + 1`` follows) is placed as a pair, so a viewer must keep their placement; solo dancers are None."""
    return [[k, k + 1] for k in range(0, performers - 1, 2)] if couple else None


def resolve_performers(args: argparse.Namespace) -> bool:
    """Fill in the default ``--performers`` (1; 2 = one couple with ``--couple``); returns whether couples."""
    couple = bool(getattr(args, "couple", False))
    if args.performers is None:
        args.performers = 2 if couple else 1
    return couple


def build_runtime(args: argparse.Namespace, sinks: list[Callable[[Any], None]], realtime: bool) -> Any:
    """Model, analyzer and runtime from parsed arguments (through :mod:`engine.runtime.assemble`)."""
    from engine.runtime.assemble import AssemblyError
    from engine.runtime.assemble import build_runtime as assemble

    try:
        return assemble(engine_spec(args, realtime), sinks)
    except AssemblyError as exc:
        raise CliError(str(exc)) from None


def run_with_outputs(args: argparse.Namespace, blocks: Iterable[Any], realtime: bool,
                     on_stop: Callable[[], None] = lambda: None) -> int:
    """Wire OSC, WebSocket, OSC control and recorders around a runtime and run it on ``blocks``."""

    from engine.models.pose_repr import metric_cmu_skeleton
    from streams.address import parse_address

    resolve_performers(args)
    skel = metric_cmu_skeleton()
    sinks: list[Callable[[Any], None]] = []
    closers: list[Callable[[], Any]] = []
    sender = make_osc_sender(args, range(args.performers), skel)
    if sender is not None:
        sinks.append(sender.send)
        closers.append(sender.close)
    link = make_link_publisher(args)
    if link is not None:
        sinks.append(link)
        closers.append(link.close)
    recorders = open_recorders(args.record, skel, args.performers, bool(getattr(args, "couple", False)))
    sinks.extend(recorders)
    runtime = build_runtime(args, sinks, realtime)
    if link is not None:
        link.clock = runtime.clock  # the frames' and pulses' due times are on the runtime's clock
    if sender is not None and sender.profile == "vj" and realtime and args.beat_pulse == "beat":
        sender.pulses = True  # frame bundles carry beat 0; the pulse leaves at the beat (docs/streams.md)
        runtime.pulse_sinks.append(sender.send_pulse)
    if link is not None and realtime and args.beat_pulse == "beat":
        runtime.pulse_sinks.append(link.on_pulse)  # the session's beat phase follows the predicted beat
    osc_control = None
    if args.osc_control:
        from streams.osc_control import OscControlServer, exposure_warning

        try:
            host, port = parse_address(args.osc_control, allow_zero=True)
            osc_control = OscControlServer(host, port, runtime.submit_control)
        except (ValueError, OSError) as exc:
            raise CliError(f"--osc-control: {exc}") from None
        warning = exposure_warning(host)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        osc_control.start()
        closers.append(osc_control.close)
        print(f"osc control: udp://{host}:{osc_control.port}", flush=True)

    def finish() -> None:
        finish_outputs(closers, recorders)
        _report(runtime.stats)

    if not args.ws:
        try:
            runtime.run(blocks, args.seconds)
        except KeyboardInterrupt:
            runtime.stop()
        finally:
            on_stop()
        finish()
        return 0

    from engine.cli.stream_cmds import _make_server, serve_while

    server = _make_server(args, skel, runtime.submit_control, world_groups(args.performers,
                                                                         bool(getattr(args, "couple", False))))
    runtime.sinks.append(server.publish_threadsafe)

    def stop() -> None:
        runtime.stop()
        on_stop()

    serve_while(args, server, lambda: runtime.run(blocks, args.seconds), stop)
    finish()
    return 0


def _report(stats: Any) -> None:
    import numpy as np

    steps = np.asarray(stats.step_ms, dtype=np.float64)
    line = f"done: {stats.tokens} tokens, {stats.frames_out} frames out, {stats.missed} held (step not ready)"
    line += f", {stats.late} late"
    if stats.delay is not None:
        line += f", {stats.delay.describe()}"
    if len(steps):
        line += f", step+decode p50 {np.percentile(steps, 50):.2f} ms p99 {np.percentile(steps, 99):.2f} ms"
    if stats.stalled_frames:
        line += f", {stats.stalled_frames} frames held while the input was lost"
    if stats.control_replans:
        ms = np.asarray(stats.control_replan_ms, dtype=np.float64)
        line += (f", {stats.control_replans} control re-plans ({stats.replanned_steps} steps remade, "
                 f"p50 {np.percentile(ms, 50):.1f} ms each)")
    if stats.pulses:
        lag = np.asarray(stats.pulse_lag_ns, dtype=np.float64) / 1e6
        line += (f", {stats.pulses} beat pulses (sent p50 {np.percentile(lag, 50):.2f} ms "
                 f"p99 {np.percentile(lag, 99):.2f} ms after due, {stats.pulses_dropped} dropped as stale)")
    print(line, flush=True)
    for err in stats.source_errors[-5:]:
        print(f"input: {err}", file=sys.stderr, flush=True)
    for err in stats.control_errors[-5:]:
        print(f"control rejected: {err}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- handlers


def _bench_latency(args: argparse.Namespace) -> int:
    from bench.latency_bench import cli

    return cli(args)


def _check_blocksize(args: argparse.Namespace) -> None:
    if not 16 <= args.blocksize <= MAX_BLOCK:
        raise CliError(f"--blocksize must be in [16, {MAX_BLOCK}], got {args.blocksize}")


def _play(args: argparse.Namespace) -> int:
    from engine.audio.source import AudioSourceError, FileSource, demo_path

    _check_blocksize(args)
    if args.demo and args.audio:
        raise CliError("give either AUDIO or --demo, not both")
    if not args.demo and not args.audio:
        raise CliError("no audio: give an audio file or --demo for the bundled clip")
    path = demo_path() if args.demo else Path(args.audio)
    if args.seconds is not None and args.seconds <= 0:
        raise CliError("--seconds must be positive")
    try:
        source = FileSource(path, realtime=not args.fast, loop=args.loop, block_size=args.blocksize)
    except (AudioSourceError, FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"playing {path} ({source.duration_s:.1f} s){' as fast as possible' if args.fast else ''}", flush=True)
    return run_with_outputs(args, source, realtime=not args.fast, on_stop=source.stop)


def _live(args: argparse.Namespace) -> int:
    from engine.audio.mic import MicSource
    from engine.audio.source import AudioSourceError

    _check_blocksize(args)
    try:
        mic = MicSource(args.device, samplerate=args.samplerate, block_size=args.blocksize, channel=args.channel,
                        hostapi=args.hostapi)
    except AudioSourceError as exc:
        raise CliError(str(exc)) from None
    print(f"listening to {mic.info.name} at {mic.device_rate} Hz", flush=True)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(mic)
        except Exception as exc:
            raise CliError(f"cannot start {mic.info.name}: {exc}") from None
        return run_with_outputs(args, mic.blocks(args.seconds), realtime=True, on_stop=mic.stop)

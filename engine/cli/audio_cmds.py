"""`groovecast devices` and `groovecast analyze`: audio devices and the streaming beat/feature analysis."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.audio.source import demo_path
from engine.cli import CliError
from engine.cli.link_args import add_link_argument, make_link_publisher


def register(sub: Any) -> None:
    p = sub.add_parser("devices", help="list audio devices (PortAudio)")
    p.add_argument("--inputs", action="store_true", help="only devices with input channels")
    p.set_defaults(handler=cmd_devices)

    p = sub.add_parser(
        "analyze",
        help="beats, downbeats, onsets and tempo of a WAV file (or live input) via the streaming analyzer",
        description="Runs the same causal, hop-by-hop analyzer as live input. Without --json, prints a summary.",
    )
    p.add_argument("audio", nargs="?", help="WAV file (mono or stereo, any common rate)")
    p.add_argument("--demo", action="store_true", help="use the bundled demo clip instead of AUDIO")
    p.add_argument("--json", action="store_true", help='print one JSON object {"bpm", "beats", "downbeats", "onsets"}')
    p.add_argument("--plot", metavar="PNG", help="draw waveform, onset envelope and beats to this PNG")
    p.add_argument("--live", action="store_true", help="pace the file in real time and print beats as they happen")
    p.add_argument("--input", metavar="DEVICE", help="analyze live input from this device (index or name) instead")
    p.add_argument("--seconds", type=float, default=None, help="with --input: stop after this much audio")
    p.add_argument("--block-size", type=int, default=512, help="samples per block pushed into the analyzer")
    add_link_argument(p)
    p.add_argument("--tracker", choices=("hmm", "hybrid", "comb", "neural"), default=None,
                   help="beat tracker (default hmm; see docs/audio.md): 'hmm' = a tempo x phase filter on the beat "
                   "network and the onset function; 'hybrid' = onset-function comb for beats, beat network for "
                   "downbeats; 'comb' = comb for both; 'neural' = beat network for both")
    p.set_defaults(handler=cmd_analyze)


def cmd_devices(args: argparse.Namespace) -> int:
    from engine.audio.mic import list_devices
    from engine.audio.source import AudioSourceError

    try:
        devices = list_devices()
    except AudioSourceError as exc:
        raise CliError(str(exc)) from exc
    if args.inputs:
        devices = [d for d in devices if d.max_input_channels > 0]
    if not devices:
        print("no audio devices found (no sound card, and no JACK server running; "
              "try `jackd -d dummy` for a virtual one)")
        return 0
    print(f"{'idx':>3}  {'in':>3} {'out':>3}  {'rate':>6}  {'host API':<28} name")
    for d in devices:
        print(f"{d.index:>3}  {d.max_input_channels:>3} {d.max_output_channels:>3}  {d.default_samplerate:>6g}  "
              f"{d.hostapi:<28} {d.name}")
    return 0


def _result_json(bpm: float, beats: list[float], downbeats: list[float], onsets: list[float]) -> str:
    return json.dumps({
        "bpm": round(float(bpm), 3),
        "beats": [round(t, 4) for t in beats],
        "downbeats": [round(t, 4) for t in downbeats],
        "onsets": [round(t, 4) for t in onsets],
    })


def cmd_analyze(args: argparse.Namespace) -> int:
    from engine.audio.source import AudioSourceError

    if args.block_size <= 0:
        raise CliError(f"--block-size must be positive, got {args.block_size}")
    if args.live and args.json:
        raise CliError("--live prints beats as they happen; use --json without --live for one JSON object")
    if args.link and not (args.live or args.input is not None):
        raise CliError("--link publishes the tempo as it is tracked: use it with --live or --input")
    if args.input is not None:
        if args.audio or args.demo:
            raise CliError("--input analyzes a device; give no AUDIO file and no --demo with it")
        try:
            return _analyze_input(args)
        except AudioSourceError as exc:
            raise CliError(str(exc)) from exc
    if args.demo and args.audio:
        raise CliError("give either AUDIO or --demo, not both")
    if not args.demo and not args.audio:
        raise CliError("no audio: give a WAV file, --demo for the bundled clip, or --input DEVICE")
    path = demo_path() if args.demo else Path(args.audio)
    try:
        if args.live:
            return _analyze_live(path, args)
        return _analyze_file(path, args)
    except AudioSourceError as exc:
        raise CliError(str(exc)) from exc


def _analyze_file(path: Path, args: argparse.Namespace) -> int:
    from engine.analysis import analyze_signal
    from engine.analysis.music import DEFAULT_TRACKER
    from engine.audio.source import read_wav

    x, sr = read_wav(path)
    result = analyze_signal(x, sr, block_size=args.block_size, tracker=args.tracker or DEFAULT_TRACKER)
    if args.plot:
        _plot(args.plot, x, sr, result.envelope, result.beats, result.downbeats, str(path))
    if args.json:
        print(_result_json(result.bpm, result.beats, result.downbeats, result.onsets))
    else:
        print(f"{path.name}: {result.duration_s:.1f} s, {result.bpm:.1f} BPM, {len(result.beats)} beats, "
              f"{len(result.downbeats)} downbeats, {len(result.onsets)} onsets")
        print("first beats (s): " + " ".join(f"{t:.2f}" for t in result.beats[:8]))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def _print_beat(ev: Any) -> None:
    bar = f"{ev.beat_in_bar + 1}/{ev.beats_per_bar}" if ev.beat_in_bar >= 0 else "?"
    print(f"beat {ev.time_s:8.3f} s  {ev.bpm:6.1f} BPM  conf {ev.confidence:4.2f}  bar {bar}  "
          f"next {ev.next_beat_s:8.3f} s", flush=True)


def _publish_link(link: Any, ev: Any) -> None:
    """Tempo and beat phase at the newest audio (this moment: the frame was just analysed) to Link."""
    if link is None or ev.bpm <= 0:
        return
    from engine.frames import ENGINE_SAMPLE_RATE

    try:
        link.publish(float(ev.bpm), ev.phase_at(ev.sample_index / ENGINE_SAMPLE_RATE))
    except Exception as exc:  # Link trouble never stops the analysis
        print(f"ableton link: update failed: {exc}", file=sys.stderr, flush=True)


def _analyze_live(path: Path, args: argparse.Namespace) -> int:
    import numpy as np

    from engine.analysis import MusicAnalyzer
    from engine.analysis.music import DEFAULT_TRACKER
    from engine.audio.source import FileSource
    from engine.frames import BeatEvent, FeatureFrame

    src = FileSource(path, realtime=True, block_size=args.block_size)
    print(f"playing {path.name} in real time ({src.duration_s:.1f} s); Ctrl-C stops", flush=True)
    analyzer = MusicAnalyzer(kind=args.tracker or DEFAULT_TRACKER)
    beats: list[float] = []
    downbeats: list[float] = []
    bpms: list[float] = []
    env: list[float] = []
    link = make_link_publisher(args)
    try:
        for block in src:
            for ev in analyzer.process(block):
                if isinstance(ev, BeatEvent):
                    beats.append(ev.time_s)
                    bpms.append(ev.bpm)
                    if ev.beat_in_bar == 0:
                        downbeats.append(ev.time_s)
                    _print_beat(ev)
                elif isinstance(ev, FeatureFrame):
                    env.append(float(ev.features[0]))
                    _publish_link(link, ev)
    finally:
        if link is not None:
            link.close()
    bpm = float(np.median(bpms[len(bpms) // 2:])) if bpms else 0.0
    print(f"end of {path.name}: {len(beats)} beats, {bpm:.1f} BPM")
    if args.plot:
        from engine.audio.source import read_wav

        x, sr = read_wav(path)
        _plot(args.plot, x, sr, np.asarray(env), beats, downbeats, str(path))
    return 0


def _analyze_input(args: argparse.Namespace) -> int:
    from engine.analysis import MusicAnalyzer
    from engine.analysis.music import DEFAULT_TRACKER
    from engine.audio.mic import MicSource
    from engine.frames import BeatEvent, FeatureFrame

    src = MicSource(args.input, block_size=args.block_size)
    print(f"listening on [{src.info.index}] {src.info.name} at {src.device_rate} Hz; Ctrl-C stops", flush=True)
    analyzer = MusicAnalyzer(kind=args.tracker or DEFAULT_TRACKER)
    link = make_link_publisher(args)
    with src:
        try:
            for block in src.blocks(max_seconds=args.seconds):
                for ev in analyzer.process(block):
                    if isinstance(ev, BeatEvent):
                        _print_beat(ev)
                    elif isinstance(ev, FeatureFrame):
                        _publish_link(link, ev)
        except KeyboardInterrupt:
            pass
        finally:
            if link is not None:
                link.close()
    print(f"stopped: {src.stats.blocks} blocks, {src.stats.overflows} overflows, "
          f"{src.stats.dropped_blocks} blocks dropped", file=sys.stderr)
    return 0


def _plot(out: str, x: Any, sr: int, envelope: Any, beats: list[float], downbeats: list[float], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from engine.frames import MODEL_FPS

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 5), sharex=True)
    t = np.arange(len(x)) / sr
    step = max(1, len(x) // 20000)  # draw at most ~20k points
    ax1.plot(t[::step], x[::step], lw=0.5, color="0.4")
    ax1.set_ylabel("waveform")
    ax1.set_title(title)
    te = (np.arange(len(envelope)) + 1) / MODEL_FPS
    ax2.plot(te, envelope, lw=0.8, color="tab:blue", label="onset envelope")
    ax2.set_ylabel("onset envelope")
    ax2.set_xlabel("time (s)")
    for ax in (ax1, ax2):
        for b in beats:
            ax.axvline(b, color="tab:red", lw=0.6, alpha=0.7)
        for b in downbeats:
            ax.axvline(b, color="tab:green", lw=1.4, alpha=0.8)
    ax2.plot([], [], color="tab:red", label="beats")
    ax2.plot([], [], color="tab:green", label="downbeats")
    ax2.legend(loc="upper right")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)

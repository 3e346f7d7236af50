"""``groovecast replay`` and ``groovecast serve``: stream a motion file, or run the viewer server alone."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any

from engine.cli import CliError
from engine.cli.link_args import add_link_argument, make_link_publisher
from engine.cli.osc_args import add_osc_arguments, make_osc_sender
from engine.cli.record_args import finish_outputs, open_recorders

log = logging.getLogger(__name__)

DEFAULT_WS = "127.0.0.1:8765"


def register(sub: Any) -> None:
    rp = sub.add_parser(
        "replay",
        help="stream a motion file (BVH or AIST++ .pkl) in real time over OSC and/or WebSocket",
        description="Stream a motion file in real time. With --ws the same port serves the viewer page.",
    )
    rp.add_argument("motion", help="a .bvh file (any channel order) or an AIST++ motion .pkl")
    add_osc_arguments(rp)
    add_link_argument(rp)
    rp.add_argument("--ws", metavar="PORT|HOST:PORT",
                    help="serve WebSocket + viewer here (PORT alone: 127.0.0.1:PORT; port 0: any free port)")
    rp.add_argument("--loop", action="store_true", help="start over at the end of the clip")
    rp.add_argument("--fps", type=int, choices=(30, 60), default=30, help="output frame rate (60: slerp up-sampling)")
    rp.add_argument("--seconds", type=float, help="stop after this many seconds")
    rp.add_argument("--height", type=float, default=1.70,
                    help="scale the body to this height in metres (0 keeps file units; default 1.70)")
    rp.add_argument("--bpm", type=float, default=0.0, help="add a synthetic beat grid at this tempo (VJ pulses)")
    rp.add_argument("--performer", type=int, default=0, help="performer index stamped on frames")
    rp.add_argument("--source-fps", type=float, default=None, metavar="FPS",
                    help="the rate the file was captured at, when its header is wrong (the CMU salsa files: 60)")
    rp.add_argument("--no-retarget", action="store_true",
                    help="stream a non-CMU skeleton as it is (default: retarget any humanoid onto the CMU skeleton)")
    rp.add_argument("--record", action="append", default=[], metavar="FILE.bvh|FILE.npz",
                    help="also record the stream to a BVH or NPZ file (repeatable)")
    _server_args(rp)
    rp.set_defaults(handler=_replay)

    rc = sub.add_parser("recover", help="turn a partial NPZ recording (left by a crash or a full disk) into FILE.npz",
                        description="Convert FILE.npz.partial, which the NPZ recorder streams to, into FILE.npz.")
    rc.add_argument("partial", help="FILE.npz.partial (or FILE.npz)")
    rc.set_defaults(handler=_recover)

    sp = sub.add_parser("serve", help="run the viewer page and WebSocket pose server alone",
                        description="Run the WebSocket pose server and viewer page (no motion source).")
    sp.add_argument("--ws", metavar="PORT|HOST:PORT", default=DEFAULT_WS,
                    help=f"bind address (PORT alone: 127.0.0.1:PORT; default {DEFAULT_WS})")
    _server_args(sp)
    sp.set_defaults(handler=_serve)


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token", help="require ?token=TOKEN on WebSocket connections")
    p.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                   help="browser Origin allowed to connect (repeatable; '*' for any). Default: this server's own page")


def _make_server(args: argparse.Namespace, skeleton: Any = None, on_control: Any = None,
                 groups: list[list[int]] | None = None) -> Any:
    from streams.address import parse_address
    from streams.ws_server import PoseServer

    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per HTTP request is noise
    try:
        host, port = parse_address(args.ws, allow_zero=True)
    except ValueError as exc:
        raise CliError(f"--ws: {exc}") from None

    def log_control(msg: Any) -> None:
        log.info("control from a client: kind=%s performer=%d value=%r", msg.kind, msg.performer, msg.value)

    on_control = on_control or log_control
    return PoseServer(host, port, token=args.token, allowed_origins=args.allow_origin, on_control=on_control,
                      skeleton=skeleton, groups=groups)


def _announce(server: Any) -> None:
    host = server.host if ":" not in server.host else f"[{server.host}]"
    print(f"viewer: http://{host}:{server.port}/  websocket: ws://{host}:{server.port}/ws", flush=True)
    if server.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {server.host}, reachable from other machines"
              + ("" if server.token else " (no --token set)"), file=sys.stderr, flush=True)


def _replay(args: argparse.Namespace) -> int:

    from engine.skeleton.bvh import BvhError
    from engine.skeleton.motion import Motion, load_motion
    from engine.skeleton.retarget import RetargetError, retarget_motion
    from engine.skeleton.skeleton import get_skeleton, skeleton_names
    from streams.player import MotionPlayer

    try:
        motion = load_motion(args.motion)
    except (FileNotFoundError, BvhError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.source_fps is not None:
        if not 0 < args.source_fps <= 1000:
            raise CliError("--source-fps must be in (0, 1000]")
        motion = Motion(motion.skeleton, float(args.source_fps), motion.root_positions, motion.rotations)
    if not args.no_retarget and motion.skeleton.name not in skeleton_names():
        try:
            motion = retarget_motion(motion, get_skeleton("cmu"))
        except RetargetError as exc:
            raise CliError(f"{args.motion}: {exc} (use --no-retarget to stream it as it is)") from None
        print(f"retargeted onto the CMU skeleton ({motion.num_frames} frames after dropping T-poses)", flush=True)
    if args.seconds is not None and args.seconds <= 0:
        raise CliError("--seconds must be positive")
    player = MotionPlayer(motion, args.fps, loop=args.loop, performer=args.performer,
                          height_m=max(0.0, args.height), bpm=args.bpm)
    sinks: list[Any] = []
    closers: list[Any] = []
    sender = make_osc_sender(args, [args.performer], player.motion.skeleton)
    if sender is not None:
        sinks.append(sender.send)
        closers.append(sender.close)
    recorders = open_recorders(args.record, player.motion.skeleton)
    sinks.extend(recorders)
    link = make_link_publisher(args)  # after the recorders: a recorded frame's stamp precedes its Link update
    if link is not None:
        sinks.append(link)
        closers.append(link.close)
    print(f"replaying {args.motion}: {motion.num_frames} frames at {motion.fps:.1f} fps -> {args.fps} fps, "
          f"skeleton {motion.skeleton.name}", flush=True)

    def finish() -> None:
        finish_outputs(closers, recorders)
        s = player.stats
        print(f"done: {s.frames} frames, {s.late_frames} late, max lateness {s.max_late_ns / 1e6:.2f} ms", flush=True)

    if not args.ws:
        with contextlib.suppress(KeyboardInterrupt):
            player.run(sinks, args.seconds)
        finish()
        return 0

    server = _make_server(args, player.motion.skeleton)
    serve_while(args, server, lambda: player.run([*sinks, server.publish_threadsafe], args.seconds), player.stop)
    finish()
    return 0


def serve_while(args: argparse.Namespace, server: Any, work: Any, stop: Any) -> None:
    """Start ``server``, run the blocking ``work()`` on a worker thread, then ``stop()`` it and the server.

    Ctrl-C stops both too. A port that cannot be bound is a CliError naming it.
    """
    import asyncio

    async def run() -> None:
        try:
            await server.start()
        except OSError as exc:
            raise CliError(f"cannot listen on {args.ws}: {exc}") from None
        _announce(server)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, work)
        finally:
            stop()
            await server.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        stop()


def _recover(args: argparse.Namespace) -> int:
    from streams.recorders import read_partial, recover

    try:
        n = len(read_partial(args.partial if args.partial.endswith(".partial") else args.partial + ".partial")
                 ["frame_index"])
        out = recover(args.partial)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"recovered {n} frames to {out}", flush=True)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    server = _make_server(args)

    async def run() -> None:
        try:
            await server.start()
        except OSError as exc:
            raise CliError(f"cannot listen on {args.ws}: {exc}") from None
        _announce(server)
        try:
            await asyncio.Event().wait()  # until interrupted
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0

#!/usr/bin/env python3
"""Print poses from a groovecast WebSocket stream with their latency; optionally send one control message.

Usage:
    python3 clients/python/groovecast_client.py ws://127.0.0.1:8765/ws [--format binary] [--frames 60]
    python3 clients/python/groovecast_client.py ws://127.0.0.1:8765/ws --control '{"kind": "genre", "value": "salsa"}'

Latency figures are meaningful only on the host that runs the server (they compare monotonic clocks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics

from streams.client import PoseClient


async def main(args: argparse.Namespace) -> int:
    sep = "&" if "?" in args.url else "?"
    url = f"{args.url}{sep}format={args.format}&performer={args.performer}"
    async with PoseClient(url) as client:
        print(f"connected; skeletons offered: {', '.join(client.hello['skeletons'])}")
        if args.control:
            msg = {"type": "control", **json.loads(args.control)}
            print("reply:", await client.request(msg))
        delivery = []
        for _ in range(args.frames):
            p = await client.recv_pose()
            delivery.append(p.delivery_ns / 1e6)
            beat = " BEAT" if p.beat else ""
            print(f"performer {p.performer} frame {p.frame_index:6d} sample {p.sample_index:9d} "
                  f"delivery {p.delivery_ns / 1e6:6.2f} ms  end-to-end {p.end_to_end_ns / 1e6:7.2f} ms{beat}")
        if delivery:
            print(f"delivery median {statistics.median(delivery):.2f} ms over {len(delivery)} frames")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", nargs="?", default="ws://127.0.0.1:8765/ws")
    ap.add_argument("--format", choices=("json", "binary"), default="json")
    ap.add_argument("--performer", type=int, default=-1, help="-1: all performers")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--control", help='a control message body, e.g. \'{"kind": "intensity", "value": 0.8}\'')
    raise SystemExit(asyncio.run(main(ap.parse_args())))

"""Helpers for the Ableton Link test, run INSIDE a private network namespace (``unshare --net``) only.

``python3 link_peer.py scenario OUT_DIR SECONDS -- ENGINE_ARGS...`` brings the namespace's loopback up, starts a
second Link peer that reports the session (tempo and beat) every 50 ms into OUT_DIR/peer.jsonl, and runs
``python3 -m engine ENGINE_ARGS`` beside it; the peer reports until the engine has exited (so a slow engine start
on a loaded machine does not outlast it), at most SECONDS. Link discovers peers by multicast: never run this
outside such a namespace.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


async def report(seconds: float) -> list[str]:
    """The session every 50 ms until SIGTERM (the engine has exited), at most ``seconds``."""
    import aalink

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    link = aalink.Link(100.0)
    link.quantum = 4
    link.enabled = True
    end = time.monotonic() + seconds
    rows = []
    while time.monotonic() < end and not stop.is_set():
        t0 = time.monotonic_ns()
        beat = link.beat
        t1 = time.monotonic_ns()  # when the read took long (the peer was preempted), its time is that uncertain
        rows.append(json.dumps({"mono_ns": (t0 + t1) // 2, "read_ns": t1 - t0, "beat": beat, "tempo": link.tempo,
                                "peers": link.num_peers}))
        await asyncio.sleep(0.05)
    link.enabled = False
    return rows


def main() -> int:
    if sys.argv[1] == "report":
        Path(sys.argv[2]).write_text("\n".join(asyncio.run(report(float(sys.argv[3])))) + "\n")
        return 0
    assert sys.argv[1] == "scenario" and sys.argv[4] == "--"
    out, seconds, engine_args = Path(sys.argv[2]), float(sys.argv[3]), sys.argv[5:]
    with open("/proc/net/dev") as dev:  # refuse to run anywhere but a namespace that has only loopback
        ifaces = {ln.split(":")[0].strip() for ln in dev.read().splitlines()[2:]}
    if ifaces != {"lo"}:
        print(f"refusing to run Link outside a loopback-only network namespace (interfaces: {sorted(ifaces)})")
        return 3
    loopback_up()
    peer = subprocess.Popen([sys.executable, __file__, "report", str(out / "peer.jsonl"), str(seconds)])
    engine = subprocess.run([sys.executable, "-m", "engine", *engine_args], capture_output=True, text=True)
    (out / "engine.log").write_text(engine.stdout + engine.stderr)
    peer.terminate()  # the engine is done: the peer writes its report and exits
    peer.wait(timeout=60)
    return engine.returncode or peer.returncode


if __name__ == "__main__":
    sys.exit(main())

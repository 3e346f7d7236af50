"""Compact binary pose frame (little-endian, float32 payload) for many clients; layout in docs/streams.md.

Header (64 bytes, ``struct`` format ``<4sBBHHHIqqqdffff``):

======  ====  ==================  ============================================================
offset  size  field               meaning
======  ====  ==================  ============================================================
0       4     magic               ``b"GCPF"``
4       1     version             1
5       1     flags               bit 0: beat on this frame; bit 1: positions present
6       2     performer           u16
8       2     joints              u16, J
10      2     skeleton_len        u16, bytes of the UTF-8 skeleton name after the header
12      4     frame_index         u32
16      8     sample_index        i64, audio sample index the pose was derived from
24      8     src_monotonic_ns    i64, monotonic ns when that audio became available
32      8     server_ns           i64, server monotonic ns when the frame was published
40      8     time_s              f64, time on the output timeline
48      4     fps                 f32
52      4     bpm                 f32
56      4     beat_phase          f32
60      4     energy              f32
======  ====  ==================  ============================================================

Then the skeleton name (padded with NULs to a multiple of 4), then float32 arrays: root ``[3]``,
rotations ``[J, 4]`` (w, x, y, z), and, if flag bit 1, positions ``[J, 3]``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from engine.frames import PoseFrame
from engine.skeleton.skeleton import Skeleton
from streams.prepare import PreparedPose, prepare

MAGIC = b"GCPF"
BINARY_VERSION = 1
HEADER = struct.Struct("<4sBBHHHIqqqdffff")
FLAG_BEAT = 1
FLAG_POSITIONS = 2
assert HEADER.size == 64


def encode_binary(frame: PoseFrame | PreparedPose, server_ns: int, skel: Skeleton | None = None) -> bytes:
    """One binary pose frame (positions always included: clients need not run FK)."""
    p = frame if isinstance(frame, PreparedPose) else prepare(frame, skel)
    f = p.frame
    name = p.skeleton.name.encode("utf-8")
    j = p.skeleton.num_joints
    flags = (FLAG_BEAT if f.beat else 0) | FLAG_POSITIONS
    head = HEADER.pack(
        MAGIC, BINARY_VERSION, flags, f.performer, j, len(name), f.frame_index & 0xFFFFFFFF, f.sample_index,
        f.capture_ns, server_ns, float(f.time_s), f.fps, f.bpm, f.beat_phase, f.energy,
    )
    pad = b"\0" * (-len(name) % 4)
    payload = np.concatenate(
        [
            np.asarray(f.root_position, dtype="<f4").reshape(3),
            np.asarray(f.rotations, dtype="<f4").reshape(j * 4),
            np.asarray(p.positions, dtype="<f4").reshape(j * 3),
        ]
    )
    return head + name + pad + payload.tobytes()


@dataclass(frozen=True)
class BinaryPose:
    performer: int
    skeleton: str
    frame_index: int
    sample_index: int
    src_monotonic_ns: int
    server_ns: int
    time_s: float
    fps: float
    bpm: float
    beat_phase: float
    energy: float
    beat: bool
    root: np.ndarray  # [3] float32
    rotations: np.ndarray  # [J, 4] float32
    positions: np.ndarray | None  # [J, 3] float32


def decode_binary(data: bytes) -> BinaryPose:
    """Parse a binary pose frame; raises ValueError naming what is wrong."""
    if len(data) < HEADER.size:
        raise ValueError(f"binary pose needs at least {HEADER.size} bytes, got {len(data)}")
    (magic, version, flags, performer, j, name_len, frame_index, sample_index, src_ns, server_ns, time_s, fps,
     bpm, phase, energy) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != BINARY_VERSION:
        raise ValueError(f"unsupported binary pose version {version}")
    pos = HEADER.size
    name = data[pos : pos + name_len].decode("utf-8")
    pos += name_len + (-name_len % 4)
    n = 3 + j * 4 + (j * 3 if flags & FLAG_POSITIONS else 0)
    if len(data) != pos + 4 * n:
        raise ValueError(f"binary pose for {j} joints should be {pos + 4 * n} bytes, got {len(data)}")
    arr = np.frombuffer(data, dtype="<f4", count=n, offset=pos)
    rot = arr[3 : 3 + j * 4].reshape(j, 4)
    positions = arr[3 + j * 4 :].reshape(j, 3) if flags & FLAG_POSITIONS else None
    return BinaryPose(performer, name, frame_index, sample_index, src_ns, server_ns, time_s, fps, bpm, phase,
                      energy, bool(flags & FLAG_BEAT), arr[:3], rot, positions)

"""OSC 1.0 encoding and decoding as pure functions (messages, bundles, type tags i f s h d T F)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

#: OSC time tag meaning "immediately" (OSC 1.0: 63 zero bits then a 1).
IMMEDIATE = 1


class OscInt64(int):
    """Marks an int to be sent as OSC ``h`` (int64) rather than ``i`` (int32)."""


class OscDouble(float):
    """Marks a float to be sent as OSC ``d`` (float64) rather than ``f`` (float32)."""


OscArg = int | float | str | bool


@dataclass(frozen=True)
class OscMessage:
    address: str
    args: tuple[OscArg, ...]


def _pad(b: bytes) -> bytes:
    """OSC strings/blobs are padded with NULs to a multiple of 4 bytes (a string gets at least one NUL)."""
    return b + b"\0" * (4 - len(b) % 4)


def encode_string(s: str) -> bytes:
    return _pad(s.encode("utf-8"))


def type_tag(arg: OscArg) -> str:
    """OSC type tag of one Python argument (bool before int: bool is an int subclass)."""
    if isinstance(arg, bool):
        return "T" if arg else "F"
    if isinstance(arg, OscInt64):
        return "h"
    if isinstance(arg, int):
        return "i"
    if isinstance(arg, OscDouble):
        return "d"
    if isinstance(arg, float):
        return "f"
    if isinstance(arg, str):
        return "s"
    raise TypeError(f"cannot encode {type(arg).__name__} as an OSC argument")


def encode_message(address: str, args: Sequence[OscArg] = ()) -> bytes:
    """One OSC message: padded address, padded ``,tags`` string, then big-endian arguments."""
    if not address.startswith("/"):
        raise ValueError(f"OSC addresses start with '/', got {address!r}")
    tags = ","
    payload = bytearray()
    for a in args:
        t = type_tag(a)
        tags += t
        if t == "i":
            payload += struct.pack(">i", a)
        elif t == "h":
            payload += struct.pack(">q", a)
        elif t == "f":
            payload += struct.pack(">f", a)
        elif t == "d":
            payload += struct.pack(">d", a)
        elif t == "s":
            payload += encode_string(str(a))
        # T and F carry no payload
    return encode_string(address) + encode_string(tags) + bytes(payload)


def encode_bundle(elements: Sequence[bytes], timetag: int = IMMEDIATE) -> bytes:
    """An OSC bundle: ``#bundle``, a 64-bit NTP time tag, then each element prefixed by its int32 size."""
    out = bytearray(b"#bundle\0")
    out += struct.pack(">Q", timetag)
    for e in elements:
        out += struct.pack(">i", len(e))
        out += e
    return bytes(out)


class OscDecodeError(ValueError):
    """Bytes that are not valid OSC."""


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\0", pos)
    if end < 0:
        raise OscDecodeError(f"unterminated OSC string at byte {pos}")
    s = data[pos:end].decode("utf-8")
    return s, end + 1 + (-(end + 1 - pos) % 4)


def decode_message(data: bytes) -> OscMessage:
    """Parse one OSC message (the inverse of :func:`encode_message`)."""
    address, pos = _read_string(data, 0)
    tags, pos = _read_string(data, pos)
    if not tags.startswith(","):
        raise OscDecodeError(f"type tag string must start with ',', got {tags!r}")
    args: list[OscArg] = []
    for t in tags[1:]:
        if t == "i":
            args.append(struct.unpack_from(">i", data, pos)[0])
            pos += 4
        elif t == "h":
            args.append(OscInt64(struct.unpack_from(">q", data, pos)[0]))
            pos += 8
        elif t == "f":
            args.append(struct.unpack_from(">f", data, pos)[0])
            pos += 4
        elif t == "d":
            args.append(OscDouble(struct.unpack_from(">d", data, pos)[0]))
            pos += 8
        elif t == "s":
            s, pos = _read_string(data, pos)
            args.append(s)
        elif t in "TF":
            args.append(t == "T")
        else:
            raise OscDecodeError(f"unsupported OSC type tag {t!r}")
    if pos != len(data):
        raise OscDecodeError(f"{len(data) - pos} trailing bytes after message {address}")
    return OscMessage(address, tuple(args))


def decode_packet(data: bytes) -> tuple[int | None, list[OscMessage]]:
    """Parse a message or a (possibly nested) bundle: ``(timetag or None, messages in order)``."""
    if data.startswith(b"#bundle\0"):
        if len(data) < 16:
            raise OscDecodeError("bundle shorter than its header")
        timetag = struct.unpack_from(">Q", data, 8)[0]
        pos = 16
        msgs: list[OscMessage] = []
        while pos < len(data):
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if size < 0 or pos + size > len(data):
                raise OscDecodeError(f"bundle element of size {size} overruns the packet")
            msgs.extend(decode_packet(data[pos : pos + size])[1])
            pos += size
        return timetag, msgs
    return None, [decode_message(data)]

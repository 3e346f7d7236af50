"""Bounded, sans-I/O decoding of inbound OSC datagrams (and the tiny replies the control server sends).

Every length read from the datagram is checked against what remains before it is used, so a datagram of
``n`` bytes costs O(n) time and memory whatever it claims: a bundle element of size 0, negative, unaligned
or past the end is an error, never a loop. Limits (all hard):

* :data:`MAX_DATAGRAM` bytes per datagram (larger ones are refused whole, never truncated);
* :data:`MAX_DEPTH` nested bundles; :data:`MAX_MESSAGES` messages per datagram;
* :data:`MAX_ARGS` arguments per message; strings and blobs bounded by what remains of the datagram;
* argument types: ``i f s S b h d t c r m T F N I`` (arrays ``[ ]`` are refused).

Time-tags are parsed and returned but **not honoured**: a control is applied when it arrives. Waiting for a
time-tag would let a sender park work (the engine's controls are applied before the next step anyway, one
token = 133 ms), so a future time-tag changes nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MAX_DATAGRAM = 32 * 1024
MAX_DEPTH = 4
MAX_MESSAGES = 64
MAX_ARGS = 64
#: The OSC "immediately" time-tag.
IMMEDIATE = 1

_BUNDLE = b"#bundle\x00"


class OscParseError(ValueError):
    """A datagram that is not valid OSC within the limits; the text says where and why."""


@dataclass(frozen=True)
class OscMessage:
    """One decoded message: its address, its arguments, and the time-tag of the bundle it came in."""

    address: str
    args: tuple[Any, ...]
    timetag: int = IMMEDIATE


def _string(data: bytes, pos: int, what: str) -> tuple[str, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise OscParseError(f"{what} at byte {pos} is not NUL-terminated")
    try:
        text = data[pos:end].decode("utf-8")
    except UnicodeDecodeError:
        raise OscParseError(f"{what} at byte {pos} is not UTF-8") from None
    nxt = (end + 4) & ~3  # past the NUL, padded to 4 bytes
    if nxt > len(data):
        raise OscParseError(f"{what} at byte {pos} runs past the end of the datagram")
    return text, nxt


def _need(data: bytes, pos: int, n: int, what: str) -> None:
    if n < 0 or pos + n > len(data):
        raise OscParseError(f"{what} at byte {pos} needs {n} bytes, {len(data) - pos} remain")


def _message(data: bytes, timetag: int) -> OscMessage:
    address, pos = _string(data, 0, "address")
    if not address.startswith("/"):
        raise OscParseError(f"address {address[:64]!r} does not start with '/'")
    if pos >= len(data):  # no type tag string: an old-style message without arguments
        return OscMessage(address, (), timetag)
    tags, pos = _string(data, pos, "type tags")
    if not tags.startswith(","):
        raise OscParseError("type tag string does not start with ','")
    tags = tags[1:]
    if len(tags) > MAX_ARGS:
        raise OscParseError(f"{len(tags)} arguments > {MAX_ARGS}")
    args: list[Any] = []
    for tag in tags:
        if tag in "ifcrm":
            _need(data, pos, 4, f"'{tag}' argument")
            chunk = data[pos:pos + 4]
            pos += 4
            if tag == "i":
                args.append(struct.unpack(">i", chunk)[0])
            elif tag == "f":
                args.append(struct.unpack(">f", chunk)[0])
            elif tag == "c":
                args.append(chr(struct.unpack(">I", chunk)[0] & 0x10FFFF))
            else:
                args.append(struct.unpack(">I", chunk)[0])
        elif tag in "hdt":
            _need(data, pos, 8, f"'{tag}' argument")
            fmt = {"h": ">q", "d": ">d", "t": ">Q"}[tag]
            args.append(struct.unpack(fmt, data[pos:pos + 8])[0])
            pos += 8
        elif tag in "sS":
            s, pos = _string(data, pos, "string argument")
            args.append(s)
        elif tag == "b":
            _need(data, pos, 4, "blob size")
            (n,) = struct.unpack(">i", data[pos:pos + 4])
            pos += 4
            _need(data, pos, n, "blob")
            args.append(data[pos:pos + n])
            pos += (n + 3) & ~3
            if pos > len(data):
                raise OscParseError("blob padding runs past the end of the datagram")
        elif tag in "TFNI":
            args.append({"T": True, "F": False, "N": None, "I": float("inf")}[tag])
        elif tag in "[]":
            raise OscParseError("array arguments are not supported")
        else:
            raise OscParseError(f"unknown argument type {tag!r}")
    return OscMessage(address, tuple(args), timetag)


def parse_datagram(data: bytes) -> list[OscMessage]:
    """Decode one datagram (a message or a bundle) into its messages, in order.

    Raises:
        OscParseError: malformed, or beyond a limit; nothing is returned for a datagram that fails.
    """
    if len(data) > MAX_DATAGRAM:
        raise OscParseError(f"datagram of {len(data)} bytes > {MAX_DATAGRAM}")
    if len(data) == 0 or len(data) % 4:
        raise OscParseError(f"datagram length {len(data)} is not a positive multiple of 4")
    out: list[OscMessage] = []
    # Iterative walk over (bytes, depth, timetag) so depth costs no Python recursion.
    todo: list[tuple[bytes, int, int]] = [(data, 0, IMMEDIATE)]
    while todo:
        chunk, depth, tag = todo.pop()
        if chunk.startswith(_BUNDLE):
            if depth >= MAX_DEPTH:
                raise OscParseError(f"bundles nested deeper than {MAX_DEPTH}")
            _need(chunk, 8, 8, "bundle time-tag")
            (timetag,) = struct.unpack(">Q", chunk[8:16])
            pos = 16
            inner: list[tuple[bytes, int, int]] = []
            while pos < len(chunk):
                _need(chunk, pos, 4, "bundle element size")
                (n,) = struct.unpack(">i", chunk[pos:pos + 4])
                pos += 4
                if n <= 0 or n % 4:
                    raise OscParseError(f"bundle element size {n} at byte {pos - 4} is not a positive multiple of 4")
                _need(chunk, pos, n, "bundle element")
                inner.append((chunk[pos:pos + n], depth + 1, timetag))
                pos += n
                if len(inner) + len(out) > MAX_MESSAGES:
                    raise OscParseError(f"more than {MAX_MESSAGES} elements in one datagram")
            todo.extend(reversed(inner))
        else:
            out.append(_message(chunk, tag))
            if len(out) > MAX_MESSAGES:
                raise OscParseError(f"more than {MAX_MESSAGES} messages in one datagram")
    return out


def _pad(b: bytes) -> bytes:
    return b + b"\x00" * (4 - len(b) % 4)


def encode_message(address: str, *args: str | int | float) -> bytes:
    """Encode a message of string, int32 and float32 arguments (the control server's replies)."""
    tags = ","
    body = b""
    for a in args:
        if isinstance(a, str):
            tags += "s"
            body += _pad(a.encode("utf-8"))
        elif isinstance(a, bool) or not isinstance(a, int | float):
            raise TypeError(f"cannot encode {type(a).__name__}")
        elif isinstance(a, int):
            tags += "i"
            body += struct.pack(">i", a)
        else:
            tags += "f"
            body += struct.pack(">f", a)
    return _pad(address.encode("utf-8")) + _pad(tags.encode("ascii")) + body

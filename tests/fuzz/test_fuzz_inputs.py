"""Fuzzing every parser and message handler that takes outside input (Hypothesis; issue 13).

Each target gets random and structure-aware mutated input; it must return or raise its documented error,
never hang, crash or grow memory: every example runs under a Hypothesis deadline and a tracemalloc peak
limit. Examples are derandomised (the same cases on every CI run; ``GROOVECAST_FUZZ_SEED`` varies them) and
the whole suite takes well under a minute on 2 cores (``GROOVECAST_FUZZ_SCALE`` multiplies the cases).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import socket
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from engine.audio.source import AudioSourceError, FileSource, read_wav
from engine.clock import FakeClock
from engine.frames import ControlMessage
from engine.models.gpt import GPTConfig
from engine.models.model_card import check_card
from engine.models.vqvae import VQVAEConfig
from engine.skeleton.aistpp import AistppError, motion_from_dict, restricted_load
from engine.skeleton.bvh import BvhError, parse_bvh
from streams.control import ControlError, parse_control
from streams.osc_control import OscControlServer
from streams.osc_parse import MAX_DATAGRAM, OscParseError, encode_message, parse_datagram
from streams.ws_server import PoseServer, _Client

SCALE = float(os.environ.get("GROOVECAST_FUZZ_SCALE", "1"))
SEED = int(os.environ.get("GROOVECAST_FUZZ_SEED", "13"))
PEAK_BYTES = 64 * 1024 * 1024  # no example may allocate more than this (Python + numpy allocations)


def fuzz(n: int, deadline_ms: int = 500) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Hypothesis settings for one target: ``n`` cases (times the scale), derandomised, a per-case deadline."""
    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        fn = settings(max_examples=max(1, int(n * SCALE)), deadline=deadline_ms, derandomize=SEED == 13,
                      database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                            HealthCheck.function_scoped_fixture])(fn)
        return seed(SEED)(fn) if SEED != 13 else fn
    return wrap


def bounded(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with allocation tracing on and check its peak (tracing only the target, not Hypothesis)."""
    tracemalloc.start()
    try:
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"one input allocated {peak / 1e6:.0f} MB"
    return out


# ------------------------------------------------------------------------------------------------ OSC

def _pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)


osc_arg = st.one_of(st.integers(-2**31, 2**31 - 1), st.floats(width=32), st.text(max_size=40))


@st.composite
def osc_messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["genre", "text", "intensity", "energy", "keyframe", "reset", "x"]))
    args = draw(st.lists(osc_arg, max_size=4))
    data = encode_message(f"/groovecast/control/{kind}", *args)
    if draw(st.booleans()):  # corrupt it
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
    return data


@st.composite
def osc_packets(draw: st.DrawFn, depth: int = 0) -> bytes:
    if depth >= 6 or draw(st.booleans()):
        return draw(osc_messages())
    elems = draw(st.lists(osc_packets(depth + 1), max_size=4))  # type: ignore[call-arg]
    body = b""
    for e in elems:
        size = draw(st.sampled_from([len(e), len(e), -4, 0, len(e) + 4, 2**31 - 1, 3]))
        body += struct.pack(">i", size) + e
    return b"#bundle\0" + struct.pack(">Q", draw(st.integers(0, 2**64 - 1))) + body


@fuzz(800, deadline_ms=200)
@given(st.one_of(st.binary(max_size=512), osc_packets()))  # type: ignore[call-arg]
def test_osc_parser(data: bytes) -> None:
    try:
        msgs = bounded(lambda: parse_datagram(data))
    except OscParseError:
        return
    assert all(m.address.startswith("/") for m in msgs)


def test_osc_parser_bounds() -> None:
    assert parse_datagram(encode_message("/a", 1, 2.5, "x"))[0].args == (1, 2.5, "x")
    with pytest.raises(OscParseError, match=r"bytes > \d+"):
        parse_datagram(_pad(b"/" + b"a" * MAX_DATAGRAM))
    nested = encode_message("/a")
    for _ in range(10):
        nested = b"#bundle\0" + struct.pack(">Qi", 1, len(nested)) + nested
    with pytest.raises(OscParseError, match="nested deeper"):
        parse_datagram(nested)


@pytest.fixture(scope="module")
def osc_server() -> Iterator[tuple[OscControlServer, list[ControlMessage], tuple[str, int]]]:
    got: list[ControlMessage] = []
    server = OscControlServer("127.0.0.1", 0, got.append, per_peer_rate=1e9, total_rate=1e9)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # replies go here and are never read
    sink.bind(("127.0.0.1", 0))
    yield server, got, sink.getsockname()
    sink.close()
    server.close()


@fuzz(500, deadline_ms=200)
@given(st.one_of(st.binary(max_size=256), osc_packets()))  # type: ignore[call-arg]
def test_osc_control_handler(osc_server: tuple[OscControlServer, list[ControlMessage], tuple[str, int]],
                             data: bytes) -> None:
    server, got, peer = osc_server
    before = len(got)
    bounded(lambda: server.handle_datagram(data, peer))  # never raises
    for m in got[before:]:
        assert m.kind in ("genre", "text", "intensity", "energy", "keyframe", "reset")
    got.clear()


# ------------------------------------------------------------------------------- control JSON / WebSocket

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=5),
                                                           st.dictionaries(st.text(max_size=10), kids, max_size=5)),
                          max_leaves=30)


@st.composite
def control_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = {"type": draw(st.sampled_from(["control", "control", "ping", "subscribe", "x"])),
                           "kind": draw(st.one_of(st.sampled_from(["genre", "text", "keyframe", "intensity",
                                                                   "energy", "reset"]), json_value))}
    if draw(st.booleans()):
        obj["performer"] = draw(st.one_of(st.integers(-3, 5), json_value))
    obj["value"] = draw(st.one_of(
        json_value,
        st.fixed_dictionaries({"frames_ahead": st.one_of(st.integers(-5, 700), json_value)},
                              optional={"root": st.lists(json_leaf, max_size=4),
                                        "rotations": st.lists(st.lists(json_leaf, max_size=5), max_size=50)})))
    return obj


def _text(obj: Any) -> str:
    return json.dumps(obj, allow_nan=True)


@fuzz(800, deadline_ms=200)
@given(st.one_of(control_objects(), json_value))
def test_control_validation(obj: Any) -> None:
    for msg in (obj, _text(obj)):
        try:
            c = bounded(lambda m=msg: parse_control(m, 0, 0))
        except ControlError as exc:
            assert len(str(exc)) < 400  # the reason quotes, never echoes everything
            continue
        assert c.kind in ("genre", "text", "keyframe", "intensity", "energy", "reset")
        if c.kind in ("intensity", "energy"):
            assert math.isfinite(c.value) and 0 <= c.value <= 1


@dataclass
class _Peer:
    """The identity of a connection as the message handler sees it (it only logs the address)."""

    remote_address: tuple[str, int] = ("127.0.0.1", 1)


@pytest.fixture(scope="module")
def ws_handler() -> tuple[PoseServer, _Client]:
    def strict(msg: ControlMessage) -> None:
        if msg.performer not in (-1, 0):
            raise ValueError(f"no performer {msg.performer}")

    server = PoseServer(on_control=strict, client_rate=1e9, control_rate=1e9)
    return server, _Client(_Peer())  # type: ignore[arg-type]


@fuzz(1000, deadline_ms=200)
@given(st.one_of(control_objects().map(_text), json_value.map(_text), st.text(max_size=200),
                 st.binary(max_size=200), st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
                 st.integers(1, 500).map(lambda n: '{"type": "control", "kind": "intensity", "value": 1' + "0" * n
                                         + "}")))
def test_websocket_message_handler(ws_handler: tuple[PoseServer, _Client], raw: str | bytes) -> None:
    server, client = ws_handler
    reply = bounded(lambda: server._on_message(client, raw))  # never raises
    assert reply is not None
    d = json.loads(reply)
    assert d["type"] in ("ack", "error", "pong", "subscribed") and len(reply) < 4096


# ------------------------------------------------------------------------------------------------- BVH

SMALL_BVH = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT arm
  {
    OFFSET 1 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 1 0 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.033333
0 0 0 0 0 0 0 0 0
1 2 3 4 5 6 7 8 9
"""
_BVH_TOKENS = ["HIERARCHY", "ROOT", "JOINT", "End", "Site", "{", "}", "OFFSET", "CHANNELS", "MOTION", "Frames:",
               "Frame", "Time:", "Xrotation", "Yposition", "0", "1", "-1", "3", "6", "1e308", "nan", "inf", "\n",
               "\ufeff", "x"]


@st.composite
def bvh_texts(draw: st.DrawFn) -> str:
    lines = SMALL_BVH.split("\n")
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "replace", "insert"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines[i:i] = [lines[i]] * draw(st.integers(1, 50))
        else:
            new = " ".join(draw(st.lists(st.sampled_from(_BVH_TOKENS), max_size=8)))
            if op == "replace":
                lines[i] = new
            else:
                lines.insert(i, new)
        if not lines:
            break
    return "\n".join(lines)


@fuzz(1000, deadline_ms=300)
@given(st.one_of(bvh_texts(), st.text(max_size=300)))
def test_bvh_parser(text: str) -> None:
    try:
        m = bounded(lambda: parse_bvh(text, "fuzz.bvh"))
    except BvhError as exc:
        assert str(exc).startswith("fuzz.bvh")
        return
    assert np.isfinite(m.data).all() and 1e-4 <= m.frame_time <= 1.0


# ----------------------------------------------------------------------------------------- WAV headers

@st.composite
def wav_files(draw: st.DrawFn) -> bytes:
    fmt = draw(st.sampled_from([1, 3, 0xFFFE, 0, 2, 6, 7]))
    ch = draw(st.sampled_from([0, 1, 2, 3, 255, 65535]))
    bits = draw(st.sampled_from([0, 1, 7, 8, 12, 16, 24, 32, 64]))
    rate = draw(st.sampled_from([0, 1, 4000, 8000, 44100, 384001, 2**32 - 1]))
    ba = draw(st.sampled_from([0, 1, max(1, ch * ((bits + 7) // 8)) % 65536]))
    data = draw(st.binary(max_size=400))
    size = draw(st.sampled_from([len(data), 0, 2**32 - 1, len(data) + 1000]))
    fmt_chunk = struct.pack("<HHIIHH", fmt, ch, rate, (rate * ba) % 2**32, ba, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", size) + data
    out = b"RIFF" + struct.pack("<I", len(body)) + body
    cut = draw(st.integers(0, len(out)))
    return out[:cut] if draw(st.booleans()) else out


@fuzz(300, deadline_ms=500)
@given(wav_files())
def test_wav_headers(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.getbasetemp() / "fuzz.wav"
    p.write_bytes(data)

    def play() -> None:
        try:
            src = FileSource(p, clock=FakeClock(), realtime=False, block_size=512)
        except AudioSourceError as exc:
            assert str(p) in str(exc)
            return
        for i, blk in enumerate(src):
            assert np.isfinite(blk.samples).all()
            if i > 200:
                break
        try:
            x, _ = read_wav(p)
            assert np.isfinite(x).all()
        except AudioSourceError:
            pass

    bounded(play)


# ---------------------------------------------------------------------------------------- model configs

_GPT_FIELDS = ["vocab_size", "n_layer", "n_head", "n_embd", "cond_dim", "n_genres", "text_dim", "context",
               "n_keyframe_slots", "dropout", "rope_base", "bogus"]


@fuzz(500, deadline_ms=200)
@given(st.dictionaries(st.sampled_from(_GPT_FIELDS),
                       st.one_of(json_leaf, st.integers(-2, 10**12), st.sampled_from([1, 2, 4, 8, 16, 64])),
                       max_size=6),
       st.dictionaries(st.sampled_from(["hidden", "n_codes", "code_dim", "lower_contact", "beta", "n_res"]),
                       st.one_of(json_value, st.integers(-2, 10**9)), max_size=4),
       json_value)
def test_model_configs(gpt: dict[str, Any], vq: dict[str, Any], card: Any) -> None:
    def check() -> None:
        for make in (lambda: GPTConfig.from_json(json.dumps(gpt)), lambda: VQVAEConfig.from_dict(vq)):
            try:
                cfg = make()
            except (ValueError, TypeError):
                continue
            if isinstance(cfg, GPTConfig):
                assert cfg.cache_bytes_per_performer() < 2**40  # sane sizes only
        with contextlib.suppress(ValueError):
            check_card({"sampling": card} if isinstance(card, dict) else card)

    bounded(check)


# -------------------------------------------------------------------------------------- AIST++ pickles

def _valid_pickle() -> bytes:
    return pickle.dumps({"smpl_poses": np.zeros((3, 72)), "smpl_trans": np.zeros((3, 3)), "smpl_scaling": [1.0]},
                        protocol=2)


@st.composite
def pickles(draw: st.DrawFn) -> bytes:
    data = bytearray(_valid_pickle())
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:i + draw(st.integers(1, 40))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=12))
        if not data:
            break
    return bytes(data)


@fuzz(800, deadline_ms=300)
@given(st.one_of(pickles(), st.binary(max_size=200)))
def test_aistpp_pickles(data: bytes) -> None:
    def load() -> None:
        try:
            obj = restricted_load(data)
        except Exception as exc:  # the reader turns any unpickling failure into one ValueError line
            assert not isinstance(exc, SystemExit | KeyboardInterrupt)
            return
        with contextlib.suppress(AistppError):
            motion_from_dict(obj, "fuzz.pkl")

    bounded(load)


def test_fuzz_sources_are_real(tmp_path: Path) -> None:
    """The seeds the mutators start from are valid inputs (so mutations explore near real data)."""
    assert parse_bvh(SMALL_BVH).num_frames == 2
    assert motion_from_dict(restricted_load(_valid_pickle())).num_frames == 3
    assert parse_control({"type": "control", "kind": "intensity", "value": 0.5}, 0, 0).value == 0.5

"""OSC encoding against byte tables, and against python-osc's independent parser."""

from __future__ import annotations

import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage as PyOscMessage

from streams.osc import (
    OscDecodeError,
    OscDouble,
    OscInt64,
    decode_message,
    decode_packet,
    encode_bundle,
    encode_message,
    encode_string,
)


@pytest.mark.parametrize(
    ("s", "expect"),
    [("", b"\0\0\0\0"), ("abc", b"abc\0"), ("root", b"root\0\0\0\0"), ("/VMC/Ext/T", b"/VMC/Ext/T\0\0")],
)
def test_string_padding(s: str, expect: bytes) -> None:
    assert encode_string(s) == expect


@pytest.mark.parametrize(
    ("address", "args", "hexbytes"),
    [
        ("/a", (1,), "2f610000" "2c690000" "00000001"),
        ("/a", (-2,), "2f610000" "2c690000" "fffffffe"),
        ("/VMC/Ext/T", (1.5,), "2f564d432f4578742f540000" "2c660000" "3fc00000"),
        ("/x", ("hi", True, False), "2f780000" "2c735446" "00000000" "68690000"),
        ("/h", (OscInt64(2**40 + 3),), "2f680000" "2c680000" "0000010000000003"),
        ("/d", (OscDouble(0.5),), "2f640000" "2c640000" "3fe0000000000000"),
        ("/e", (), "2f650000" "2c000000"),
    ],
)
def test_message_byte_table(address: str, args: tuple[object, ...], hexbytes: str) -> None:
    data = encode_message(address, args)  # type: ignore[arg-type]
    assert data.hex() == hexbytes
    assert decode_message(data).args == args


def test_bundle_byte_table() -> None:
    m1 = encode_message("/a", (1,))
    data = encode_bundle([m1, m1])
    assert data.hex() == ("2362756e646c6500" "0000000000000001" "0000000c" + m1.hex()) + "0000000c" + m1.hex()
    tt, msgs = decode_packet(data)
    assert tt == 1 and [m.address for m in msgs] == ["/a", "/a"]


def test_python_osc_parses_our_bytes() -> None:
    msg = encode_message("/VMC/Ext/Bone/Pos", ("Hips", 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 1.0))
    py = PyOscMessage(msg)
    assert py.address == "/VMC/Ext/Bone/Pos"
    assert py.params[0] == "Hips" and py.params[2] == pytest.approx(0.9)
    b = OscBundle(encode_bundle([msg, encode_message("/VMC/Ext/T", (2.0,))]))
    assert b.num_contents == 2
    contents = list(b)
    assert contents[1].address == "/VMC/Ext/T" and contents[1].params == [2.0]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="start with '/'"):
        encode_message("VMC", ())
    with pytest.raises(TypeError, match="cannot encode list"):
        encode_message("/a", ([1],))  # type: ignore[arg-type]
    with pytest.raises(OscDecodeError, match="unterminated"):
        decode_message(b"/abc")
    with pytest.raises(OscDecodeError, match="overruns"):
        decode_packet(b"#bundle\0" + bytes(8) + b"\0\0\0\x10" + b"/a\0\0")

"""JSON and binary pose frames: schema, header byte table, round trips."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import numpy as np
import pytest

from engine.frames import PoseFrame
from streams.wire_binary import HEADER, decode_binary, encode_binary
from streams.wire_json import decode_pose_json, encode_json, hello_message

FrameFactory = Callable[..., PoseFrame]


def test_json_schema_v1(make_frame: FrameFactory) -> None:
    text = encode_json(make_frame(bpm=120.0, beat=True, energy=0.3), server_ns=5)
    d = json.loads(text)
    assert set(d) == {
        "type", "v", "performer", "skeleton", "frame_index", "sample_index", "src_monotonic_ns", "server_ns",
        "time_s", "fps", "bpm", "beat_phase", "beat", "energy", "root", "rotations", "positions",
    }
    assert (d["type"], d["v"], d["frame_index"], d["sample_index"]) == ("pose", 1, 10, 7350)
    assert d["src_monotonic_ns"] == 123_456_789_012 and d["server_ns"] == 5 and d["beat"] is True
    assert len(d["rotations"]) == 43 and d["rotations"][0] == [1.0, 0.0, 0.0, 0.0]
    assert len(d["positions"]) == 43 and d["positions"][0] == pytest.approx([0.1, 0.9, 0.2])
    back = decode_pose_json(text)
    assert back["positions"].shape == (43, 3)


def test_json_rejects_nan(make_frame: FrameFactory) -> None:
    with pytest.raises(ValueError):
        encode_json(make_frame(bpm=float("nan")), server_ns=0)


def test_hello_lists_skeletons() -> None:
    d = json.loads(hello_message(1, [0]))
    assert d["type"] == "hello" and d["skeletons"]["cmu"]["parents"][:3] == [-1, 0, 1]
    assert len(d["skeletons"]["smpl"]["joints"]) == 24


def test_hello_names_the_groups_that_share_a_world_frame() -> None:
    """A couple's two bodies are one unit (the viewer keeps their placement); no groups: every performer alone."""
    assert json.loads(hello_message(1, [0, 1, 2, 3], [[1, 0], [2, 3]]))["groups"] == [[0, 1], [2, 3]]
    assert json.loads(hello_message(1, [0, 1]))["groups"] == []


def test_hello_carries_the_tpose_corrections() -> None:
    """Clients (the viewer's avatars) turn rest-relative world rotations into T-pose-relative ones with these."""
    from engine.skeleton import rotations as R
    from engine.skeleton.humanoid import tpose_corrections
    from engine.skeleton.skeleton import CMU_SKELETON

    tq = np.array(json.loads(hello_message(1, [0]))["skeletons"]["cmu"]["tpose"])
    assert tq.shape == (CMU_SKELETON.num_joints, 4)
    np.testing.assert_allclose(R.quat_to_matrix(tq), tpose_corrections(CMU_SKELETON), atol=1e-5)


def test_binary_header_byte_table(make_frame: FrameFactory) -> None:
    data = encode_binary(make_frame(bpm=120.0, beat=True, beat_phase=0.5, energy=0.25), server_ns=99)
    expect_head = (
        b"GCPF" + bytes([1, 0b11]) + struct.pack("<HHH", 0, 43, 3) + struct.pack("<I", 10)
        + struct.pack("<qqq", 7350, 123_456_789_012, 99) + struct.pack("<d", 1 / 3)
        + struct.pack("<ffff", 30.0, 120.0, 0.5, 0.25)
    )
    assert HEADER.size == 64
    assert data[:64] == expect_head
    assert data[64:68] == b"cmu\0"
    assert len(data) == 68 + 4 * (3 + 43 * 4 + 43 * 3)
    assert struct.unpack_from("<3f", data, 68) == pytest.approx((0.1, 0.9, 0.2))


def test_binary_round_trip_and_errors(make_frame: FrameFactory) -> None:
    f = make_frame(beat=False)
    b = decode_binary(encode_binary(f, server_ns=42))
    assert (b.skeleton, b.frame_index, b.sample_index, b.src_monotonic_ns, b.server_ns) == ("cmu", 10, 7350,
                                                                                             123_456_789_012, 42)
    assert b.beat is False and b.positions is not None
    np.testing.assert_array_equal(b.rotations, f.rotations)
    data = encode_binary(f, server_ns=1)
    with pytest.raises(ValueError, match="bad magic"):
        decode_binary(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="should be"):
        decode_binary(data[:-4])
    with pytest.raises(ValueError, match="at least 64"):
        decode_binary(data[:10])

"""VJ OSC profile: addresses under /groovecast/<performer>/, pulse, values."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from engine.frames import PoseFrame
from engine.skeleton.skeleton import CMU_SKELETON
from streams.osc import decode_packet
from streams.vj import encode_vj

FrameFactory = Callable[..., PoseFrame]


def test_vj_bundle(make_frame: FrameFactory) -> None:
    f = make_frame(performer=2, bpm=124.0, beat_phase=0.25, beat=True, energy=0.5)
    _, msgs = decode_packet(encode_vj(f))
    by = {m.address: m for m in msgs}
    assert all(a.startswith("/groovecast/2/") for a in by)
    assert by["/groovecast/2/frame"].args == (10, "7350", "123456789012")  # 64-bit stamps as exact strings
    assert by["/groovecast/2/beat"].args == (1,)
    assert by["/groovecast/2/bpm"].args[0] == pytest.approx(124.0)
    assert by["/groovecast/2/phase"].args[0] == pytest.approx(0.25)
    assert by["/groovecast/2/energy"].args[0] == pytest.approx(0.5)
    np.testing.assert_allclose(np.array(by["/groovecast/2/root"].args, float), np.array([0.1, 0.9, 0.2]), atol=1e-6)
    head = np.array(by["/groovecast/2/joint/head"].args, float)
    rest = CMU_SKELETON.rest_positions()[CMU_SKELETON.index("head")] + [0.1, 0.9, 0.2]
    np.testing.assert_allclose(head, rest, atol=1e-6)
    assert sum(a.startswith("/groovecast/2/joint/") for a in by) == 43
    assert by["/groovecast/2/beat"].args == (1,)
    _, msgs = decode_packet(encode_vj(make_frame(beat=False)))
    assert {m.address: m.args for m in msgs}["/groovecast/0/beat"] == (0,)


def test_vj_uses_core_type_tags_only(make_frame: FrameFactory) -> None:
    _, msgs = decode_packet(encode_vj(make_frame(sample_index=2**40, capture_ns=2**62)))
    from streams.osc import type_tag

    assert {type_tag(a) for m in msgs for a in m.args} <= {"i", "f", "s"}

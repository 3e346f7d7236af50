"""VMC bundles: structure, one message as a byte table, values in Unity space for known poses."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle

from engine.frames import PoseFrame
from engine.skeleton import rotations as R
from engine.skeleton.skeleton import CMU_SKELETON, SMPL_SKELETON
from streams.osc import decode_packet, encode_message
from streams.prepare import bone_map, prepare
from streams.vmc import STAMP_ADDRESS, encode_vmc

FrameFactory = Callable[..., PoseFrame]


def _bones(data: bytes) -> dict[str, tuple[float, ...]]:
    _, msgs = decode_packet(data)
    return {str(m.args[0]): tuple(float(a) for a in m.args[1:]) for m in msgs if m.address == "/VMC/Ext/Bone/Pos"}


def test_bone_message_byte_table() -> None:
    data = encode_message("/VMC/Ext/Bone/Pos", ("Hips", 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    expect = (
        b"/VMC/Ext/Bone/Pos\0\0\0" + b",sfffffff\0\0\0" + b"Hips\0\0\0\0"
        + struct.pack(">7f", 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    )
    assert data == expect and len(data) == 68


def test_bundle_structure_and_stamp(make_frame: FrameFactory) -> None:
    data = encode_vmc(make_frame())
    tt, msgs = decode_packet(data)
    assert tt == 1  # "immediately"
    addrs = [m.address for m in msgs]
    assert addrs[:4] == ["/VMC/Ext/OK", "/VMC/Ext/T", STAMP_ADDRESS, "/VMC/Ext/Root/Pos"]
    assert addrs[4:] == ["/VMC/Ext/Bone/Pos"] * 41  # 43 CMU joints minus the two unmapped buttocks
    assert msgs[0].args == (1, 3, 0, 1)
    assert msgs[1].args[0] == pytest.approx(1 / 3)
    assert msgs[2].args == (0, 10, 7350, 123_456_789_012)
    assert [str(m.args[0]) for m in msgs[4:]] == list(bone_map(CMU_SKELETON).names)
    assert OscBundle(data).num_contents == 45  # python-osc agrees


def test_rest_pose_values_in_unity_space(make_frame: FrameFactory) -> None:
    data = encode_vmc(make_frame(root=(0.1, 0.9, 0.2)))
    _, msgs = decode_packet(data)
    assert msgs[3].args[0] == "root"
    np.testing.assert_allclose(np.array(msgs[3].args[1:], float), np.array([-0.1, 0, 0.2, 0, 0, 0, 1]), atol=1e-7)
    b = _bones(data)
    np.testing.assert_allclose(b["Hips"], [0, 0.9, 0, 0, 0, 0, 1], atol=1e-7)
    off = CMU_SKELETON.offsets
    np.testing.assert_allclose(b["LeftUpperArm"][:3], off[CMU_SKELETON.index("lShldr")] * [-1, 1, 1], atol=1e-7)
    # the thigh's local position folds in the unmapped buttock
    thigh = off[CMU_SKELETON.index("lButtock")] + off[CMU_SKELETON.index("lThigh")]
    np.testing.assert_allclose(b["LeftUpperLeg"][:3], thigh * [-1, 1, 1], atol=1e-6)
    for v in b.values():
        np.testing.assert_allclose(v[3:], [0, 0, 0, 1], atol=1e-7)


def test_rotations_converted_and_folded(make_frame: FrameFactory) -> None:
    f = make_frame()
    rot = f.rotations.copy()
    rot[0] = R.axis_angle_to_quat(np.array([0.0, np.pi / 2, 0.0]))  # hips: +90 deg yaw (engine)
    q_buttock = R.quat_normalize(np.array([0.9, 0.1, -0.3, 0.2]))
    rot[CMU_SKELETON.index("rButtock")] = q_buttock
    b = _bones(encode_vmc(make_frame(rotations=rot)))
    s = np.sqrt(0.5)
    # Unity (x, y, z, w) = (x, -y, -z, w) of the engine quaternion: a -90 deg yaw in Unity
    np.testing.assert_allclose(b["Hips"][3:], [0, -s, 0, s], atol=1e-6)
    w, x, y, z = q_buttock
    np.testing.assert_allclose(b["RightUpperLeg"][3:], [x, -y, -z, w], atol=1e-6)


def test_positions_from_frame_used_when_present(make_frame: FrameFactory) -> None:
    f = make_frame()
    p = prepare(f)
    moved = p.positions.copy()
    moved[CMU_SKELETON.index("head")] += [0, 0.05, 0]
    b = _bones(encode_vmc(make_frame(positions=moved)))
    head_off = CMU_SKELETON.offsets[CMU_SKELETON.index("head")]
    np.testing.assert_allclose(b["Head"][:3], (head_off + np.array([0, 0.05, 0])) * [-1, 1, 1], atol=1e-6)


def test_wrong_joint_count_is_clear(make_frame: FrameFactory) -> None:
    bad = make_frame(rotations=np.zeros((24, 4), np.float32))
    with pytest.raises(ValueError, match=r"skeleton 'cmu' needs rotations \[43, 4\]"):
        encode_vmc(bad)


def test_smpl_pose_maps_22_bones() -> None:
    rot = np.zeros((24, 4), np.float32)
    rot[:, 0] = 1
    f = PoseFrame(0, 0, frame_index=0, performer=0, skeleton="smpl", root_position=np.array([0, 0.95, 0], np.float32),
                  rotations=rot)
    b = _bones(encode_vmc(f))
    assert len(b) == 22 and "UpperChest" in b and "LeftToes" in b
    np.testing.assert_allclose(b["LeftUpperArm"][:3],
                               SMPL_SKELETON.offsets[SMPL_SKELETON.index("left_shoulder")] * [-1, 1, 1], atol=1e-6)

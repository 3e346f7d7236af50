"""VMC bundles: structure, one message as a byte table, values in Unity space for known poses."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle

from engine.frames import PoseFrame
from engine.skeleton import rotations as R
from engine.skeleton.humanoid import tpose_corrections, tpose_positions
from engine.skeleton.skeleton import CMU_SKELETON, SMPL_SKELETON
from streams.osc import decode_packet, encode_message
from streams.prepare import bone_map, prepare
from streams.vmc import STAMP_ADDRESS, VMC_TYPE_TAGS, encode_vmc

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


def test_bundle_structure(make_frame: FrameFactory) -> None:
    data = encode_vmc(make_frame())
    tt, msgs = decode_packet(data)
    assert tt == 1  # "immediately"
    addrs = [m.address for m in msgs]
    assert addrs[:3] == ["/VMC/Ext/OK", "/VMC/Ext/T", "/VMC/Ext/Root/Pos"]  # no groovecast extension by default
    assert addrs[3:] == ["/VMC/Ext/Bone/Pos"] * 41  # 43 CMU joints minus the two unmapped buttocks
    assert msgs[0].args == (1, 3, 0, 1)
    assert msgs[1].args[0] == pytest.approx(1 / 3)
    assert [str(m.args[0]) for m in msgs[3:]] == list(bone_map(CMU_SKELETON).names)
    assert OscBundle(data).num_contents == 44  # python-osc agrees


def test_stamp_is_opt_in_with_core_types_only(make_frame: FrameFactory) -> None:
    big = make_frame(sample_index=2**40 + 7, capture_ns=2**62 + 9)  # beyond int32: must survive exactly
    _, msgs = decode_packet(encode_vmc(big, stamp=True))
    assert [m.address for m in msgs[:4]] == ["/VMC/Ext/OK", "/VMC/Ext/T", STAMP_ADDRESS, "/VMC/Ext/Root/Pos"]
    assert msgs[2].args == (0, 10, str(2**40 + 7), str(2**62 + 9))
    assert _raw_type_tags(encode_vmc(big, stamp=True))[2] == "iiss"


def _raw_type_tags(bundle: bytes) -> list[str]:
    """Type-tag strings of every message in a bundle, read straight from the bytes (not via our decoder)."""
    assert bundle[:8] == b"#bundle\0" and len(bundle) % 4 == 0
    pos, tags = 16, []
    while pos < len(bundle):
        (size,) = struct.unpack_from(">i", bundle, pos)
        msg = bundle[pos + 4 : pos + 4 + size]
        assert size % 4 == 0 and len(msg) == size
        addr_end = msg.index(b"\0")
        tag_start = (addr_end // 4 + 1) * 4  # the address is NUL-padded to a multiple of 4 bytes
        assert msg[tag_start : tag_start + 1] == b","
        tags.append(msg[tag_start + 1 : msg.index(b"\0", tag_start)].decode("ascii"))
        pos += 4 + size
    return tags


@pytest.mark.parametrize("stamp", [False, True])
@pytest.mark.parametrize("skeleton", ["cmu", "smpl"])
def test_only_core_type_tags_in_a_vmc_bundle(make_frame: FrameFactory, stamp: bool, skeleton: str) -> None:
    """uOSC (EVMC4U) knows i f s b T F and loses its place on int64/double: those must never appear."""
    if skeleton == "cmu":
        f = make_frame(sample_index=2**40, capture_ns=2**62)
    else:
        rot = np.zeros((24, 4), np.float32)
        rot[:, 0] = 1
        f = PoseFrame(2**40, 2**62, frame_index=3, performer=1, skeleton="smpl",
                      root_position=np.array([0, 0.95, 0], np.float32), rotations=rot)
    tags = _raw_type_tags(encode_vmc(f, stamp=stamp))
    assert len(tags) == (44 if skeleton == "cmu" else 25) + stamp
    assert set("".join(tags)) <= set(VMC_TYPE_TAGS) == set("ifs")


def test_vmcp_package_reads_every_message(make_frame: FrameFactory) -> None:
    """The `vmcp` package's VMC events, fed by osc4py3's parser (two implementations we did not write)."""
    vmcp_events = pytest.importorskip("vmcp.events")
    osc4py3 = pytest.importorskip("osc4py3.oscbuildparse")
    rot = make_frame().rotations.copy()
    rot[CMU_SKELETON.index("lForeArm")] = R.axis_angle_to_quat(np.array([0.0, 0.0, 0.7]))
    data = encode_vmc(make_frame(rotations=rot), stamp=True)
    packet = osc4py3.decode_packet(data)
    msgs = list(packet.elements)
    by = {"/VMC/Ext/Bone/Pos": vmcp_events.BoneTransformEvent, "/VMC/Ext/Root/Pos": vmcp_events.RootTransformEvent,
          "/VMC/Ext/OK": vmcp_events.StateEvent, "/VMC/Ext/T": vmcp_events.RelativeTimeEvent}
    events = [by[m.addrpattern].from_message_data("test", m.addrpattern, tuple(m.arguments))
              for m in msgs if m.addrpattern in by]
    assert len(events) == 44 and len(msgs) == 45
    bones = {str(e.joint.value): e for e in events if isinstance(e, vmcp_events.BoneTransformEvent)}
    ours = _bones(data)
    assert set(bones) == set(ours)
    for name, e in bones.items():
        q = e.rotation
        np.testing.assert_allclose([q.x, q.y, q.z, q.w], ours[name][3:], atol=1e-7)
        assert abs(np.linalg.norm([q.x, q.y, q.z, q.w]) - 1) < 1e-6


def _unity_xyzw(m: np.ndarray) -> np.ndarray:
    """Engine-space rotation matrix -> the (x, y, z, w) a VMC message carries (Unity space), sign-normalised."""
    w, x, y, z = R.matrix_to_quat(m)
    q = np.array([x, -y, -z, w])
    return q * np.sign(q[3] or 1.0)


def _sign(v: tuple[float, ...]) -> np.ndarray:
    q = np.array(v[3:])
    return q * np.sign(q[3] or 1.0)


def test_rest_pose_values_in_unity_space(make_frame: FrameFactory) -> None:
    data = encode_vmc(make_frame(root=(0.1, 0.9, 0.2)))
    _, msgs = decode_packet(data)
    assert msgs[2].args[0] == "root"
    np.testing.assert_allclose(np.array(msgs[2].args[1:], float), np.array([-0.1, 0, 0.2, 0, 0, 0, 1]), atol=1e-7)
    b = _bones(data)
    c = tpose_corrections(CMU_SKELETON)
    np.testing.assert_allclose(b["Hips"][:3], [0, 0.9, 0], atol=1e-7)
    np.testing.assert_allclose(_sign(b["Hips"]), _unity_xyzw(c[0]), atol=1e-6)  # rest = C_hips (2 deg)
    t = tpose_positions(CMU_SKELETON)
    i = CMU_SKELETON.index
    np.testing.assert_allclose(b["LeftUpperArm"][:3], (t[i("lShldr")] - t[i("lCollar")]) * [-1, 1, 1], atol=1e-7)
    # the thigh's local position folds in the unmapped buttock
    np.testing.assert_allclose(b["LeftUpperLeg"][:3], (t[i("lThigh")] - t[i("hip")]) * [-1, 1, 1], atol=1e-6)
    for v in b.values():
        assert abs(np.linalg.norm(v[3:]) - 1) < 1e-6


def test_rotations_converted_and_folded(make_frame: FrameFactory) -> None:
    f = make_frame()
    rot = f.rotations.copy()
    rot[0] = R.axis_angle_to_quat(np.array([0.0, np.pi / 2, 0.0]))  # hips: +90 deg yaw (engine)
    q_buttock = R.quat_normalize(np.array([0.9, 0.1, -0.3, 0.2]))
    rot[CMU_SKELETON.index("rButtock")] = q_buttock
    b = _bones(encode_vmc(make_frame(rotations=rot)))
    c = tpose_corrections(CMU_SKELETON)
    yaw = R.quat_to_matrix(rot[0].astype(np.float64))
    # Unity (x, y, z, w) = (x, -y, -z, w) of the engine quaternion: a -90 deg yaw in Unity, times C_hips
    np.testing.assert_allclose(_sign(b["Hips"]), _unity_xyzw(yaw @ c[0]), atol=1e-6)
    # the buttock (no Humanoid bone) folds into the thigh, relative to the hips: (W_hip C_hip)^T W_thigh C_thigh
    thigh = CMU_SKELETON.index("rThigh")
    want = (yaw @ c[0]).T @ yaw @ R.quat_to_matrix(q_buttock) @ c[thigh]
    np.testing.assert_allclose(_sign(b["RightUpperLeg"]), _unity_xyzw(want), atol=1e-6)


def test_positions_from_frame_used_when_present(make_frame: FrameFactory) -> None:
    f = make_frame()
    p = prepare(f)
    moved = p.positions.copy()
    moved[0] += [0, 0.05, 0]  # the hips (and so the body) 5 cm higher: only the Hips position says so
    b = _bones(encode_vmc(make_frame(positions=moved)))
    np.testing.assert_allclose(b["Hips"][:3], [0, 0.95, 0], atol=1e-6)


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
    t = tpose_positions(SMPL_SKELETON)
    i = SMPL_SKELETON.index
    np.testing.assert_allclose(b["LeftUpperArm"][:3], (t[i("left_shoulder")] - t[i("left_collar")]) * [-1, 1, 1],
                               atol=1e-6)

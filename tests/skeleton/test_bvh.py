"""BVH reader and writer: the shared CMU take, any channel order, round trips, malformed files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.skeleton import rotations as R
from engine.skeleton.bvh import BvhError, parse_bvh, read_bvh, write_bvh, write_bvh_motion
from engine.skeleton.skeleton import CMU_SKELETON, forward_kinematics

SMALL = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Zposition Xposition Yposition Yrotation Xrotation Zrotation
  JOINT arm
  {
    OFFSET 1 0 0
    CHANNELS 3 Xrotation Zrotation Yrotation
    End Site
    {
      OFFSET 1 0 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
3 1 2 0 0 0 0 0 0
0 0 0 90 0 0 0 90 0
"""


def test_small_file_any_channel_order() -> None:
    m = parse_bvh(SMALL)
    assert m.fps == 2.0 and m.num_frames == 2
    assert m.rotation_orders == ("YXZ", "XZY")
    np.testing.assert_allclose(m.root_positions[0], [1, 2, 3])  # Z,X,Y channels mapped to x,y,z
    pos = forward_kinematics(m.skeleton, m.root_positions, m.local_rot_mats)
    # frame 1: root yaw 90 about Y takes +X to -Z; arm's 90 about Z (second channel) then points its child up
    np.testing.assert_allclose(pos[1, 1], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(pos[1, 0], [0, 0, 0], atol=1e-12)
    assert 1 in m.skeleton.end_sites


def test_cmu_take_reads(cmu_take: Path) -> None:
    m = read_bvh(cmu_take)
    assert m.skeleton.name == "cmu"
    assert m.skeleton.joint_names == CMU_SKELETON.joint_names
    np.testing.assert_allclose(m.skeleton.offsets, CMU_SKELETON.offsets)
    assert m.num_frames == 2242 and m.fps == pytest.approx(120.0, rel=1e-3)
    assert m.rotation_orders[0] == "ZYX" and m.rotation_orders[1] == "ZXY"
    np.testing.assert_allclose(m.root_positions[0], [-0.537652, 0.658012, -0.017330])
    np.testing.assert_allclose(m.euler[0, 0], [-103.167999, 86.470299, -95.482903])
    pos = forward_kinematics(m.skeleton, m.root_positions, m.local_rot_mats)
    # a standing dancer: head above hips above feet, all frames
    head, hip, foot = (m.skeleton.index(n) for n in ("head", "hip", "lFoot"))
    assert np.all(pos[:, head, 1] > pos[:, hip, 1]) and np.all(pos[:, hip, 1] > pos[:, foot, 1])


def test_cmu_round_trip(tmp_path: Path, cmu_take: Path) -> None:
    m = read_bvh(cmu_take)
    out = tmp_path / "rt.bvh"
    write_bvh_motion(out, m)
    back = read_bvh(out)
    assert back.rotation_orders == m.rotation_orders
    np.testing.assert_array_equal(back.euler, m.euler)
    np.testing.assert_array_equal(back.root_positions, m.root_positions)


def test_write_from_matrices_reads_back_same_rotations(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rot = R.quat_to_matrix(R.quat_normalize(rng.normal(size=(4, 43, 4))))
    root = rng.normal(size=(4, 3))
    out = tmp_path / "m.bvh"
    write_bvh(out, CMU_SKELETON, root, 1 / 30, local_rot_mats=rot, rotation_orders="YZX")
    back = read_bvh(out)
    assert back.skeleton.name == "cmu" and back.rotation_orders[5] == "YZX"
    np.testing.assert_allclose(back.local_rot_mats, rot, atol=1e-6)
    np.testing.assert_allclose(back.root_positions, root, atol=1e-6)
    # and written Euler angles come back as written
    eul = back.euler
    write_bvh(out, CMU_SKELETON, root, 1 / 30, euler=eul, rotation_orders="YZX")
    np.testing.assert_array_equal(read_bvh(out).euler, eul)


@pytest.mark.parametrize(
    ("mutate", "line", "message"),
    [
        (lambda s: s.replace("HIERARCHY", "HIERARCHX"), 1, "expected HIERARCHY"),
        (lambda s: s.replace("OFFSET 1 0 0\n    CHANNELS", "OFFSET 1 zero 0\n    CHANNELS"), 8, "not a number"),
        (lambda s: s.replace("CHANNELS 3 Xrotation", "CHANNELS 3 Wrotation"), 9, "unknown channel 'Wrotation'"),
        (lambda s: s.replace("CHANNELS 3", "CHANNELS 4"), 9, "says 4 but lists 3"),
        (lambda s: s.replace("3 1 2 0 0 0 0 0 0", "3 1 2 0 0 0 0 0"), 19, "needs 9 numbers, got 8"),
        (lambda s: s.replace("Frames: 2", "Frames: 3"), 21, "says 3 frames but ends after 2"),
        (lambda s: s.replace("Frame Time: 0.5", "Frame Time: 0"), 18, "must be between"),
        # issue 13 items 7, 11: a huge or infinite frame time made players build millions of frames
        (lambda s: s.replace("Frame Time: 0.5", "Frame Time: 100000"), 18, "must be between"),
        (lambda s: s.replace("Frame Time: 0.5", "Frame Time: inf"), 18, "must be between"),
        (lambda s: s.replace("Frame Time: 0.5", "Frame Time: nan"), 18, "must be between"),
        (lambda s: s.replace("Frames: 2", "Frames: -2"), 18, "negative"),
    ],
)
def test_malformed_names_line(mutate: Callable[[str], str], line: int, message: str) -> None:
    with pytest.raises(BvhError, match=f"bad.bvh:{line}: .*{message}"):
        parse_bvh(mutate(SMALL), "bad.bvh")


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="BVH file not found"):
        read_bvh(tmp_path / "none.bvh")


def _chain(n: int, nested: bool) -> str:
    """A hierarchy of ``n`` joints: each the child of the previous (nested) or all children of the root."""
    out = ["HIERARCHY", "ROOT j0", "{", "OFFSET 0 0 0", "CHANNELS 3 Xrotation Yrotation Zrotation"]
    for i in range(1, n):
        out += [f"JOINT j{i}", "{", "OFFSET 0 1 0", "CHANNELS 3 Xrotation Yrotation Zrotation"]
        if not nested:
            out.append("}")
    out += ["}"] * ((n - 1) if nested else 0) + ["}", "MOTION", "Frames: 1", "Frame Time: 0.5", " ".join(["0"] * 3 * n)]
    return "\n".join(out) + "\n"


def test_hierarchy_limits_refuse_quickly() -> None:
    """Issue 13 items 7, 11: a 5,000-deep BVH gave a RecursionError; 40k joints took 29.5 s (quadratic)."""
    import time

    with pytest.raises(BvhError, match="nested deeper than 64"):
        parse_bvh(_chain(5000, nested=True), "deep.bvh")
    t0 = time.monotonic()
    with pytest.raises(BvhError, match="more than 1024 joints"):
        parse_bvh(_chain(40_000, nested=False), "wide.bvh")
    assert time.monotonic() - t0 < 5.0
    m = parse_bvh(_chain(1000, nested=False), "ok.bvh")  # within the limits: fine
    assert m.skeleton.num_joints == 1000


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    """Issue 13 item 11: a BVH starting with a UTF-8 byte-order mark was refused."""
    p = tmp_path / "bom.bvh"
    p.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    assert read_bvh(p).num_frames == 2
    assert parse_bvh("\ufeff" + SMALL).num_frames == 2


def test_unreadable_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BvhError, match="cannot read it"):
        read_bvh(tmp_path)

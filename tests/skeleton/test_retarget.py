"""Retargeting onto the CMU skeleton: names, alignment, scale, floor, T-pose frames, no flips, round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.models.pose_repr import CMU_SCALE, foot_points, metric_cmu_skeleton
from engine.skeleton import rotations as R
from engine.skeleton.bvh import read_bvh
from engine.skeleton.retarget import RetargetError, map_joints, normalise_name, retarget
from engine.skeleton.skeleton import Skeleton, forward_kinematics, forward_kinematics_full, get_skeleton

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MODERN = SHARED / "cmu_modern"
DST = metric_cmu_skeleton()

# CMU joint -> a Mixamo name (others are renamed with a prefix so they do not match anything).
_MIXAMO = {
    "hip": "Hips", "abdomen": "Spine", "chest": "Spine2", "neck": "Neck", "head": "Head",
    "lCollar": "LeftShoulder", "lShldr": "LeftArm", "lForeArm": "LeftForeArm", "lHand": "LeftHand",
    "rCollar": "RightShoulder", "rShldr": "RightArm", "rForeArm": "RightForeArm", "rHand": "RightHand",
    "lThigh": "LeftUpLeg", "lShin": "LeftLeg", "lFoot": "LeftFoot",
    "rThigh": "RightUpLeg", "rShin": "RightLeg", "rFoot": "RightFoot",
}
_ROKOKO = {**_MIXAMO, "lThigh": "LeftThigh", "lShin": "LeftShin", "rThigh": "RightThigh", "rShin": "RightShin"}


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return path


def _renamed(skel: Skeleton, table: dict[str, str], prefix: str, scale: float) -> Skeleton:
    names = tuple(prefix + table.get(n, "x" + n) for n in skel.joint_names)
    return Skeleton(name="user", joint_names=names, parents=skel.parents, offsets=skel.offsets * scale,
                    end_sites={k: v * scale for k, v in skel.end_sites.items()})


def test_names_normalise_across_conventions() -> None:
    assert normalise_name("mixamorig:LeftArm") == "leftarm"
    assert normalise_name("CC_Base_L_Upperarm") == "lupperarm"
    assert normalise_name("upperarm_l") == "upperarml"
    assert normalise_name("Armature|Hips") == "hips"


@pytest.mark.parametrize(("table", "prefix"), [(_MIXAMO, "mixamorig:"), (_ROKOKO, "")])
def test_mixamo_and_rokoko_names_map_and_round_trip(cmu_take: Path, table: dict[str, str], prefix: str) -> None:
    """A CMU take renamed to Mixamo/Rokoko names, in centimetres and Z-up, comes back as it was."""
    b = read_bvh(cmu_take)
    n = 240
    src_skel = _renamed(DST, table, prefix, 100.0)
    roles = map_joints(src_skel)
    assert src_skel.joint_names[roles["l_upper_arm"]].endswith("LeftArm")
    assert src_skel.joint_names[roles["chest"]].endswith("Spine2")
    rot = b.local_rot_mats[:n]
    root = b.root_positions[:n] * CMU_SCALE
    # Z-up world: rotate the whole clip by -90 deg about X (y -> z).
    turn = R.axis_rotation_matrix("X", np.array(np.pi / 2))
    src_rot = rot.copy()
    src_rot[:, 0] = turn @ rot[:, 0]
    r = retarget(src_skel, (root * 100.0) @ turn.T, src_rot, DST)
    assert r.scale == pytest.approx(0.01, rel=1e-6)
    want = forward_kinematics(DST, root, rot)
    got = forward_kinematics(DST, r.root_pos, r.rot)
    rel_w = want - want[:, :1]
    rel_g = got - got[:, :1]
    err = np.linalg.norm(rel_w - rel_g, axis=-1)
    mapped = [DST.index(j) for j in r.joint_map]
    assert err[:, mapped].mean() < 0.02  # 2 cm: same skeleton, different names, units and up axis


def test_cmu_onto_cmu_is_the_identity(cmu_take: Path) -> None:
    b = read_bvh(cmu_take)
    rot = b.local_rot_mats[:600]
    root = b.root_positions[:600] * CMU_SCALE
    r = retarget(b.skeleton.scaled(CMU_SCALE), root, rot, DST)
    assert r.scale == pytest.approx(1.0, abs=1e-6)
    a = forward_kinematics(DST, root, rot)
    g = forward_kinematics(DST, r.root_pos, r.rot)
    err = np.linalg.norm((a - a[:, :1]) - (g - g[:, :1]), axis=-1)
    assert err.mean() < 0.01 and err.max() < 0.06


def test_tpose_frames_are_dropped(cmu_take: Path) -> None:
    b = read_bvh(cmu_take)
    rot = b.local_rot_mats[:100].copy()
    rot[:3] = np.eye(3)  # the CMU rest pose is a T-pose
    rot[-2:] = np.eye(3)
    r = retarget(b.skeleton, b.root_positions[:100], rot, DST)
    assert r.kept[0] == 3 and r.kept[-1] == 97 and len(r.kept) == 95


def test_missing_limbs_name_what_is_missing() -> None:
    skel = Skeleton(name="stick", joint_names=("Hips", "Spine", "Head"), parents=(-1, 0, 1),
                    offsets=np.array([[0, 0, 0], [0, 0.2, 0], [0, 0.5, 0.0]]))
    with pytest.raises(RetargetError, match="l_upper_arm"):
        retarget(skel, np.zeros((2, 3)), np.broadcast_to(np.eye(3), (2, 3, 3, 3)), DST)


@pytest.fixture(scope="module")
def modern() -> list[tuple[object, object]]:
    out = []
    for name in ("05_02.bvh", "05_08.bvh", "05_15.bvh"):
        b = read_bvh(_need(MODERN / name))
        out.append((b, retarget(b.skeleton, b.root_positions, b.local_rot_mats, DST)))
    return out


def test_modern_maps_the_iclone_names(modern: list) -> None:
    _b, r = modern[0]
    assert r.joint_map["lShldr"] == "CC_Base_L_Upperarm"
    assert r.joint_map["chest"] == "CC_Base_Spine02"  # found by structure: the joint holding both collars
    assert r.joint_map["abdomen"] == "CC_Base_Waist"
    assert r.joint_map["lShin"] == "CC_Base_L_Calf"
    assert 0.008 < r.scale < 0.011  # centimetres onto a 1.6 m CMU skeleton


def test_modern_bones_follow_the_source(modern: list) -> None:
    """Limb bones point where the source's do (rest-pose alignment), within a few degrees, every frame."""
    for b, r in modern:
        sp = forward_kinematics(b.skeleton, b.root_positions, b.local_rot_mats)[r.kept]
        tp = forward_kinematics(DST, r.root_pos, r.rot)
        for a, c in (("lShldr", "lForeArm"), ("rForeArm", "rHand"), ("lThigh", "lShin"), ("rShin", "rFoot")):
            t = tp[:, DST.index(c)] - tp[:, DST.index(a)]
            s = sp[:, b.skeleton.index(r.joint_map[c])] - sp[:, b.skeleton.index(r.joint_map[a])]
            cos = (t * s).sum(-1) / np.linalg.norm(t, axis=-1) / np.linalg.norm(s, axis=-1)
            assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 5.0, (a, c)
        # the head looks where the source looks (eyes), so it is not flipped or pitched
        sk = b.skeleton
        eyes = 0.5 * (sp[:, sk.index("CC_Base_L_Eye")] + sp[:, sk.index("CC_Base_R_Eye")])
        se = eyes - sp[:, sk.index("CC_Base_Head")]
        te = 0.5 * (tp[:, DST.index("leftEye")] + tp[:, DST.index("rightEye")]) - tp[:, DST.index("head")]
        cos = (se * te).sum(-1) / np.linalg.norm(se, axis=-1) / np.linalg.norm(te, axis=-1)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 15.0


def test_modern_bone_lengths_feet_and_no_flips(modern: list) -> None:
    for _b, r in modern:
        pos, wrot = forward_kinematics_full(DST, r.root_pos, r.rot)
        # bone lengths are the engine skeleton's (FK) and the body keeps its height: head above the hips
        assert np.allclose(np.linalg.norm(pos[:, DST.index("lShin")] - pos[:, DST.index("lThigh")], axis=-1),
                           np.linalg.norm(DST.offsets[DST.index("lShin")]), atol=1e-6)
        # feet on the floor: the floor is at 0 and the lowest foot point is near it most of the time
        lowest = foot_points(DST, r.root_pos, r.rot)[..., 1].min(axis=1)
        assert abs(np.percentile(lowest, 5)) < 1e-6
        assert lowest.min() > -0.05 and np.median(lowest) < 0.12
        # no flipped joints: the chest faces the hips' way, knees bend backwards (the head: see the eyes above)
        hip_f = wrot[:, DST.index("hip"), :, 2]
        chest_f = wrot[:, DST.index("chest"), :, 2]
        assert ((hip_f * chest_f).sum(-1) > 0.0).all()
        for side in "lr":
            th = DST.index(side + "Thigh")
            ank = pos[:, DST.index(side + "Foot")] - pos[:, DST.index(side + "Shin")]
            local = np.einsum("tji,tj->ti", wrot[:, th], ank)  # the ankle in the thigh's frame
            assert np.percentile(local[:, 2], 99) < 0.05  # the shin swings back (-z), not forwards


def test_modern_round_trip_through_bvh(modern: list, tmp_path: Path) -> None:
    """Retargeted motion written as CMU BVH and retargeted again comes back within 1 cm."""
    from engine.skeleton.bvh import write_bvh

    _b, r = modern[1]
    cmu = get_skeleton("cmu")
    path = tmp_path / "rt.bvh"
    write_bvh(path, cmu, r.root_pos / CMU_SCALE, 1.0 / 60.0, local_rot_mats=r.rot)
    back = read_bvh(path)
    r2 = retarget(back.skeleton.scaled(CMU_SCALE), back.root_positions * CMU_SCALE, back.local_rot_mats, DST,
                  drop_tposes=False)
    a = forward_kinematics(DST, r.root_pos, r.rot)
    g = forward_kinematics(DST, r2.root_pos, r2.rot)
    err = np.linalg.norm((a - a[:, :1]) - (g - g[:, :1]), axis=-1)
    assert err.mean() < 0.01

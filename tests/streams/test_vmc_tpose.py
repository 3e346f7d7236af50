"""VMC rotations are T-pose relative: a T-posed humanoid rig driven by the bundles points its bones where
the source motion points them (forward kinematics on an independent rig, in Unity space)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle

from engine.frames import PoseFrame
from engine.skeleton import rotations as R
from engine.skeleton.motion import load_motion
from engine.skeleton.skeleton import CMU_SKELETON, SMPL_SKELETON, Skeleton
from streams.prepare import prepare
from streams.vmc import encode_vmc

FrameFactory = Callable[..., PoseFrame]

# A T-posed humanoid in Unity space (left-handed, +Y up, faces +Z, its LEFT hand on -X), proportions of its
# own (not the capture's): bone -> (parent, offset from the parent in metres).
_RIG: dict[str, tuple[str | None, tuple[float, float, float]]] = {
    "Hips": (None, (0.0, 1.0, 0.0)), "Spine": ("Hips", (0.0, 0.1, 0.0)), "Chest": ("Spine", (0.0, 0.12, 0.0)),
    "UpperChest": ("Chest", (0.0, 0.12, 0.0)), "Neck": ("UpperChest", (0.0, 0.15, 0.0)),
    "Head": ("Neck", (0.0, 0.1, 0.0)),
}
for _side, _x in (("Left", -1.0), ("Right", 1.0)):
    _RIG.update({
        f"{_side}Shoulder": ("UpperChest", (0.04 * _x, 0.1, 0.0)),
        f"{_side}UpperArm": (f"{_side}Shoulder", (0.1 * _x, 0, 0)),
        f"{_side}LowerArm": (f"{_side}UpperArm", (0.28 * _x, 0, 0)),
        f"{_side}Hand": (f"{_side}LowerArm", (0.25 * _x, 0, 0)),
        f"{_side}MiddleProximal": (f"{_side}Hand", (0.09 * _x, 0, 0)),
        f"{_side}UpperLeg": ("Hips", (0.09 * _x, -0.05, 0.0)), f"{_side}LowerLeg": (f"{_side}UpperLeg", (0, -0.42, 0)),
        f"{_side}Foot": (f"{_side}LowerLeg", (0, -0.4, 0)), f"{_side}Toes": (f"{_side}Foot", (0, -0.06, 0.12)),
    })
# Bones whose direction is checked: bone -> (the humanoid bone it points at in the source, first found; the
# rig's child on the same chain).
_CHECKED: dict[str, tuple[tuple[str, ...], str]] = {
    "Hips": (("Spine",), "Spine"), "Spine": (("Chest",), "Chest"), "Chest": (("UpperChest", "Neck"), "UpperChest"),
    "UpperChest": (("Neck",), "Neck"), "Neck": (("Head",), "Head"),
}
for _side in ("Left", "Right"):
    for _bone, _child in (("Shoulder", "UpperArm"), ("UpperArm", "LowerArm"), ("LowerArm", "Hand"),
                          ("Hand", "MiddleProximal"), ("UpperLeg", "LowerLeg"), ("LowerLeg", "Foot")):
        _CHECKED[_side + _bone] = ((_side + _child,), _side + _child)


def _rig_world_rotations(bundle: bytes) -> dict[str, np.ndarray]:
    """Parse with python-osc, apply each received local rotation on the T-pose rig (identity if not received)."""
    local = {}
    for m in OscBundle(bundle):
        if m.address == "/VMC/Ext/Bone/Pos":
            name, _px, _py, _pz, qx, qy, qz, qw = m.params
            local[name] = R.quat_to_matrix(np.array([qw, qx, qy, qz]))
    world: dict[str, np.ndarray] = {}
    for bone, (parent, _) in _RIG.items():  # parents come first in _RIG
        w_parent = np.eye(3) if parent is None else world[parent]
        world[bone] = w_parent @ local.get(bone, np.eye(3))
    return world


def _angle_errors(frame: PoseFrame, skel: Skeleton) -> dict[str, float]:
    """Degrees between each checked bone on the driven rig and the same bone in the source motion."""
    world = _rig_world_rotations(encode_vmc(frame, skel))
    pos = prepare(frame, skel).positions * [-1, 1, 1]  # source joint positions, Unity space
    joint_of = {b: skel.joint_names.index(n) for n, b in skel.unity_bones.items()}
    out = {}
    for bone, (children, rig_child) in _CHECKED.items():
        target = next((c for c in children if c in joint_of), None)
        if bone not in joint_of or target is None:
            continue
        src = pos[joint_of[target]] - pos[joint_of[bone]]
        rig = world[bone] @ np.array(_RIG[rig_child][1])
        cos = np.dot(src, rig) / (np.linalg.norm(src) * np.linalg.norm(rig))
        out[bone] = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return out


def _random_pose(rng: np.random.Generator, skel: Skeleton, scale: float) -> PoseFrame:
    aa = rng.normal(0.0, scale, size=(skel.num_joints, 3))
    rot = R.axis_angle_to_quat(aa).astype(np.float32)
    return PoseFrame(100, 200, frame_index=0, performer=0, skeleton=skel.name,
                     root_position=np.array([0.2, 0.9, -0.1], np.float32), rotations=rot)


@pytest.mark.parametrize("skel", [CMU_SKELETON, SMPL_SKELETON], ids=["cmu", "smpl"])
def test_rest_and_random_poses_match_on_a_tposed_rig(skel: Skeleton) -> None:
    rng = np.random.default_rng(0)
    frames = [_random_pose(rng, skel, 0.0)] + [_random_pose(rng, skel, 0.6) for _ in range(20)]
    errs = [_angle_errors(f, skel) for f in frames]
    assert len(errs[0]) == (16 if skel is CMU_SKELETON else 15)
    worst = max(max(e.values()) for e in errs)
    assert worst < 3.0, errs


def test_issue_cases_rest_pose_forearm_neck_shin(make_frame: FrameFactory) -> None:
    """Before: the CMU rest pose sent identity rotations, so a T-posed avatar kept its arms straight where the
    capture's forearms are 17.5 deg forward (neck 10, shins 6.5). Now the rig shows the capture's angles."""
    world = _rig_world_rotations(encode_vmc(make_frame()))
    def bend(bone: str) -> float:
        d = world[bone] @ np.array(_RIG[_CHILD[bone]][1])
        t = np.array(_RIG[_CHILD[bone]][1])
        return float(np.degrees(np.arccos(np.dot(d, t) / np.linalg.norm(d) / np.linalg.norm(t))))
    _CHILD = {"LeftLowerArm": "LeftHand", "Neck": "Head", "RightLowerLeg": "RightFoot"}
    assert bend("LeftLowerArm") == pytest.approx(17.5, abs=0.3)
    assert bend("Neck") == pytest.approx(10.0, abs=0.3)
    assert bend("RightLowerLeg") == pytest.approx(6.5, abs=0.3)
    # the head faces forward and the feet are flat in the rest pose, as in the T-pose
    for b in ("Head", "LeftFoot", "RightFoot"):
        np.testing.assert_allclose(world[b], np.eye(3), atol=1e-6)


def test_real_capture_within_3_degrees(cmu_take: Path) -> None:
    motion = load_motion(cmu_take)
    skel = motion.skeleton
    worst: dict[str, float] = {}
    for k in range(0, min(motion.num_frames, 1200), 40):
        f = PoseFrame(k, k, frame_index=k, performer=0, skeleton=skel.name,
                      root_position=motion.root_positions[k].astype(np.float32),
                      rotations=motion.rotations[k].astype(np.float32))
        for b, e in _angle_errors(f, skel).items():
            worst[b] = max(worst.get(b, 0.0), e)
    assert len(worst) == 16
    assert max(worst.values()) < 3.0, worst


def test_bone_positions_are_the_tpose_offsets(make_frame: FrameFactory) -> None:
    """Non-hip bone positions are T-pose offsets: the neck sits straight above the chest, arms go out sideways."""
    bones = {m.params[0]: np.array(m.params[1:4]) for m in OscBundle(encode_vmc(make_frame()))
             if m.address == "/VMC/Ext/Bone/Pos"}
    neck, forearm, hand = bones["Neck"], bones["LeftLowerArm"], bones["LeftHand"]
    assert abs(neck[0]) < 1e-6 and abs(neck[2]) < 1e-6 and neck[1] > 0
    for v in (forearm, hand):  # Unity: the avatar's left is -X
        assert v[0] < 0 and abs(v[1]) < 1e-6 and abs(v[2]) < 1e-6
    np.testing.assert_allclose(np.linalg.norm(hand), np.linalg.norm(CMU_SKELETON.offsets[CMU_SKELETON.index("lHand")]),
                               rtol=1e-6)
    np.testing.assert_allclose(bones["Hips"], [0, 0.9, 0], atol=1e-6)  # the hips' own height over the root

"""T-pose retargeting: a skeleton's rest pose -> the humanoid T-pose that VMC and VRM rotations are relative to.

A skeleton's joint rotations are relative to its own rest pose (CMU's has the forearms 17.5 deg forward, the
head 10 deg forward, the shins 6.5 deg back). VMC receivers and VRM's normalized humanoid expect each bone's
rotation relative to a **T-pose with world-aligned bone frames**: standing, facing +Z, arms straight out
along the left/right axis, legs straight down, spine, neck and head straight up.

For every Unity-mapped joint ``j`` this module finds a fixed world rotation ``C_j`` (engine space) that
turns the bone's T-pose direction into its rest-pose direction, ``C_j t_j = r_j``. A pose with joint world
rotations ``W_j`` (rest-relative) then has the T-pose-relative world rotation ``W_j C_j``, whose bone
direction is ``W_j C_j t_j = W_j r_j``: exactly the captured direction. The local rotation sent for bone
``j`` under its nearest mapped ancestor ``p`` is ``(W_p C_p)^T W_j C_j``.

* Bone direction = from the joint to its humanoid child (Hips -> Spine, LowerArm -> Hand,
  Hand -> MiddleProximal, ...), or to its only child / end site when the child is not mapped.
* T-pose directions: torso and neck up; shoulders, arms, hands and fingers out to their side; legs down.
* Head, eyes, feet and toes have no direction of their own that both poses agree on, but they face the
  world the same way in a standing rest pose and in a T-pose (face forward, soles flat), so ``C_j = I``.
  Thumbs (and any other unlisted mapped joint) keep their rest angle to their parent: ``C_j = C_parent``.
* The hips get a full frame (up = towards the spine, left-right = between the thighs), which also fixes
  the body's facing; other bones take the smallest rotation between the two directions.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.skeleton.skeleton import Skeleton

_UP = (0.0, 1.0, 0.0)
_DOWN = (0.0, -1.0, 0.0)
_FINGERS = ("Index", "Middle", "Ring", "Little")
_SEGMENTS = ("Proximal", "Intermediate", "Distal")


def _side_table(side: str, x: float) -> dict[str, tuple[float, float, float]]:
    out = {f"{side}{b}": (x, 0.0, 0.0) for b in ("Shoulder", "UpperArm", "LowerArm", "Hand")}
    out.update({f"{side}{f}{s}": (x, 0.0, 0.0) for f in _FINGERS for s in _SEGMENTS})
    out.update({f"{side}UpperLeg": _DOWN, f"{side}LowerLeg": _DOWN})
    return out


#: HumanBodyBones name -> direction of that bone in the T-pose, engine space (the avatar's left is +X).
TPOSE_DIRECTIONS: dict[str, tuple[float, float, float]] = {
    **{b: _UP for b in ("Hips", "Spine", "Chest", "UpperChest", "Neck")},
    **_side_table("Left", 1.0),
    **_side_table("Right", -1.0),
}
#: Bones whose world orientation is the same in a standing rest pose and in the T-pose.
WORLD_ALIGNED = frozenset({"Head", "LeftEye", "RightEye", "LeftFoot", "RightFoot", "LeftToes", "RightToes"})


def _humanoid_children(bone: str) -> tuple[str, ...]:
    """The humanoid bone(s) a bone points at, in order of preference."""
    fixed = {
        "Hips": ("Spine",), "Spine": ("Chest", "UpperChest", "Neck"), "Chest": ("UpperChest", "Neck"),
        "UpperChest": ("Neck",), "Neck": ("Head",),
    }
    if bone in fixed:
        return fixed[bone]
    for side in ("Left", "Right"):
        chain = {"Shoulder": "UpperArm", "UpperArm": "LowerArm", "LowerArm": "Hand", "Hand": "MiddleProximal",
                 "UpperLeg": "LowerLeg", "LowerLeg": "Foot"}
        for f in _FINGERS:
            chain[f + "Proximal"] = f + "Intermediate"
            chain[f + "Intermediate"] = f + "Distal"
        if bone.startswith(side) and bone[len(side):] in chain:
            return (side + chain[bone[len(side):]],)
    return ()


def _descendants(skel: Skeleton, joint: int) -> set[int]:
    out: set[int] = set()
    for i in range(joint + 1, skel.num_joints):
        if skel.parents[i] == joint or skel.parents[i] in out:
            out.add(i)
    return out


def rest_direction(skel: Skeleton, joint: int, rest: np.ndarray | None = None) -> np.ndarray | None:
    """Unit rest-pose direction of the bone at ``joint`` (see the module doc), or None if it has none."""
    rest = skel.rest_positions() if rest is None else rest
    by_bone = {b: skel.joint_names.index(n) for n, b in skel.unity_bones.items()}
    below = _descendants(skel, joint)
    target: np.ndarray | None = None
    for child in _humanoid_children(skel.unity_bones.get(skel.joint_names[joint], "")):
        if child in by_bone and by_bone[child] in below:
            target = rest[by_bone[child]]
            break
    if target is None:
        kids = skel.children(joint)
        if len(kids) == 1:
            target = rest[kids[0]]
        elif not kids and joint in skel.end_sites:
            target = rest[joint] + skel.end_sites[joint]
    if target is None:
        return None
    d = target - rest[joint]
    n = float(np.linalg.norm(d))
    return d / n if n > 1e-9 else None


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation matrix taking unit vector ``a`` to unit vector ``b``."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-9:  # opposite: half a turn about any axis perpendicular to a
        axis = np.cross(a, (1.0, 0.0, 0.0) if abs(a[0]) < 0.9 else (0.0, 1.0, 0.0))
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def _frame(up: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Rotation whose columns are (left, up, forward) built from an up and a roughly-left vector."""
    y = up / np.linalg.norm(up)
    x = left - np.dot(left, y) * y
    x /= np.linalg.norm(x)
    return np.stack([x, y, np.cross(x, y)], axis=1)


@lru_cache(maxsize=32)
def tpose_corrections(skel: Skeleton) -> np.ndarray:
    """``[J, 3, 3]`` world rotations ``C_j`` with ``C_j (T-pose direction) = rest direction`` (engine space).

    Head, eyes, feet and toes get the identity; joints without a Unity bone or a T-pose direction take their
    parent's ``C``.
    """
    rest = skel.rest_positions()
    by_bone = {b: skel.joint_names.index(n) for n, b in skel.unity_bones.items()}
    out = np.empty((skel.num_joints, 3, 3))
    for j in range(skel.num_joints):
        parent_c = out[skel.parents[j]] if skel.parents[j] >= 0 else np.eye(3)
        bone = skel.unity_bones.get(skel.joint_names[j])
        d = rest_direction(skel, j, rest) if bone in TPOSE_DIRECTIONS else None
        if bone == "Hips" and d is not None and "LeftUpperLeg" in by_bone and "RightUpperLeg" in by_bone:
            left = rest[by_bone["LeftUpperLeg"]] - rest[by_bone["RightUpperLeg"]]
            out[j] = _frame(d, left)  # T-pose frame is the identity: (left, up, forward) = the axes
        elif bone is not None and d is not None:
            out[j] = _swing(np.asarray(TPOSE_DIRECTIONS[bone], dtype=np.float64), d)
        elif bone in WORLD_ALIGNED:
            out[j] = np.eye(3)
        else:
            out[j] = parent_c
    return out


@lru_cache(maxsize=32)
def tpose_positions(skel: Skeleton) -> np.ndarray:
    """``[J, 3]`` joint positions of the skeleton's own body put in the T-pose (root at the origin).

    Every bone keeps its length; its rest offset is turned by ``C^T`` of the nearest mapped joint above it.
    """
    c = tpose_corrections(skel)
    pos = np.zeros((skel.num_joints, 3))
    for j in range(1, skel.num_joints):
        p = skel.parents[j]
        pos[j] = pos[p] + c[p].T @ skel.offsets[j]
    return pos

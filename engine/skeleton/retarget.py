"""Retarget any humanoid BVH onto the engine's CMU skeleton: names, rest-pose alignment, scale, T-pose frames.

How it works (pure numpy; no file I/O):

1. **Names.** Limbs and the head are found by normalised name (namespace and ``CC_Base_`` stripped,
   lower case, no separators) from one table that covers the CMU Second-Life conversion (``lShldr``),
   Character Creator / iClone (``CC_Base_L_Upperarm``), Mixamo (``mixamorig:LeftArm``), Rokoko
   (``LeftArm``, ``LeftThigh``) and Unreal (``upperarm_l``). Spine, chest and neck are found by
   structure (the chest is the joint that holds both collars), so spines of any length map.
2. **Up.** The source axis nearest to the median feet -> head direction; ``C`` is the shortest turn of
   it onto the engine's +Y (a Z-up export is stood up; the facing is kept as captured).
3. **Rest-pose alignment without a T-pose.** Each mapped joint gets the world rotation
   ``C G_src(f) A``, where ``A`` (engine rest frame -> source joint frame) turns the engine skeleton's rest
   bones onto where the matching source bones point in the source joint's own frame, averaged over the
   clip (least squares over the joint's child bones; the eyes for the head; the incoming bone for leaves).
   The twist of one-bone joints is fixed by a second direction: the knee/elbow bend plane for limbs, the
   knee above the ankle for feet, the body's left for spine, neck and collars. So a rotation means the
   same thing whatever the source's rest pose (the iClone conversion's zero pose points every limb up).
   Engine joints without a source counterpart (fingers, CMU's buttock joints) keep their rest rotation.
4. **T-pose frames** (every limb within 25 degrees of a T-pose) at the start and end are dropped.
5. **Scale** from bone lengths (legs and hips -> head, summed along the skeleton); the floor is put at
   y = 0 (5th percentile of the lowest foot point) and the clip starts at x = z = 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.skeleton import rotations as R
from engine.skeleton.motion import Motion as SkMotion
from engine.skeleton.skeleton import Skeleton, forward_kinematics_full

#: Largest limb deviation (degrees) from an ideal T-pose for a pose to count as one.
TPOSE_MAX_DEG = 25.0

_SIDES = ("l", "r")
# Normalised candidate names per side-specific role ({s} = the side word forms, tried in order).
_LIMB_NAMES: dict[str, tuple[str, ...]] = {
    "clavicle": ("{l}collar", "{l}clavicle", "{left}shoulder", "{left}clavicle", "clavicle{l}", "{left}collar"),
    "upper_arm": ("{l}shldr", "{l}upperarm", "{left}arm", "{left}upperarm", "upperarm{l}", "{l}arm"),
    "lower_arm": ("{l}forearm", "{left}forearm", "{left}lowerarm", "lowerarm{l}", "{l}lowerarm", "{l}elbow"),
    "hand": ("{l}hand", "{left}hand", "hand{l}", "{left}wrist", "{l}wrist"),
    "upper_leg": ("{l}thigh", "{left}upleg", "{left}thigh", "{left}upperleg", "thigh{l}", "{l}upleg", "{l}hip"),
    "lower_leg": ("{l}shin", "{l}calf", "{left}leg", "{left}shin", "{left}lowerleg", "calf{l}", "{l}knee",
                  "{left}knee", "{l}leg"),
    "foot": ("{l}foot", "{left}foot", "foot{l}", "{left}ankle", "{l}ankle"),
    "toe": ("{l}toebase", "{left}toebase", "{left}toe", "{left}toes", "ball{l}", "{l}toe", "{l}toes"),
    "buttock": ("{l}buttock",),
    "eye": ("{left}eye", "{l}eye", "eye{l}"),
}
_HEAD_NAMES = ("head",)
_HIPS_NAMES = ("hip", "hips", "root", "pelvis")

#: Engine (CMU) joint per role; side roles are expanded with the CMU 'l'/'r' prefix.
_CMU_ROLE_JOINT: dict[str, str] = {
    "hips": "hip", "spine": "abdomen", "chest": "chest", "neck": "neck", "head": "head",
    "clavicle": "Collar", "upper_arm": "Shldr", "lower_arm": "ForeArm", "hand": "Hand",
    "upper_leg": "Thigh", "lower_leg": "Shin", "foot": "Foot", "buttock": "Buttock", "eye": "Eye",
}


class RetargetError(ValueError):
    """The source skeleton cannot be retargeted (missing limbs, a malformed clip)."""


def normalise_name(name: str) -> str:
    """``mixamorig:LeftArm`` -> ``leftarm``, ``CC_Base_L_Upperarm`` -> ``lupperarm``, ``thigh_l`` -> ``thighl``."""
    n = re.split(r"[:|]", name)[-1].lower()
    if n.startswith("cc_base_"):
        n = n[len("cc_base_"):]
    return re.sub(r"[\s_.\-]", "", n)


def _find(norm: dict[str, int], candidates: tuple[str, ...], side: str | None) -> int | None:
    for c in candidates:
        key = c if side is None else c.format(l=side, left="left" if side == "l" else "right")
        if key in norm:
            return norm[key]
    return None


def _path_to_root(parents: tuple[int, ...], j: int) -> list[int]:
    out = [j]
    while parents[out[-1]] >= 0:
        out.append(parents[out[-1]])
    return out


def _lca(parents: tuple[int, ...], a: int, b: int) -> int:
    pa = _path_to_root(parents, a)
    pb = set(_path_to_root(parents, b))
    return next(j for j in pa if j in pb)


def map_joints(src: Skeleton) -> dict[str, int]:
    """Role (``"hips"``, ``"l_upper_arm"``, ...) -> source joint index; raises naming what is missing."""
    norm = {normalise_name(n): i for i, n in enumerate(src.joint_names)}
    roles: dict[str, int] = {}
    missing = []
    for role, cands in _LIMB_NAMES.items():
        for side in _SIDES:
            j = _find(norm, cands, side)
            if j is not None:
                roles[f"{side}_{role}"] = j
            elif role not in ("toe", "clavicle", "buttock", "eye"):
                missing.append(f"{side}_{role}")
    head = _find(norm, _HEAD_NAMES, None)
    if head is None:
        missing.append("head")
    if missing:
        raise RetargetError(
            f"skeleton {src.name!r}: no joint found for {', '.join(missing)} "
            f"(joints: {', '.join(src.joint_names[:40])}{' ...' if src.num_joints > 40 else ''})"
        )
    assert head is not None
    roles["head"] = head
    p = src.parents
    arm_l = roles.get("l_clavicle", roles["l_upper_arm"])
    arm_r = roles.get("r_clavicle", roles["r_upper_arm"])
    chest = _lca(p, arm_l, arm_r)
    hips = _find(norm, _HIPS_NAMES, None)
    legs = _lca(p, roles["l_upper_leg"], roles["r_upper_leg"])
    if hips is None or hips not in _path_to_root(p, legs) or hips not in _path_to_root(p, chest):
        hips = _lca(p, legs, chest)
    roles["hips"] = hips
    roles["chest"] = chest
    chain = _path_to_root(p, chest)  # chest ... hips ... root
    if hips in chain:
        below = chain[: chain.index(hips)]  # chest first, down to the child of hips
        if len(below) >= 2:
            roles["spine"] = below[-1]
    head_chain = _path_to_root(p, head)
    if chest in head_chain:
        above = head_chain[: head_chain.index(chest)]  # head first, down to the child of chest
        if len(above) >= 2:
            roles["neck"] = above[-1]
    return roles


def _engine_targets(dst: Skeleton, roles: dict[str, int]) -> dict[int, int]:
    """Engine joint index -> source joint index for the mapped roles."""
    out: dict[int, int] = {}
    for role, j in roles.items():
        side, _, base = role.partition("_") if role[:2] in ("l_", "r_") else ("", "", role)
        if base not in _CMU_ROLE_JOINT:
            continue
        name = (side + _CMU_ROLE_JOINT[base]) if side else _CMU_ROLE_JOINT[base]
        if base == "eye":
            name = ("left" if side == "l" else "right") + "Eye"
        if name in dst.joint_names:
            out[dst.index(name)] = j
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((_unit(a) * _unit(b)).sum(-1), -1.0, 1.0)))


def _up_axis(pos: np.ndarray, roles: dict[str, int]) -> np.ndarray:
    """Source axis (unit, +-X/Y/Z) nearest to feet -> head of one pose ``pos`` [J, 3]."""
    feet = 0.5 * (pos[roles["l_foot"]] + pos[roles["r_foot"]])
    d = _unit(pos[roles["head"]] - feet)
    k = int(np.argmax(np.abs(d)))
    up = np.zeros(3)
    up[k] = np.sign(d[k])
    return up


def tpose_deviation(pos: np.ndarray, roles: dict[str, int], up: np.ndarray | None = None) -> np.ndarray:
    """Largest limb deviation (degrees) from an ideal T-pose, per pose. pos: [..., J, 3] -> [...].

    Legs straight down, arms straight and horizontal pointing away from the body on their side.
    """
    pos = np.asarray(pos, dtype=np.float64)
    if up is None:
        up = _up_axis(pos.reshape(-1, *pos.shape[-2:])[0], roles)
    left = pos[..., roles["l_upper_arm"], :] - pos[..., roles["r_upper_arm"], :]
    left = _unit(left - (left @ up)[..., None] * up)
    devs = []
    for s, sign in (("l", 1.0), ("r", -1.0)):
        for a, b in (("upper_leg", "lower_leg"), ("lower_leg", "foot")):
            devs.append(_angle_deg(pos[..., roles[f"{s}_{b}"], :] - pos[..., roles[f"{s}_{a}"], :], -up))
        for a, b in (("upper_arm", "lower_arm"), ("lower_arm", "hand")):
            devs.append(_angle_deg(pos[..., roles[f"{s}_{b}"], :] - pos[..., roles[f"{s}_{a}"], :], sign * left))
    return np.max(np.stack(devs), axis=0)


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation R minimising sum |R a_i - b_i|^2 (a, b: [K, 3] directions); K = 1 gives the shortest arc."""
    if len(a) == 1:
        u, v = _unit(a[0]), _unit(b[0])
        c = float(u @ v)
        axis = np.cross(u, v)
        s = float(np.linalg.norm(axis))
        if s < 1e-9:
            if c > 0:
                return np.eye(3)
            perp = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
            axis, s, c = _unit(perp), 1.0, -1.0
            k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
            return np.eye(3) + 2 * k @ k
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]) / s
        return np.eye(3) + s * k + (1 - c) * k @ k
    h = _unit(a).T @ _unit(b)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


@dataclass
class RetargetResult:
    """A clip on the engine skeleton.

    Attributes:
        root_pos: ``[T, 3]`` root positions in engine space (metres when ``dst`` is metric).
        rot: ``[T, J, 3, 3]`` joint-local rotations of ``dst``.
        kept: ``[T]`` indices of the source frames kept (T-pose frames dropped).
        scale: source units -> ``dst`` units.
        joint_map: engine joint name -> source joint name.
    """

    root_pos: np.ndarray
    rot: np.ndarray
    kept: np.ndarray
    scale: float
    joint_map: dict[str, str]


def _key_children(skel: Skeleton, j: int, mapped: set[int]) -> list[int]:
    """Nearest mapped descendants of ``j`` (looking through unmapped joints)."""
    out: list[int] = []
    stack = list(skel.children(j))
    while stack:
        c = stack.pop()
        if c in mapped:
            out.append(c)
        else:
            stack.extend(skel.children(c))
    return out


def _chain_length(skel: Skeleton, top: int, bottom: int) -> float:
    """Sum of the bone lengths from ``bottom`` up to its ancestor ``top``."""
    total = 0.0
    j = bottom
    while j != top and j >= 0:
        total += float(np.linalg.norm(skel.offsets[j]))
        j = skel.parents[j]
    if j != top:
        raise RetargetError(f"skeleton {skel.name!r}: {skel.joint_names[top]} is not above {skel.joint_names[bottom]}")
    return total


def _mean_local(wrot: np.ndarray, vec: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Mean over frames of world vectors ``vec [T, 3]`` seen in the joint frames ``wrot [T, 3, 3]``."""
    loc = np.einsum("tji,tj->ti", wrot, vec)  # R^T v
    if weight is not None:
        loc = loc * weight[:, None]
    return loc.mean(axis=0)


def retarget(
    src: Skeleton,
    root_pos: np.ndarray,
    rot: np.ndarray,
    dst: Skeleton,
    drop_tposes: bool = True,
) -> RetargetResult:
    """Retarget a source clip (``root_pos [T, 3]``, joint-local ``rot [T, Js, 3, 3]``) onto ``dst``.

    ``dst`` must be a T-pose at rest with the engine's conventions (Y up, facing +Z, left +X), as the CMU
    skeleton is. The source needs no T-pose: each mapped joint's rest alignment ``A`` (engine rest frame ->
    source joint frame) is solved from where its child bones point in the source joint's own frame (averaged
    over the clip), with the twist of single-bone joints fixed by a second direction: the knee or elbow
    bend plane for limbs, the knee above the ankle for feet, the body's left for the spine, neck, head and
    collars. Raises :class:`RetargetError` when limbs cannot be found.
    """
    root_pos = np.asarray(root_pos, dtype=np.float64)
    rot = np.asarray(rot, dtype=np.float64)
    if rot.ndim != 4 or rot.shape[1:] != (src.num_joints, 3, 3) or len(root_pos) != len(rot) or len(rot) == 0:
        raise RetargetError(f"expected root [T, 3] and rotations [T, {src.num_joints}, 3, 3] with T > 0")
    roles = map_joints(src)
    t = len(rot)
    pos, wrot = forward_kinematics_full(src, root_pos, rot)  # [T, Js, 3], [T, Js, 3, 3]
    # Up: the source axis nearest to the median feet -> head direction; C turns it onto +Y.
    feet = 0.5 * (pos[:, roles["l_foot"]] + pos[:, roles["r_foot"]])
    d = _unit(np.median(pos[:, roles["head"]] - feet, axis=0))
    k = int(np.argmax(np.abs(d)))
    up = np.zeros(3)
    up[k] = np.sign(d[k])
    c = _kabsch(up[None], np.array([[0.0, 1.0, 0.0]]))  # shortest turn of the source's up onto +Y
    # T-pose frames at either end are not dance.
    keep_mask = np.ones(t, dtype=bool)
    if drop_tposes:
        is_t = tpose_deviation(pos, roles, up) <= TPOSE_MAX_DEG
        i = 0
        while i < t - 1 and is_t[i]:
            keep_mask[i] = False
            i += 1
        j = t - 1
        while j > i and is_t[j]:
            keep_mask[j] = False
            j -= 1
    kept = np.flatnonzero(keep_mask)
    pos, wrot = pos[kept], wrot[kept]

    # Scale from bone lengths: legs + hips -> head, summed along the skeleton (pose independent).
    src_len = sum(_chain_length(src, roles[f"{s}_upper_leg"], roles[f"{s}_foot"]) for s in _SIDES)
    src_len += _chain_length(src, roles["hips"], roles["head"])
    di = dst.index
    dst_len = sum(_chain_length(dst, di(f"{s}Thigh"), di(f"{s}Foot")) for s in "lr")
    dst_len += _chain_length(dst, di("hip"), di("head"))
    dst_pos = dst.rest_positions()
    scale = dst_len / max(src_len, 1e-12)
    # Engine joint -> source joint; toes are extra children of the feet.
    tmap = _engine_targets(dst, roles)
    mapped = set(tmap)
    body_left = pos[:, roles["l_upper_arm"]] - pos[:, roles["r_upper_arm"]]
    align = np.broadcast_to(np.eye(3), (dst.num_joints, 3, 3)).copy()
    for j, sj in tmap.items():
        name = dst.joint_names[j]
        a_dirs: list[np.ndarray] = []
        b_dirs: list[np.ndarray] = []
        wj = wrot[:, sj]
        for ch in _key_children(dst, j, mapped):
            a_dirs.append(_unit(dst_pos[ch] - dst_pos[j]))
            b_dirs.append(_unit(_mean_local(wj, pos[:, tmap[ch]] - pos[:, sj])))
        if not a_dirs and dst.parents[j] >= 0:
            # A leaf of the map (head, hands): its incoming bone, from the nearest mapped ancestor.
            pa = dst.parents[j]
            while pa >= 0 and pa not in tmap:
                pa = dst.parents[pa]
            if pa >= 0:
                a_dirs.append(_unit(dst_pos[j] - dst_pos[pa]))
                b_dirs.append(_unit(_mean_local(wj, pos[:, sj] - pos[:, tmap[pa]])))
        side = name[0] if name[0] in "lr" and name[1:2].isupper() else ""
        if name.endswith("Foot") and f"{side}_toe" in roles and j in dst.end_sites:
            a_dirs.append(_unit(dst.end_sites[j]))
            b_dirs.append(_unit(_mean_local(wj, pos[:, roles[f"{side}_toe"]] - pos[:, sj])))
        # Second direction for joints with one child bone: the twist about that bone.
        if name.endswith(("Thigh", "Shin")):
            hip_, knee, ank = (roles[f"{side}_upper_leg"], roles[f"{side}_lower_leg"], roles[f"{side}_foot"])
            n = np.cross(pos[:, knee] - pos[:, hip_], pos[:, ank] - pos[:, knee])
            a_dirs.append(np.array([1.0, 0.0, 0.0]))
            b_dirs.append(_unit(_mean_local(wj, n)))
        elif name.endswith(("Shldr", "ForeArm", "Hand")):
            sh, el, wr = (roles[f"{side}_upper_arm"], roles[f"{side}_lower_arm"], roles[f"{side}_hand"])
            n = np.cross(pos[:, el] - pos[:, sh], pos[:, wr] - pos[:, el])
            a_dirs.append(np.array([0.0, -1.0 if side == "l" else 1.0, 0.0]))
            b_dirs.append(_unit(_mean_local(wj, n)))
        elif name.endswith("Foot"):
            a_dirs.append(np.array([0.0, 1.0, 0.0]))
            b_dirs.append(_unit(_mean_local(wj, pos[:, roles[f"{side}_lower_leg"]] - pos[:, sj])))
        elif name in ("abdomen", "neck", "head") or name.endswith("Collar"):
            a_dirs.append(np.array([1.0, 0.0, 0.0]))
            b_dirs.append(_unit(_mean_local(wj, body_left)))
        if not a_dirs:
            continue
        # Orthogonalise: the first direction exact, the rest only fix the twist (weights favour the first).
        w = np.array([4.0] + [1.0] * (len(a_dirs) - 1))
        align[j] = _kabsch(np.stack(a_dirs) * w[:, None], np.stack(b_dirs) * w[:, None])
    n_out = len(kept)
    world = np.empty((n_out, dst.num_joints, 3, 3))
    for j in range(dst.num_joints):
        if j in tmap:
            world[:, j] = c @ wrot[:, tmap[j]] @ align[j]
        elif dst.parents[j] < 0:
            world[:, j] = np.eye(3)
        else:
            world[:, j] = world[:, dst.parents[j]]
    local = np.empty_like(world)
    for j, pj in enumerate(dst.parents):
        local[:, j] = world[:, j] if pj < 0 else np.swapaxes(world[:, pj], -1, -2) @ world[:, j]
    # Root: the source hips joint, turned and scaled, then floor at 0 and start at x = z = 0.
    root = (pos[:, roles["hips"]] @ c.T) * scale
    root[:, [0, 2]] -= root[0, [0, 2]]
    tmp_pos, tmp_w = forward_kinematics_full(dst, root, local)
    feet_y = []
    for name in ("rFoot", "lFoot"):  # ankles and toe end sites
        jj = di(name)
        feet_y.append(tmp_pos[:, jj, 1])
        if jj in dst.end_sites:
            feet_y.append((tmp_pos[:, jj] + tmp_w[:, jj] @ dst.end_sites[jj])[:, 1])
    lowest = np.min(np.stack(feet_y, axis=1), axis=1)
    root[:, 1] -= float(np.percentile(lowest, 5))
    joint_map = {dst.joint_names[j]: src.joint_names[sj] for j, sj in sorted(tmap.items())}
    return RetargetResult(root_pos=root, rot=local, kept=kept, scale=scale, joint_map=joint_map)


def retarget_motion(motion: SkMotion, dst: Skeleton, drop_tposes: bool = True) -> SkMotion:
    """:func:`retarget` for an :class:`engine.skeleton.motion.Motion` (quaternions), e.g. a user's BVH file.

    The result is on ``dst`` in ``dst``'s units, at the source frame rate, T-pose frames dropped.
    """
    r = retarget(motion.skeleton, motion.root_positions, R.quat_to_matrix(motion.rotations), dst, drop_tposes)
    return SkMotion(dst, motion.fps, r.root_pos, R.matrix_to_quat(r.rot))

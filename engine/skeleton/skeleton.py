"""Skeleton definitions (CMU BVH, SMPL 24), a name registry, and numpy forward kinematics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)  # identity equality: hashable, usable as a cache key
class Skeleton:
    """A joint hierarchy in engine space (right-handed, Y up, metres; the character faces +Z, left is +X).

    Attributes:
        name: registry name (``"cmu"``, ``"smpl"``) or the name a file gave it.
        joint_names: ``[J]`` joint names; parents come before children.
        parents: ``[J]`` parent index, ``-1`` for the root (exactly one root, joint 0).
        offsets: ``[J, 3]`` rest offset of each joint from its parent (the root's is kept for BVH
            round trips but forward kinematics places the root at the given root position).
        end_sites: joint index -> ``[3]`` offset of a BVH "End Site" below that joint.
        unity_bones: joint name -> Unity ``HumanBodyBones`` name, for the joints that have one.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray  # [J, 3] float64
    end_sites: Mapping[int, np.ndarray] = field(default_factory=dict)  # joint -> [3]
    unity_bones: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        j = len(self.joint_names)
        offsets = np.asarray(self.offsets, dtype=np.float64)
        if offsets.shape != (j, 3):
            raise ValueError(f"skeleton {self.name!r}: offsets must be [{j}, 3], got {offsets.shape}")
        object.__setattr__(self, "offsets", offsets)
        if len(self.parents) != j:
            raise ValueError(f"skeleton {self.name!r}: {j} joint names but {len(self.parents)} parents")
        if j == 0 or self.parents[0] != -1:
            raise ValueError(f"skeleton {self.name!r}: joint 0 must be the root (parent -1)")
        for i, p in enumerate(self.parents[1:], start=1):
            if not 0 <= p < i:
                raise ValueError(
                    f"skeleton {self.name!r}: joint {i} ({self.joint_names[i]}) has parent {p}; "
                    "parents must come before children and there must be one root"
                )
        if len(set(self.joint_names)) != j:
            raise ValueError(f"skeleton {self.name!r}: joint names are not unique")
        unknown = set(self.unity_bones) - set(self.joint_names)
        if unknown:
            raise ValueError(f"skeleton {self.name!r}: unity_bones names unknown joints {sorted(unknown)}")
        object.__setattr__(
            self, "end_sites", {int(k): np.asarray(v, dtype=np.float64) for k, v in self.end_sites.items()}
        )

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint: str) -> int:
        """Index of ``joint``; a clear error lists the joints that exist."""
        try:
            return self.joint_names.index(joint)
        except ValueError:
            known = ", ".join(self.joint_names)
            raise KeyError(f"skeleton {self.name!r} has no joint {joint!r}; joints: {known}") from None

    def children(self, joint: int) -> list[int]:
        return [i for i, p in enumerate(self.parents) if p == joint]

    def bone_lengths(self) -> np.ndarray:
        """``[J]`` length of each joint's offset (0 for the root)."""
        lengths = np.linalg.norm(self.offsets, axis=-1)
        lengths[0] = 0.0
        return lengths

    def rest_positions(self) -> np.ndarray:
        """``[J, 3]`` world joint positions in the rest pose with the root at the origin."""
        rot = np.broadcast_to(np.eye(3), (1, self.num_joints, 3, 3))
        return forward_kinematics(self, np.zeros((1, 3)), rot)[0]

    def height(self) -> float:
        """Rest-pose vertical extent (top joint or end site minus lowest), in skeleton units."""
        pos = self.rest_positions()
        pts = [pos] + [pos[j][None] + off[None] for j, off in self.end_sites.items()]
        ys = np.concatenate(pts)[:, 1]
        return float(ys.max() - ys.min())

    def scaled(self, factor: float, name: str | None = None) -> Skeleton:
        """The same hierarchy with every offset multiplied by ``factor``."""
        return Skeleton(
            name=name or self.name,
            joint_names=self.joint_names,
            parents=self.parents,
            offsets=self.offsets * factor,
            end_sites={k: v * factor for k, v in self.end_sites.items()},
            unity_bones=dict(self.unity_bones),
        )

    def mapped_parent(self, joint: int) -> int:
        """Nearest ancestor of ``joint`` that has a Unity bone (``-1`` if none), for VMC local rotations."""
        p = self.parents[joint]
        while p >= 0 and self.joint_names[p] not in self.unity_bones:
            p = self.parents[p]
        return p


def forward_kinematics(skel: Skeleton, root_pos: np.ndarray, local_rot_mats: np.ndarray) -> np.ndarray:
    """World joint positions.

    Args:
        skel: the skeleton (offsets in its units).
        root_pos: ``[..., 3]`` root joint positions (the root offset is not added).
        local_rot_mats: ``[..., J, 3, 3]`` joint-local rotation matrices.

    Returns:
        ``[..., J, 3]`` world positions.
    """
    pos, _ = forward_kinematics_full(skel, root_pos, local_rot_mats)
    return pos


def forward_kinematics_full(
    skel: Skeleton, root_pos: np.ndarray, local_rot_mats: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World positions ``[..., J, 3]`` and world rotation matrices ``[..., J, 3, 3]``."""
    local_rot_mats = np.asarray(local_rot_mats, dtype=np.float64)
    root_pos = np.asarray(root_pos, dtype=np.float64)
    j = skel.num_joints
    if local_rot_mats.shape[-3:] != (j, 3, 3):
        raise ValueError(
            f"skeleton {skel.name!r} has {j} joints; rotations must be [..., {j}, 3, 3], got {local_rot_mats.shape}"
        )
    if root_pos.shape[-1] != 3:
        raise ValueError(f"root positions must be [..., 3], got {root_pos.shape}")
    lead = np.broadcast_shapes(root_pos.shape[:-1], local_rot_mats.shape[:-3])
    world_rot = np.empty((*lead, j, 3, 3))
    world_pos = np.empty((*lead, j, 3))
    for i, p in enumerate(skel.parents):
        if p < 0:
            world_rot[..., i, :, :] = local_rot_mats[..., i, :, :]
            world_pos[..., i, :] = root_pos
        else:
            world_pos[..., i, :] = world_pos[..., p, :] + world_rot[..., p, :, :] @ skel.offsets[i]
            world_rot[..., i, :, :] = world_rot[..., p, :, :] @ local_rot_mats[..., i, :, :]
    return world_pos, world_rot


# ------------------------------------------------------------------------------------------ CMU (BVH)

# Hierarchy and rest offsets of the CMU BVH conversion (Second-Life names) in /work/shared/data/cmu_salsa,
# units as in those files (about 1.19 units tall). Columns: name, parent, offset.
_CMU_JOINTS: tuple[tuple[str, int, tuple[float, float, float]], ...] = (
    ("hip", -1, (0.0, 0.0, 0.0)),
    ("abdomen", 0, (0.0, 0.161626, -0.005715)),
    ("chest", 1, (0.0, 0.09144, -0.00381)),
    ("neck", 2, (0.0, 0.173355, -0.017145)),
    ("head", 3, (-0.001905, 0.055245, 0.009525)),
    ("leftEye", 4, (0.032385, 0.062865, 0.062865)),
    ("rightEye", 4, (-0.028575, 0.062865, 0.062865)),
    ("rCollar", 2, (-0.020955, 0.150495, -0.0381)),
    ("rShldr", 7, (-0.06858, -0.01524, 0.01143)),
    ("rForeArm", 8, (-0.220111, -0.013371, 0.00381)),
    ("rHand", 9, (-0.176468, 0.006041, 0.055245)),
    ("rThumb1", 10, (-0.009525, -0.003812, 0.02667)),
    ("rThumb2", 11, (-0.026331, -0.004098, 0.02667)),
    ("rIndex1", 10, (-0.060621, 0.00733, 0.043815)),
    ("rIndex2", 13, (-0.019848, -0.006908, 0.01223)),
    ("rMid1", 10, (-0.064431, 0.009235, 0.02667)),
    ("rMid2", 15, (-0.024232, -0.00461, 0.008318)),
    ("rRing1", 10, (-0.06897, 0.004271, 0.01185)),
    ("rRing2", 17, (-0.020385, -0.006405, -0.000155)),
    ("rPinky1", 10, (-0.064625, -0.000373, -0.003581)),
    ("rPinky2", 19, (-0.014276, -0.005058, -0.005476)),
    ("lCollar", 2, (0.020955, 0.150495, -0.0381)),
    ("lShldr", 21, (0.06858, -0.01524, 0.01143)),
    ("lForeArm", 22, (0.220111, -0.013371, 0.00381)),
    ("lHand", 23, (0.176468, 0.006041, 0.055245)),
    ("lThumb1", 24, (0.009525, -0.003812, 0.02667)),
    ("lThumb2", 25, (0.026331, -0.004098, 0.02667)),
    ("lIndex1", 24, (0.060621, 0.00733, 0.043815)),
    ("lIndex2", 27, (0.019848, -0.006908, 0.01223)),
    ("lMid1", 24, (0.064431, 0.009235, 0.02667)),
    ("lMid2", 29, (0.024232, -0.00461, 0.008318)),
    ("lRing1", 24, (0.06897, 0.004271, 0.01185)),
    ("lRing2", 31, (0.020385, -0.006405, -0.000155)),
    ("lPinky1", 24, (0.064625, -0.000373, -0.003581)),
    ("lPinky2", 33, (0.014276, -0.005058, -0.005476)),
    ("rButtock", 0, (-0.06858, 0.033991, 0.009525)),
    ("rThigh", 35, (0.0, -0.013335, -0.017145)),
    ("rShin", 36, (0.0, -0.287655, 0.005715)),
    ("rFoot", 37, (0.005715, -0.352425, -0.040005)),
    ("lButtock", 0, (0.06858, 0.033991, 0.009525)),
    ("lThigh", 39, (0.0, -0.013335, -0.017145)),
    ("lShin", 40, (0.0, -0.287655, 0.005715)),
    ("lFoot", 41, (-0.005715, -0.352425, -0.040005)),
)

_CMU_END_SITES: dict[str, tuple[float, float, float]] = {
    "leftEye": (0.007812, 0.0, 0.0),
    "rightEye": (0.007812, 0.0, 0.0),
    "rThumb2": (-0.013927, -0.009235, 0.011176),
    "rIndex2": (-0.012697, -0.001834, 0.009102),
    "rMid2": (-0.019418, -0.00257, 0.006542),
    "rRing2": (-0.018269, -0.002297, 0.001313),
    "rPinky2": (-0.013221, -0.004044, -0.004744),
    "lThumb2": (0.013927, -0.009235, 0.011176),
    "lIndex2": (0.012697, -0.001834, 0.009102),
    "lMid2": (0.019418, -0.00257, 0.006542),
    "lRing2": (0.018269, -0.002297, 0.001313),
    "lPinky2": (0.013221, -0.004044, -0.004744),
    "rFoot": (-0.008766, -0.028903, 0.094555),
    "lFoot": (0.008766, -0.028903, 0.094555),
}


def _side_bones(prefix: str, side: str) -> dict[str, str]:
    """CMU names of one side (``prefix`` 'l'/'r') -> HumanBodyBones (``side`` 'Left'/'Right')."""
    m = {
        "Collar": "Shoulder", "Shldr": "UpperArm", "ForeArm": "LowerArm", "Hand": "Hand",
        "Thigh": "UpperLeg", "Shin": "LowerLeg", "Foot": "Foot",
        "Thumb1": "ThumbProximal", "Thumb2": "ThumbIntermediate",
        "Index1": "IndexProximal", "Index2": "IndexIntermediate",
        "Mid1": "MiddleProximal", "Mid2": "MiddleIntermediate",
        "Ring1": "RingProximal", "Ring2": "RingIntermediate",
        "Pinky1": "LittleProximal", "Pinky2": "LittleIntermediate",
    }
    return {prefix + k: side + v for k, v in m.items()}


# rButtock/lButtock have no HumanBodyBones counterpart: VMC sends thigh rotations relative to the hip.
_CMU_UNITY: dict[str, str] = {
    "hip": "Hips", "abdomen": "Spine", "chest": "Chest", "neck": "Neck", "head": "Head",
    "leftEye": "LeftEye", "rightEye": "RightEye",
    **_side_bones("l", "Left"), **_side_bones("r", "Right"),
}


def _build(
    name: str,
    joints: Iterable[tuple[str, int, tuple[float, float, float]]],
    end_sites: Mapping[str, tuple[float, float, float]],
    unity: Mapping[str, str],
) -> Skeleton:
    rows = list(joints)
    names = tuple(r[0] for r in rows)
    return Skeleton(
        name=name,
        joint_names=names,
        parents=tuple(r[1] for r in rows),
        offsets=np.array([r[2] for r in rows], dtype=np.float64),
        end_sites={names.index(k): np.array(v) for k, v in end_sites.items()},
        unity_bones=dict(unity),
    )


# ------------------------------------------------------------------------------------------------ SMPL

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
SMPL_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
# Offsets of the SMPL neutral body's mean-shape joint regressor output (metres, Y up, facing +Z).
_SMPL_OFFSETS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 0.0),
    (0.05858135, -0.08228004, -0.01766408),
    (-0.06030973, -0.09051332, -0.01354254),
    (0.00443945, 0.12440352, -0.03838522),
    (0.04345142, -0.38646945, 0.008037),
    (-0.04325663, -0.38368791, -0.00484304),
    (0.00448844, 0.1379564, 0.02682033),
    (-0.01479032, -0.42687458, -0.037428),
    (0.01905555, -0.4200455, -0.03456167),
    (-0.00226458, 0.05603239, 0.00285505),
    (0.04105436, -0.06028581, 0.12204243),
    (-0.03483987, -0.06210566, 0.13032329),
    (-0.0133902, 0.21163553, -0.03346758),
    (0.07170245, 0.11399969, -0.01889817),
    (-0.08295366, 0.11247234, -0.02370739),
    (0.01011321, 0.08893734, 0.05040987),
    (0.12292141, 0.04520509, -0.019046),
    (-0.11322832, 0.04685326, -0.00847207),
    (0.2553319, -0.01564902, -0.02294649),
    (-0.26012748, -0.01436928, -0.03126873),
    (0.26570925, 0.01269811, -0.00737473),
    (-0.26910836, 0.00679372, -0.00602676),
    (0.08669055, -0.01063603, -0.01559429),
    (-0.0887537, -0.00865157, -0.01010708),
)
_SMPL_UNITY: dict[str, str] = {
    "pelvis": "Hips", "left_hip": "LeftUpperLeg", "right_hip": "RightUpperLeg", "spine1": "Spine",
    "left_knee": "LeftLowerLeg", "right_knee": "RightLowerLeg", "spine2": "Chest", "left_ankle": "LeftFoot",
    "right_ankle": "RightFoot", "spine3": "UpperChest", "left_foot": "LeftToes", "right_foot": "RightToes",
    "neck": "Neck", "left_collar": "LeftShoulder", "right_collar": "RightShoulder", "head": "Head",
    "left_shoulder": "LeftUpperArm", "right_shoulder": "RightUpperArm", "left_elbow": "LeftLowerArm",
    "right_elbow": "RightLowerArm", "left_wrist": "LeftHand", "right_wrist": "RightHand",
}


CMU_SKELETON = _build("cmu", _CMU_JOINTS, _CMU_END_SITES, _CMU_UNITY)
SMPL_SKELETON = Skeleton(
    name="smpl",
    joint_names=SMPL_JOINT_NAMES,
    parents=SMPL_PARENTS,
    offsets=np.array(_SMPL_OFFSETS),
    unity_bones=_SMPL_UNITY,
)

_REGISTRY: dict[str, Skeleton] = {"cmu": CMU_SKELETON, "smpl": SMPL_SKELETON}


def get_skeleton(name: str) -> Skeleton:
    """A registered skeleton by name; the error lists the names that exist."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown skeleton {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def register_skeleton(skel: Skeleton, replace: bool = False) -> None:
    """Add a skeleton to the registry (``replace=True`` to overwrite an existing name)."""
    if skel.name in _REGISTRY and not replace:
        raise ValueError(f"a skeleton named {skel.name!r} is already registered")
    _REGISTRY[skel.name] = skel


def skeleton_names() -> list[str]:
    return sorted(_REGISTRY)

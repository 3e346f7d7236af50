"""Per-frame quantities every wire format needs (world rotations/positions, VMC bone locals), computed once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from engine.frames import PoseFrame
from engine.skeleton import rotations as R
from engine.skeleton import space
from engine.skeleton.humanoid import tpose_corrections, tpose_positions
from engine.skeleton.skeleton import Skeleton, get_skeleton


@dataclass(frozen=True)
class BoneMap:
    """For one skeleton: the joints that have a Unity bone, and each one's nearest mapped ancestor."""

    joints: tuple[int, ...]  # joint indices with a HumanBodyBones name, in skeleton order
    names: tuple[str, ...]  # their HumanBodyBones names
    mapped_parents: tuple[int, ...]  # nearest mapped ancestor joint index, -1 for the hips


@lru_cache(maxsize=32)
def bone_map(skel: Skeleton) -> BoneMap:
    joints = tuple(i for i, n in enumerate(skel.joint_names) if n in skel.unity_bones)
    return BoneMap(
        joints=joints,
        names=tuple(skel.unity_bones[skel.joint_names[i]] for i in joints),
        mapped_parents=tuple(skel.mapped_parent(i) for i in joints),
    )


@dataclass(frozen=True)
class PreparedPose:
    """A pose plus what encoders derive from it (engine space unless the name says Unity).

    World rotations are computed on first use only: the WebSocket formats need positions alone.
    """

    frame: PoseFrame
    skeleton: Skeleton
    positions: np.ndarray  # [J, 3] world positions, engine space
    _world_rot: np.ndarray | None = None  # [J, 3, 3], when prepare() already computed it

    @cached_property
    def world_rot(self) -> np.ndarray:
        """``[J, 3, 3]`` world rotations, engine space."""
        if self._world_rot is not None:
            return self._world_rot
        return world_rotations(self.skeleton, R.quat_to_matrix(np.asarray(self.frame.rotations, dtype=np.float64)))

    def vmc_bones(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """HumanBodyBones names, Unity-space local positions ``[B, 3]`` and rotations ``[B, 4]`` (w, x, y, z).

        Rotations are relative to the humanoid T-pose with world-aligned bone frames (VMC's and VRM's
        convention; :mod:`engine.skeleton.humanoid`): a T-posed avatar that applies them points every bone
        where the capture points it. A bone's local transform is relative to its nearest *mapped* ancestor,
        so unmapped joints in between (CMU's buttocks) fold into the child.

        Positions: the hips' is the pose's own (the hips over the VMC root, see :meth:`vmc_root`, so the
        body bobs and travels); every other bone's is its constant offset in the skeleton's T-pose, which is
        what a VMC performer sends (its avatar's bone offsets) and keeps receivers that apply positions
        (EVMC4U's "Bone Position Synchronize") from bending the avatar into the capture's rest pose.
        """
        bm = bone_map(self.skeleton)
        j = np.array(bm.joints)
        p = np.array(bm.mapped_parents)
        g = self.world_rot[j] @ tpose_corrections(self.skeleton)[j]  # [B, 3, 3] T-pose-relative world rotations
        local_rot = np.empty((len(j), 3, 3))
        local_pos = np.empty((len(j), 3))
        hips = p < 0
        local_rot[hips] = g[hips]
        local_pos[hips] = self.positions[j[hips]] - space.from_unity_positions(self.vmc_root())
        rest = ~hips
        slot = {int(joint): k for k, joint in enumerate(j)}
        parent_g_t = np.swapaxes(g[[slot[int(x)] for x in p[rest]]], -1, -2)  # inverse of a rotation = transpose
        local_rot[rest] = parent_g_t @ g[rest]
        tpos = tpose_positions(self.skeleton)
        local_pos[rest] = tpos[j[rest]] - tpos[p[rest]]
        return (
            bm.names,
            space.to_unity_positions(local_pos),
            space.to_unity_quats(R.matrix_to_quat(local_rot)),
        )

    def vmc_root(self) -> np.ndarray:
        """Unity-space position ``[3]`` of the VMC root: the root joint projected on the ground (y = 0)."""
        p = self.positions[0].copy()
        p[1] = 0.0
        return space.to_unity_positions(p)


def world_rotations(skel: Skeleton, local_rot: np.ndarray) -> np.ndarray:
    """``[J, 3, 3]`` world rotations from joint-local ones ``[J, 3, 3]``."""
    out = np.empty_like(local_rot)
    for i, par in enumerate(skel.parents):
        out[i] = local_rot[i] if par < 0 else out[par] @ local_rot[i]
    return out


def prepare(frame: PoseFrame, skel: Skeleton | None = None) -> PreparedPose:
    """Validate a frame against its skeleton and derive world rotations and positions.

    Args:
        frame: the pose (engine space).
        skel: skeleton to use; by default the registered one named by ``frame.skeleton``. Positions come
            from ``frame.positions`` when present, else from forward kinematics on this skeleton.
    """
    sk = skel if skel is not None else get_skeleton(frame.skeleton)
    j = sk.num_joints
    rot = np.asarray(frame.rotations, dtype=np.float64)
    if rot.shape != (j, 4):
        raise ValueError(f"pose for skeleton {sk.name!r} needs rotations [{j}, 4], got {rot.shape}")
    root = np.asarray(frame.root_position, dtype=np.float64)
    if root.shape != (3,):
        raise ValueError(f"root_position must be [3], got {root.shape}")
    if frame.positions is not None:
        pos = np.asarray(frame.positions, dtype=np.float64)
        if pos.shape != (j, 3):
            raise ValueError(f"positions must be [{j}, 3], got {pos.shape}")
        return PreparedPose(frame, sk, pos)
    world_rot = world_rotations(sk, R.quat_to_matrix(rot))
    pos = np.empty((j, 3))
    for i, par in enumerate(sk.parents):
        pos[i] = root if par < 0 else pos[par] + world_rot[par] @ sk.offsets[i]
    return PreparedPose(frame, sk, pos, world_rot)

"""Model pose vectors (EDGE style): root translation + per-joint 6D rotations + 4 foot contacts, split upper/lower.

The model uses 21 body joints of the CMU skeleton (fingers and eyes dropped; they are written at rest).
Per frame at 30 fps:

* lower (61): root horizontal velocity x (m/s), root height y (m), root horizontal velocity z (m/s);
  6D rotations of hip (global orientation), rButtock, rThigh, rShin, rFoot, lButtock, lThigh, lShin,
  lFoot (9 x 6); foot contacts (right ankle, right toe, left ankle, left toe) as 0/1.
* upper (72): 6D rotations of abdomen, chest, neck, head, rCollar, rShldr, rForeArm, rHand,
  lCollar, lShldr, lForeArm, lHand (12 x 6).

The root's horizontal position is carried as velocity so a token is independent of where on the floor
the dancer is; decoding integrates it. Everything is in metres: the CMU files are scaled by
:data:`CMU_SCALE` (rest extent from foot end sites to eyes, 1.193 units, mapped to 1.60 m, i.e. a
person of about 1.72 m).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from engine.frames import MODEL_FPS, PoseFrame
from engine.skeleton import rotations as R
from engine.skeleton.skeleton import Skeleton, forward_kinematics, get_skeleton

#: Rest extent (foot end sites to eyes) of the CMU skeleton in metres after scaling.
CMU_REST_EXTENT_M = 1.60
#: Multiplier from CMU salsa file units to metres (1.60 / 1.19286).
CMU_SCALE = CMU_REST_EXTENT_M / 1.192858

LOWER_JOINTS: tuple[str, ...] = ("hip", "rButtock", "rThigh", "rShin", "rFoot", "lButtock", "lThigh", "lShin", "lFoot")
UPPER_JOINTS: tuple[str, ...] = (
    "abdomen", "chest", "neck", "head", "rCollar", "rShldr", "rForeArm", "rHand",
    "lCollar", "lShldr", "lForeArm", "lHand",
)
MODEL_JOINTS: tuple[str, ...] = LOWER_JOINTS + UPPER_JOINTS
#: Foot points whose contact is labelled: (joint, use its end site).
CONTACT_POINTS: tuple[tuple[str, bool], ...] = (("rFoot", False), ("rFoot", True), ("lFoot", False), ("lFoot", True))
LOWER_DIM = 3 + 6 * len(LOWER_JOINTS) + len(CONTACT_POINTS)  # 61
UPPER_DIM = 6 * len(UPPER_JOINTS)  # 72
CONTACT_SLICE = slice(LOWER_DIM - len(CONTACT_POINTS), LOWER_DIM)
#: Contact thresholds: a foot point is in contact when within this height of its floor level and slower than this.
CONTACT_HEIGHT_M = 0.05
CONTACT_SPEED_MS = 0.35


def metric_cmu_skeleton() -> Skeleton:
    """The CMU skeleton scaled to metres (name ``"cmu"``, so PoseFrames keep referring to it)."""
    return get_skeleton("cmu").scaled(CMU_SCALE)


@dataclass
class Motion:
    """A motion clip in engine space: root positions and joint-local rotation matrices of a full skeleton."""

    skeleton: Skeleton
    root_pos: np.ndarray  # [T, 3] metres
    rot: np.ndarray  # [T, J, 3, 3] joint-local rotation matrices
    fps: float

    @property
    def n_frames(self) -> int:
        return len(self.root_pos)


def model_joint_indices(skel: Skeleton) -> np.ndarray:
    """Indices of :data:`MODEL_JOINTS` in ``skel`` (raises KeyError naming a missing joint)."""
    return np.array(_model_joints(skel), dtype=np.int64)


@functools.lru_cache(maxsize=16)
def _model_joints(skel: Skeleton) -> tuple[int, ...]:
    # skeletons are immutable and hash by identity: looked up once per skeleton (every live step converts)
    return tuple(skel.index(n) for n in MODEL_JOINTS)


@functools.lru_cache(maxsize=16)
def _foot_chain(skel: Skeleton) -> tuple[int, ...]:
    """The contact joints and their ancestors, parents first (what :func:`foot_points` needs of the FK)."""
    need: set[int] = set()
    for name, _ in CONTACT_POINTS:
        j = skel.index(name)
        while j >= 0 and j not in need:
            need.add(j)
            j = skel.parents[j]
    return tuple(sorted(need))


def foot_points(skel: Skeleton, root_pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """World positions of the 4 contact points. root_pos: [T, 3], rot: [T, J, 3, 3] -> [T, 4, 3].

    Forward kinematics along the legs only (the same products as the full skeleton's FK, so the same values,
    at about a third of the cost: it runs on every live step for foot locking).
    """
    rot = np.asarray(rot, dtype=np.float64)
    root_pos = np.asarray(root_pos, dtype=np.float64)
    if rot.shape[-3:] != (skel.num_joints, 3, 3):
        raise ValueError(f"rotations must be [..., {skel.num_joints}, 3, 3], got {rot.shape}")
    lead = np.broadcast_shapes(root_pos.shape[:-1], rot.shape[:-3])
    pos: dict[int, np.ndarray] = {}
    wrot: dict[int, np.ndarray] = {}
    for i in _foot_chain(skel):
        p = skel.parents[i]
        if p < 0:
            wrot[i] = rot[..., i, :, :]
            pos[i] = np.broadcast_to(root_pos, (*lead, 3))
        else:
            pos[i] = pos[p] + wrot[p] @ skel.offsets[i]
            wrot[i] = wrot[p] @ rot[..., i, :, :]
    pts = []
    for name, end in CONTACT_POINTS:
        j = skel.index(name)
        q = pos[j]
        if end:
            q = q + wrot[j] @ skel.end_sites[j]
        pts.append(q)
    return np.stack(pts, axis=-2)


def foot_contacts(points: np.ndarray, fps: float, floor: np.ndarray | None = None) -> np.ndarray:
    """0/1 contact labels from foot point height and speed. points: [T, 4, 3] -> [T, 4] float32.

    ``floor`` ([4] heights) defaults to the 5th percentile of each point's height over the clip.
    """
    h = points[..., 1]
    if floor is None:
        floor = np.percentile(h, 5, axis=0)
    v = np.linalg.norm(np.diff(points, axis=0, prepend=points[:1]), axis=-1) * fps
    v[0] = v[1] if len(v) > 1 else 0.0
    return ((h - floor < CONTACT_HEIGHT_M) & (v < CONTACT_SPEED_MS)).astype(np.float32)


def motion_to_vectors(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """Full-skeleton motion -> (upper [T, 72], lower [T, 61]) float32 model vectors."""
    skel = motion.skeleton
    idx = model_joint_indices(skel)
    d6 = R.matrix_to_rot6d(motion.rot[:, idx])  # [T, 21, 6]
    nl = len(LOWER_JOINTS)
    root = motion.root_pos
    vel = np.diff(root, axis=0, prepend=root[:1]) * motion.fps
    if len(vel) > 1:
        vel[0] = vel[1]
    contacts = foot_contacts(foot_points(skel, root, motion.rot), motion.fps)
    lower = np.concatenate(
        [vel[:, :1], root[:, 1:2], vel[:, 2:3], d6[:, :nl].reshape(len(root), -1), contacts], axis=1
    )
    upper = d6[:, nl:].reshape(len(root), -1)
    return upper.astype(np.float32), lower.astype(np.float32)


def vectors_to_motion(
    upper: np.ndarray,
    lower: np.ndarray,
    skel: Skeleton | None = None,
    fps: float = MODEL_FPS,
    start_xz: tuple[float, float] = (0.0, 0.0),
) -> Motion:
    """Model vectors (upper [T, 72], lower [T, 61]) -> full-skeleton Motion (dropped joints at rest).

    The root's horizontal position integrates the velocity channels from ``start_xz``.
    """
    skel = skel or metric_cmu_skeleton()
    if upper.shape[-1] != UPPER_DIM or lower.shape[-1] != LOWER_DIM or len(upper) != len(lower):
        raise ValueError(
            f"expected upper [T, {UPPER_DIM}] and lower [T, {LOWER_DIM}], got {upper.shape}, {lower.shape}"
        )
    t = len(upper)
    rot = np.broadcast_to(np.eye(3), (t, skel.num_joints, 3, 3)).copy()
    rot[:, model_joint_indices(skel)] = R.rot6d_to_matrix(vectors_rot6d(upper, lower))
    return Motion(skeleton=skel, root_pos=root_track(lower, fps, start_xz), rot=rot, fps=fps)


def vectors_rot6d(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The model joints' 6D rotations [T, 21, 6] of model vectors (upper [T, 72], lower [T, 61]), lower joints then
    upper (the order of :func:`model_joint_indices`), in the vectors' dtype."""
    t, nl = len(upper), len(LOWER_JOINTS)
    return np.concatenate([lower[:, 3 : 3 + 6 * nl].reshape(t, nl, 6), upper.reshape(t, -1, 6)], axis=1)


def root_track(lower: np.ndarray, fps: float = MODEL_FPS, start_xz: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The root positions [T, 3] of model vectors' lower half [T, 61] (:func:`vectors_to_motion`'s): x and z
    integrate the velocity channels from ``start_xz``, y is the height channel."""
    root = np.zeros((len(lower), 3))
    root[:, 0] = start_xz[0] + np.cumsum(lower[:, 0]) / fps
    root[:, 2] = start_xz[1] + np.cumsum(lower[:, 2]) / fps
    root[:, 1] = lower[:, 1]
    return root


def motion_positions(motion: Motion) -> np.ndarray:
    """World joint positions [T, J, 3] of a Motion."""
    return forward_kinematics(motion.skeleton, motion.root_pos, motion.rot)


def motion_to_pose_frames(
    motion: Motion, performer: int = 0, start_frame: int = 0, with_positions: bool = False
) -> list[PoseFrame]:
    """Motion -> PoseFrames (quaternions w, x, y, z for every skeleton joint; engine space, metres)."""
    quats = R.matrix_to_quat(motion.rot).astype(np.float32)  # [T, J, 4]
    pos = motion_positions(motion).astype(np.float32) if with_positions else None
    frames = []
    for i in range(motion.n_frames):
        fi = start_frame + i
        frames.append(
            PoseFrame(
                sample_index=0,
                capture_ns=0,
                frame_index=fi,
                performer=performer,
                skeleton=motion.skeleton.name,
                root_position=motion.root_pos[i].astype(np.float32),
                rotations=quats[i],
                positions=None if pos is None else pos[i],
                time_s=fi / motion.fps,
                fps=motion.fps,
            )
        )
    return frames


def pose_frames_to_motion(frames: list[PoseFrame], skel: Skeleton | None = None) -> Motion:
    """PoseFrames of one performer (consecutive, CMU skeleton) -> Motion; inverse of :func:`motion_to_pose_frames`."""
    if not frames:
        raise ValueError("no pose frames given")
    skel = skel or metric_cmu_skeleton()
    names = {f.skeleton for f in frames}
    if names != {skel.name}:
        raise ValueError(f"pose frames are for skeleton(s) {sorted(names)}, expected {skel.name!r}")
    quats = np.stack([np.asarray(f.rotations, dtype=np.float64) for f in frames])  # [T, J, 4]
    if quats.shape[1:] != (skel.num_joints, 4):
        raise ValueError(f"rotations must be [{skel.num_joints}, 4] per frame, got {quats.shape[1:]}")
    root = np.stack([np.asarray(f.root_position, dtype=np.float64) for f in frames])
    return Motion(skeleton=skel, root_pos=root, rot=R.quat_to_matrix(quats), fps=float(frames[0].fps))


def resample_motion(motion: Motion, src_times: np.ndarray, fps_out: float) -> Motion:
    """Sample ``motion`` at fractional frame positions ``src_times`` ([n_out], in source frames).

    Root positions are interpolated linearly and rotations by quaternion slerp; used to decimate
    and to time-warp.
    """
    src_times = np.clip(np.asarray(src_times, dtype=np.float64), 0, motion.n_frames - 1)
    i0 = np.floor(src_times).astype(np.int64)
    i1 = np.minimum(i0 + 1, motion.n_frames - 1)
    w = (src_times - i0)[:, None]
    root = motion.root_pos[i0] * (1 - w) + motion.root_pos[i1] * w
    q = R.matrix_to_quat(motion.rot)  # [T, J, 4]
    qs = R.slerp(q[i0], q[i1], w)  # w: [T, 1] broadcasts over joints
    return Motion(skeleton=motion.skeleton, root_pos=root, rot=R.quat_to_matrix(qs), fps=fps_out)


def model_fk_layout(skel: Skeleton | None = None) -> tuple[list[int], np.ndarray, list[str]]:
    """Parents, offsets [K, 3] and names of the model joints plus the two toe end sites, for FK losses.

    The 21 model joints are closed under parents, so FK over them alone gives their exact positions.
    """
    skel = skel or metric_cmu_skeleton()
    idx = list(model_joint_indices(skel))
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    names = list(MODEL_JOINTS)
    for j in idx:
        p = skel.parents[j]
        parents.append(-1 if p < 0 else idx.index(p))
        offsets.append(skel.offsets[j])
    for foot in ("rFoot", "lFoot"):
        j = skel.index(foot)
        parents.append(idx.index(j))
        offsets.append(skel.end_sites[j])
        names.append(foot + "_toe")
    return parents, np.stack(offsets), names


def _mirror_6d(d6: np.ndarray) -> np.ndarray:
    """6D of M R M with M = diag(-1, 1, 1) (reflection through the x = 0 plane). d6: [..., 6]."""
    out = d6.copy()
    out[..., 1:3] *= -1.0  # first column: M R M e1 = -M (R e1) -> (x, -y, -z)
    out[..., 3] *= -1.0  # second column: M (R e2) -> (-x, y, z)
    return out


def mirror_vectors(upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left/right mirror image of model vectors (the CMU skeleton is mirror-symmetric in x).

    Rotations become M R M with the left and right joints swapped; root x velocity flips; the contact
    labels of the two feet swap. Mirroring twice gives the input back.
    """
    t = len(upper)
    nl = len(LOWER_JOINTS)
    lo6 = _mirror_6d(lower[:, 3 : 3 + 6 * nl].reshape(t, nl, 6))
    up6 = _mirror_6d(upper.reshape(t, -1, 6))

    def swap(names: tuple[str, ...], arr: np.ndarray) -> np.ndarray:
        idx = [names.index({"r": "l", "l": "r"}[n[0]] + n[1:]) if n[0] in "rl" else i for i, n in enumerate(names)]
        return arr[:, idx]

    lo6 = swap(LOWER_JOINTS, lo6)
    up6 = swap(UPPER_JOINTS, up6)
    root = lower[:, :3].copy()
    root[:, 0] *= -1.0
    contacts = lower[:, CONTACT_SLICE][:, [2, 3, 0, 1]]
    new_lower = np.concatenate([root, lo6.reshape(t, -1), contacts], axis=1).astype(lower.dtype)
    return up6.reshape(t, -1).astype(upper.dtype), new_lower


def lock_feet(upper: np.ndarray, lower: np.ndarray, fps: float = MODEL_FPS, skel: Skeleton | None = None) -> np.ndarray:
    """Root-velocity foot locking: a copy of ``lower`` whose root x/z velocity keeps contact feet planted.

    On frames where the model marks foot points as in contact, the root's horizontal velocity is set to
    minus the mean horizontal velocity of those points relative to the root, so they do not slide on
    the floor (the body moves by pushing off its planted foot). Frame-local and causal: usable live.
    """
    return lock_feet_rot(upper, lower, fps, skel)[0]


def lock_feet_rot(upper: np.ndarray, lower: np.ndarray, fps: float = MODEL_FPS, skel: Skeleton | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`lock_feet`, and the joint-local rotations [T, J, 3, 3] it computed on the way (those of
    :func:`vectors_to_motion`, which locking does not change: only the root velocity channels move), so the live
    step need not compute them again; None for fewer than 2 frames (nothing to lock)."""
    skel = skel or metric_cmu_skeleton()
    t = len(upper)
    if t < 2:
        return lower.copy(), None
    motion = vectors_to_motion(upper, lower, skel, fps)
    root = np.zeros((t, 3))
    root[:, 1] = lower[:, 1]
    rel = foot_points(skel, root, motion.rot)  # [T, 4, 3] root-relative horizontally
    out = lower.copy()
    out[:, [0, 2]] = locked_root_velocity(rel[..., [0, 2]], lower[:, CONTACT_SLICE], lower[:, [0, 2]], fps)
    return out, motion.rot


def locked_root_velocity(feet_xz: np.ndarray, contacts: np.ndarray, root_v: np.ndarray, fps: float = MODEL_FPS
                         ) -> np.ndarray:
    """The root x/z velocity :func:`lock_feet` gives, from the contact points' root-relative horizontal positions
    ``feet_xz`` [..., T, 4, 2], the contact entries [..., T, 4] (> 0.5: planted) and the drawn root velocity
    ``root_v`` [..., T, 2] (kept on frames with no contact and on the first frame); leading axes: a batch of
    clips (beat guidance's text term locks its candidates' frames with it, as they will be output)."""
    d_rel = np.diff(feet_xz, axis=-3, prepend=feet_xz[..., :1, :, :]) * fps  # [..., T, 4, 2]
    contact = np.asarray(contacts) > 0.5
    any_c: np.ndarray = np.asarray(contact.any(axis=-1))
    any_c[..., 0] = False  # the first frame has no previous frame to hold still against
    n = np.maximum(contact.sum(axis=-1, keepdims=True), 1)
    planted = -(d_rel * contact[..., None]).sum(axis=-2) / n  # [..., T, 2]
    return np.where(any_c[..., None], planted, root_v)

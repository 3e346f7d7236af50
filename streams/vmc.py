"""VMC protocol (OSC) encoding of a pose: one bundle per frame, Unity space, HumanBodyBones names."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.frames import PoseFrame
from engine.skeleton.skeleton import Skeleton
from streams.osc import OscArg, OscInt64, encode_bundle, encode_message, encode_string
from streams.prepare import PreparedPose, prepare

#: Port a VMC Marionette (receiver: EVMC4U, VMC4UE, VSeeFace...) listens on by default.
VMC_DEFAULT_PORT = 39539
#: Extension message carrying groovecast's stamps; VMC receivers ignore addresses they do not know.
STAMP_ADDRESS = "/groovecast/stamp"


def stamp_args(frame: PoseFrame) -> tuple[OscArg, ...]:
    """``i performer, i frame_index, h sample_index, h src_monotonic_ns``."""
    return (frame.performer, frame.frame_index, OscInt64(frame.sample_index), OscInt64(frame.capture_ns))


def vmc_messages(p: PreparedPose) -> list[bytes]:
    """The messages of one VMC frame, in bundle order.

    * ``/VMC/Ext/OK i1 i3 i0 i1``: model loaded, calibrated, normal mode, tracking OK (V2.7 form).
    * ``/VMC/Ext/T f``: sender time in seconds (the pose's output-timeline time).
    * ``/groovecast/stamp i h h``: frame index, sample index, src_monotonic_ns (see :func:`stamp_args`).
    * ``/VMC/Ext/Root/Pos s"root" fff ffff``: the avatar root on the ground under the hips, identity rotation.
    * ``/VMC/Ext/Bone/Pos s<HumanBodyBones> fff ffff`` per mapped bone: local position then local
      rotation quaternion (x, y, z, w), Unity space.
    """
    f = p.frame
    msgs = [
        encode_message("/VMC/Ext/OK", (1, 3, 0, 1)),
        encode_message("/VMC/Ext/T", (float(f.time_s),)),
        encode_message(STAMP_ADDRESS, stamp_args(f)),
    ]
    rx, ry, rz = (float(v) for v in p.vmc_root())
    msgs.append(encode_message("/VMC/Ext/Root/Pos", ("root", rx, ry, rz, 0.0, 0.0, 0.0, 1.0)))
    names, pos, rot = p.vmc_bones()
    # Same bytes as encode_message(BONE, (name, px, py, pz, qx, qy, qz, qw)), built in bulk: this message
    # repeats ~40 times per frame, so the address/tags/name prefixes are cached and floats packed at once.
    vals = np.concatenate([pos, rot[:, 1:], rot[:, :1]], axis=1).astype(">f4")  # [B, 7] big-endian
    for name, row in zip(names, vals, strict=True):
        msgs.append(_bone_prefix(name) + row.tobytes())
    return msgs


@lru_cache(maxsize=512)
def _bone_prefix(name: str) -> bytes:
    return _BONE_HEAD + encode_string(name)


_BONE_HEAD = encode_string("/VMC/Ext/Bone/Pos") + encode_string(",sfffffff")


def encode_vmc(frame: PoseFrame | PreparedPose, skel: Skeleton | None = None) -> bytes:
    """One OSC bundle (time tag "immediately") holding a whole VMC frame."""
    p = frame if isinstance(frame, PreparedPose) else prepare(frame, skel)
    return encode_bundle(vmc_messages(p))

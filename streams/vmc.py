"""VMC protocol (OSC) encoding of a pose: one bundle per frame, Unity space, HumanBodyBones names."""

from __future__ import annotations

from engine.frames import PoseFrame
from engine.skeleton.skeleton import Skeleton
from streams.osc import OscArg, OscInt64, encode_bundle, encode_message
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
    for name, (px, py, pz), (qw, qx, qy, qz) in zip(names, pos.tolist(), rot.tolist(), strict=True):
        msgs.append(encode_message("/VMC/Ext/Bone/Pos", (name, px, py, pz, qx, qy, qz, qw)))
    return msgs


def encode_vmc(frame: PoseFrame | PreparedPose, skel: Skeleton | None = None) -> bytes:
    """One OSC bundle (time tag "immediately") holding a whole VMC frame."""
    p = frame if isinstance(frame, PreparedPose) else prepare(frame, skel)
    return encode_bundle(vmc_messages(p))

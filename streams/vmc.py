"""VMC protocol (OSC) encoding of a pose: one bundle per frame, Unity space, HumanBodyBones names."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.frames import PoseFrame
from engine.skeleton.skeleton import Skeleton
from streams.osc import OscArg, encode_bundle, encode_message, encode_string
from streams.prepare import PreparedPose, prepare

#: Port a VMC Marionette (receiver: EVMC4U, VMC4UE, VSeeFace...) listens on by default.
VMC_DEFAULT_PORT = 39539
#: Optional extension message carrying groovecast's stamps (off by default; see :func:`vmc_messages`).
STAMP_ADDRESS = "/groovecast/stamp"
#: The only OSC type tags a VMC bundle may contain: the OSC 1.0 core types every receiver parses.
#: uOSC (EVMC4U's parser) knows i f s b T F and loses its place on anything else, e.g. int64 ``h``.
VMC_TYPE_TAGS = frozenset("ifs")


def stamp_args(frame: PoseFrame) -> tuple[OscArg, ...]:
    """``i performer, i frame_index, s sample_index, s src_monotonic_ns``.

    The two 64-bit stamps travel as decimal strings: exact, and a core OSC type (no int64 ``h``).
    """
    return (frame.performer, frame.frame_index, str(int(frame.sample_index)), str(int(frame.capture_ns)))


def vmc_messages(p: PreparedPose, stamp: bool = False) -> list[bytes]:
    """The messages of one VMC frame, in bundle order. Argument types are only ``i``, ``f`` and ``s``.

    * ``/VMC/Ext/OK i1 i3 i0 i1``: model loaded, calibrated, normal mode, tracking OK (V2.7 form).
    * ``/VMC/Ext/T f``: sender time in seconds (the pose's output-timeline time).
    * ``/groovecast/stamp i i s s`` (only with ``stamp=True``): performer, frame index, sample index,
      src_monotonic_ns (see :func:`stamp_args`).
    * ``/VMC/Ext/Root/Pos s"root" fff ffff``: the avatar root on the ground under the hips, identity rotation.
    * ``/VMC/Ext/Bone/Pos s<HumanBodyBones> fff ffff`` per mapped bone: local position then local
      rotation quaternion (x, y, z, w), Unity space.
    """
    f = p.frame
    msgs = [
        encode_message("/VMC/Ext/OK", (1, 3, 0, 1)),
        encode_message("/VMC/Ext/T", (float(f.time_s),)),
    ]
    if stamp:
        msgs.append(encode_message(STAMP_ADDRESS, stamp_args(f)))
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


def encode_vmc(frame: PoseFrame | PreparedPose, skel: Skeleton | None = None, stamp: bool = False) -> bytes:
    """One OSC bundle (time tag "immediately") holding a whole VMC frame (``stamp``: see :func:`vmc_messages`)."""
    p = frame if isinstance(frame, PreparedPose) else prepare(frame, skel)
    return encode_bundle(vmc_messages(p, stamp))

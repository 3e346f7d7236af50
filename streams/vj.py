"""VJ OSC profile (TouchDesigner, Resolume): beat pulse, BPM, phase, energy and joint positions.

Every address starts with ``/groovecast/<performer>/`` (e.g. ``/groovecast/0/bpm``); one bundle per frame:

==============================  ========  ===================================================================
address                         types     meaning
==============================  ========  ===================================================================
``frame``                       ``iss``   frame index, audio sample index, src_monotonic_ns (64-bit: strings)
``beat``                        ``i``     the beat pulse: 1 in a message of its own at the beat as heard
                                          (``play``/``live``, :func:`encode_vj_pulse`), 0 in every frame
                                          bundle; with ``--beat-pulse frame`` (or ``replay``, ``--fast``)
                                          1 in the bundle of the frame a beat falls on, else 0
``bpm``                         ``f``     tempo in beats per minute
``phase``                       ``f``     beat phase 0..1 (0 = on the beat)
``energy``                      ``f``     music energy 0..1
``root``                        ``fff``   root joint position
``joint/<name>``                ``fff``   world position of each joint, named as in the skeleton
==============================  ========  ===================================================================

Only the OSC core types ``i``, ``f`` and ``s`` are used (Resolume, TouchDesigner and uOSC-based receivers
parse these; some do not know int64 ``h``), so the 64-bit stamps travel as decimal strings.
Positions are in engine space (right-handed, Y up, metres), which is also TouchDesigner's convention.
"""

from __future__ import annotations

from engine.frames import PoseFrame
from engine.skeleton.skeleton import Skeleton
from streams.osc import encode_bundle, encode_message
from streams.prepare import PreparedPose, prepare

VJ_PREFIX = "/groovecast"


def vj_messages(p: PreparedPose, frame_beat: bool = True) -> list[bytes]:
    """The VJ messages of one frame; ``frame_beat`` False: ``beat`` is 0 (pulses are sent on their own)."""
    f = p.frame
    base = f"{VJ_PREFIX}/{f.performer}"
    msgs = [
        encode_message(f"{base}/frame", (f.frame_index, str(int(f.sample_index)), str(int(f.capture_ns)))),
        encode_message(f"{base}/beat", (1 if f.beat and frame_beat else 0,)),
        encode_message(f"{base}/bpm", (float(f.bpm),)),
        encode_message(f"{base}/phase", (float(f.beat_phase),)),
        encode_message(f"{base}/energy", (float(f.energy),)),
        encode_message(f"{base}/root", tuple(float(v) for v in p.positions[0])),
    ]
    for name, (x, y, z) in zip(p.skeleton.joint_names, p.positions.tolist(), strict=True):
        msgs.append(encode_message(f"{base}/joint/{name}", (x, y, z)))
    return msgs


def encode_vj(frame: PoseFrame | PreparedPose, skel: Skeleton | None = None, frame_beat: bool = True) -> bytes:
    """One OSC bundle with the VJ profile for a frame."""
    p = frame if isinstance(frame, PreparedPose) else prepare(frame, skel)
    return encode_bundle(vj_messages(p, frame_beat))


def encode_vj_pulse(performer: int) -> bytes:
    """The beat pulse of one performer's address: a plain message ``/groovecast/<performer>/beat 1``."""
    return encode_message(f"{VJ_PREFIX}/{performer}/beat", (1,))

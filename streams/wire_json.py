"""Versioned JSON messages for WebSocket clients (schema in docs/streams.md), as pure functions."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from engine.frames import PoseFrame
from engine.skeleton import rotations as R
from engine.skeleton.humanoid import tpose_corrections
from engine.skeleton.skeleton import Skeleton, get_skeleton, skeleton_names
from streams.prepare import PreparedPose, prepare

#: Version of every JSON message; bumped on incompatible changes.
JSON_VERSION = 1
#: Decimal places kept for rotations and positions (0.01 mm, 1e-5 of a unit quaternion): halves the size.
_DECIMALS = 5


def _r(a: np.ndarray) -> list[Any]:
    return np.round(np.asarray(a, dtype=np.float64), _DECIMALS).tolist()


def pose_dict(p: PreparedPose, server_ns: int) -> dict[str, Any]:
    """The ``pose`` message as a dict. ``server_ns``: server monotonic ns when it published the frame."""
    f = p.frame
    return {
        "type": "pose",
        "v": JSON_VERSION,
        "performer": f.performer,
        "skeleton": p.skeleton.name,
        "frame_index": f.frame_index,
        "sample_index": f.sample_index,
        "src_monotonic_ns": f.capture_ns,
        "server_ns": server_ns,
        "time_s": round(float(f.time_s), 6),
        "fps": float(f.fps),
        "bpm": round(float(f.bpm), 3),
        "beat_phase": round(float(f.beat_phase), 4),
        "beat": bool(f.beat),
        "energy": round(float(f.energy), 4),
        "root": _r(f.root_position),
        "rotations": _r(f.rotations),
        "positions": _r(p.positions),
    }


def encode_json(frame: PoseFrame | PreparedPose, server_ns: int, skel: Skeleton | None = None) -> str:
    """A ``pose`` message as compact JSON text."""
    p = frame if isinstance(frame, PreparedPose) else prepare(frame, skel)
    return json.dumps(pose_dict(p, server_ns), separators=(",", ":"), allow_nan=False)


def skeleton_dict(skel: Skeleton) -> dict[str, Any]:
    """Joints, parents, Unity bone names and ``tpose``: per joint the rest -> T-pose correction ``C_j``.

    ``tpose`` is a (w, x, y, z) quaternion per joint (engine space, see :mod:`engine.skeleton.humanoid`): a client
    turns a pose's world rotations ``W_j`` into humanoid T-pose-relative ones as ``W_j C_j`` (what VMC sends).
    """
    return {
        "joints": list(skel.joint_names),
        "parents": list(skel.parents),
        "unity_bones": dict(skel.unity_bones),
        "tpose": np.round(R.matrix_to_quat(tpose_corrections(skel)), 6).tolist(),
    }


def hello_message(server_ns: int, performers: list[int] | None = None,
                  groups: list[list[int]] | None = None) -> str:
    """The first message a client receives: versions, the skeletons it may see, the server clock.

    ``groups``: performers that share one world frame (a couple: ``[[0, 1], [2, 3]]``), so a viewer keeps their
    placement; a performer in no group is a unit of its own.
    """
    return json.dumps(
        {
            "type": "hello",
            "v": JSON_VERSION,
            "server_ns": server_ns,
            "skeletons": {n: skeleton_dict(get_skeleton(n)) for n in skeleton_names()},
            "performers": performers or [],
            "groups": [sorted(int(p) for p in g) for g in groups or []],
            "formats": ["json", "binary"],
        },
        separators=(",", ":"),
    )


def pong_message(client_t: float, server_ns: int) -> str:
    """Reply to ``{"type": "ping", "t": ...}``: echoes the client's time and adds the server clock."""
    return json.dumps({"type": "pong", "v": JSON_VERSION, "t": client_t, "server_ns": server_ns})


def error_message(error: str, request: Any = None) -> str:
    return json.dumps({"type": "error", "v": JSON_VERSION, "error": error, "request": request})


def ack_message(kind: str, performer: int) -> str:
    return json.dumps({"type": "ack", "v": JSON_VERSION, "kind": kind, "performer": performer})


def decode_pose_json(text: str | bytes) -> dict[str, Any]:
    """Parse a ``pose`` message (clients and tests); arrays come back as numpy."""
    d: dict[str, Any] = json.loads(text)
    if d.get("type") != "pose" or d.get("v") != JSON_VERSION:
        raise ValueError(f"not a v{JSON_VERSION} pose message: type={d.get('type')!r} v={d.get('v')!r}")
    for k in ("root", "rotations", "positions"):
        d[k] = np.asarray(d[k], dtype=np.float32)
    return d

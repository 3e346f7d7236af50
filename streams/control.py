"""Validation of inbound control messages (JSON text) into engine.frames.ControlMessage."""

from __future__ import annotations

import json
import math
from typing import Any

from engine.frames import ControlMessage

#: Control kinds the engine understands, with what ``value`` must be.
CONTROL_KINDS: dict[str, str] = {
    "genre": "a non-empty string of at most 64 characters",
    "text": "a string of at most 500 characters (empty clears the prompt)",
    "keyframe": 'an object {"frames_ahead": int 1..600, "root": [x, y, z] (optional), '
    '"rotations": [[w, x, y, z], ...] (optional), "joints": "all" | "upper" | "lower" (optional)}',
    "intensity": "a number in [0, 1] (blend between the idle pose and the dance)",
    "energy": "a number in [0, 1] (how much the dancer moves; the idle blend on models without it)",
    "reset": "absent or null",
}
MAX_CONTROL_BYTES = 64 * 1024
#: Integers of more digits than this are refused while parsing (a 400-digit "performer" is no number we use).
MAX_INT_DIGITS = 20


class ControlError(ValueError):
    """A control message that cannot be accepted; the text says what is wrong."""


def _short(v: Any, n: int = 40) -> str:
    """``repr`` cut to ``n`` characters (error texts quote what the client sent, never all of it)."""
    try:
        r = repr(v)
    except (ValueError, RecursionError):  # huge ints, deep nesting
        r = f"<{type(v).__name__}>"
    return r if len(r) <= n else r[:n] + "..."


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def loads_bounded(raw: str | bytes) -> Any:
    """``json.loads`` refusing integers over :data:`MAX_INT_DIGITS` digits and deep nesting, as ValueError."""
    try:
        return json.loads(raw, parse_int=_parse_int)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _number(v: Any, what: str) -> float:
    try:
        ok = not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise ControlError(f"{what} must be a finite number, got {_short(v)}")
    return float(v)


def _validate_value(kind: str, v: Any) -> Any:
    if kind == "genre":
        if not isinstance(v, str) or not v.strip() or len(v) > 64 or not v.isprintable():
            raise ControlError(f"'genre' value must be {CONTROL_KINDS['genre']}")
        return v.strip()
    if kind == "text":
        if not isinstance(v, str) or len(v) > 500:
            raise ControlError(f"'text' value must be {CONTROL_KINDS['text']}")
        return v
    if kind in ("intensity", "energy"):
        x = _number(v, f"'{kind}' value")
        if not 0.0 <= x <= 1.0:
            raise ControlError(f"'{kind}' value must be in [0, 1], got {x}")
        return x
    if kind == "reset":
        if v is not None:
            raise ControlError("'reset' takes no value")
        return None
    # keyframe
    if not isinstance(v, dict):
        raise ControlError(f"'keyframe' value must be {CONTROL_KINDS['keyframe']}")
    unknown = set(v) - {"frames_ahead", "root", "rotations", "joints"}
    if unknown:
        raise ControlError(f"'keyframe' has unknown fields {_short(sorted(unknown), 80)}")
    fa = v.get("frames_ahead")
    if isinstance(fa, bool) or not isinstance(fa, int) or not 1 <= fa <= 600:
        raise ControlError(f"'keyframe.frames_ahead' must be an int in 1..600, got {_short(fa)}")
    out: dict[str, Any] = {"frames_ahead": fa}
    joints = v.get("joints", "all")
    if joints not in ("all", "upper", "lower"):
        raise ControlError(f"'keyframe.joints' must be \"all\", \"upper\" or \"lower\", got {_short(joints)}")
    if "root" in v:
        r = v["root"]
        if not isinstance(r, list) or len(r) != 3:
            raise ControlError("'keyframe.root' must be [x, y, z]")
        out["root"] = [_number(x, "'keyframe.root' entry") for x in r]
    if "rotations" in v:
        rots = v["rotations"]
        if not isinstance(rots, list) or not rots or len(rots) > 256:
            raise ControlError("'keyframe.rotations' must be a non-empty list of [w, x, y, z]")
        q = []
        for i, row in enumerate(rots):
            if not isinstance(row, list) or len(row) != 4:
                raise ControlError(f"'keyframe.rotations[{i}]' must be [w, x, y, z]")
            qq = [_number(x, f"'keyframe.rotations[{i}]' entry") for x in row]
            n = math.sqrt(sum(x * x for x in qq))
            if n < 1e-6:
                raise ControlError(f"'keyframe.rotations[{i}]' is a zero quaternion")
            q.append([x / n for x in qq])
        out["rotations"] = q
    if len(out) == 1:
        raise ControlError("'keyframe' needs 'root' and/or 'rotations'")
    out["joints"] = joints
    return out


def parse_control(
    msg: dict[str, Any] | str | bytes, sample_index: int, capture_ns: int, max_performer: int = 1023
) -> ControlMessage:
    """Validate ``{"type": "control", "kind": ..., "performer": n, "value": ...}``.

    Args:
        msg: the decoded JSON object, or the raw text.
        sample_index: newest audio sample index the server knows of (stamped on the message).
        capture_ns: monotonic ns at which the message arrived.
        max_performer: highest performer index accepted.
    """
    if isinstance(msg, str | bytes):
        if len(msg) > MAX_CONTROL_BYTES:
            raise ControlError(f"control message too large ({len(msg)} bytes > {MAX_CONTROL_BYTES})")
        try:
            msg = loads_bounded(msg)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ControlError(f"not valid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ControlError("a control message must be a JSON object")
    if msg.get("type") != "control":
        raise ControlError(f"expected type 'control', got {_short(msg.get('type'))}")
    kind = msg.get("kind")
    if not isinstance(kind, str) or kind not in CONTROL_KINDS:
        raise ControlError(f"unknown control kind {_short(kind)}; known: {', '.join(CONTROL_KINDS)}")
    performer = msg.get("performer", -1)
    if isinstance(performer, bool) or not isinstance(performer, int) or not -1 <= performer <= max_performer:
        raise ControlError(f"'performer' must be -1 (all) or 0..{max_performer}, got {_short(performer)}")
    value = _validate_value(kind, msg.get("value"))
    return ControlMessage(sample_index=sample_index, capture_ns=capture_ns, kind=kind, performer=performer, value=value)

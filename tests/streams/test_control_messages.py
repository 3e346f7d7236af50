"""Inbound control validation."""

from __future__ import annotations

import json

import pytest

from streams.control import ControlError, parse_control


def _p(msg: object) -> object:
    return parse_control(msg if isinstance(msg, str) else json.dumps(msg), 100, 200)


def test_valid_controls() -> None:
    c = parse_control({"type": "control", "kind": "genre", "performer": 1, "value": " salsa "}, 100, 200)
    assert (c.kind, c.performer, c.value, c.sample_index, c.capture_ns) == ("genre", 1, "salsa", 100, 200)
    assert parse_control('{"type":"control","kind":"intensity","value":0.5}', 0, 0).value == 0.5
    assert parse_control({"type": "control", "kind": "reset"}, 0, 0).value is None
    k = parse_control({"type": "control", "kind": "keyframe",
                       "value": {"frames_ahead": 30, "rotations": [[2, 0, 0, 0]], "root": [0, 1, 0]}}, 0, 0)
    assert k.value["rotations"] == [[1.0, 0.0, 0.0, 0.0]] and k.value["root"] == [0.0, 1.0, 0.0]
    assert k.value["joints"] == "all"
    up = parse_control({"type": "control", "kind": "keyframe",
                        "value": {"frames_ahead": 30, "root": [0, 1, 0], "joints": "upper"}}, 0, 0)
    assert up.value["joints"] == "upper"
    assert parse_control({"type": "control", "kind": "energy", "value": 0.25}, 0, 0).value == 0.25
    assert parse_control({"type": "control", "kind": "text", "value": ""}, 0, 0).value == ""


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        ("{not json", "not valid JSON"),
        ([1], "JSON object"),
        ({"type": "ctl"}, "expected type 'control'"),
        ({"type": "control", "kind": "dance"}, "unknown control kind 'dance'; known: genre"),
        ({"type": "control", "kind": "genre", "value": ""}, "'genre' value"),
        ({"type": "control", "kind": "genre", "value": "x" * 65}, "'genre' value"),
        ({"type": "control", "kind": "intensity", "value": 1.5}, r"in \[0, 1\]"),
        ({"type": "control", "kind": "energy", "value": "high"}, "finite number"),
        ({"type": "control", "kind": "intensity", "value": True}, "finite number"),
        ({"type": "control", "kind": "reset", "value": 1}, "takes no value"),
        ({"type": "control", "kind": "genre", "value": "a", "performer": -2}, "'performer'"),
        ({"type": "control", "kind": "keyframe", "value": {"frames_ahead": 0, "root": [0, 0, 0]}}, "frames_ahead"),
        ({"type": "control", "kind": "keyframe", "value": {"frames_ahead": 3}}, "needs 'root'"),
        ({"type": "control", "kind": "keyframe", "value": {"frames_ahead": 3, "root": [0, 0]}}, r"\[x, y, z\]"),
        ({"type": "control", "kind": "keyframe", "value": {"frames_ahead": 3, "rotations": [[0, 0, 0, 0]]}},
         "zero quaternion"),
        ({"type": "control", "kind": "keyframe", "value": {"frames_ahead": 3, "pose": 1}}, "unknown fields"),
        ({"type": "control", "kind": "keyframe", "value": {"frames_ahead": 3, "root": [0, 1, 0], "joints": "arms"}},
         "keyframe.joints"),
        ({"type": "control", "kind": "keyframe", "value": {"frames_ahead": 3, "root": [0, 1, 0], "joints": []}},
         "keyframe.joints"),
        ({"type": "control", "kind": "energy", "value": -0.1}, r"in \[0, 1\]"),
    ],
)
def test_invalid_controls(msg: object, message: str) -> None:
    with pytest.raises(ControlError, match=message):
        _p(msg)


def test_too_large() -> None:
    with pytest.raises(ControlError, match="too large"):
        parse_control("x" * 70000, 0, 0)

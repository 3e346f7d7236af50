"""Motion clips: resampling by slerp and loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.skeleton import rotations as R
from engine.skeleton.motion import Motion, load_motion
from engine.skeleton.skeleton import Skeleton

CHAIN = Skeleton("chain2", ("a", "b"), (-1, 0), np.array([[0, 0, 0], [1.0, 0, 0]]))


def test_resample_doubles_rate_with_slerp_midpoints() -> None:
    rot = np.zeros((3, 2, 4))
    rot[..., 0] = 1
    rot[:, 1] = R.axis_angle_to_quat(np.array([[0, 0, 0.0], [0, 0, 1.0], [0, 0, 2.0]]))
    m = Motion(CHAIN, 30.0, np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), rot)
    m60 = m.resample(60.0)
    assert m60.num_frames == 5 and m60.fps == 60.0
    np.testing.assert_allclose(m60.root_positions[:, 0], [0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(R.quat_to_axis_angle(m60.rotations[:, 1])[:, 2], [0, 0.5, 1, 1.5, 2], atol=1e-12)


def test_resample_down(cmu_take: Path) -> None:
    m = load_motion(cmu_take)
    m30 = m.resample(30.0)
    assert m30.num_frames == pytest.approx(m.num_frames / 4, abs=1)
    # the file says 0.008333 s per frame (120.005 fps), so frame 1 at 30 fps lands just past source frame 4
    np.testing.assert_allclose(m30.rotations[1], m.rotations[4], atol=1e-4)


def test_bad_shapes_and_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rotations must be"):
        Motion(CHAIN, 30.0, np.zeros((2, 3)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="unsupported motion file"):
        load_motion(tmp_path / "x.fbx")

"""Fixtures for client tests: scaled timeouts, shared data, the repository root."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from engine.frames import PoseFrame
from engine.skeleton.skeleton import CMU_SKELETON

#: Multiply every socket timeout by this (slow CI machines set GROOVECAST_TEST_TIMEOUT_SCALE > 1).
SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def timeout(seconds: float) -> float:
    return seconds * SCALE


@pytest.fixture(scope="session")
def cmu_take() -> Path:
    path = SHARED / "data" / "cmu_salsa" / "60_01_scaled.bvh"
    if not path.exists():
        pytest.skip(f"shared CMU data not found at {path} (expected <repo>/../shared/data/cmu_salsa)")
    return path


def rest_frame(root: tuple[float, float, float] = (0.1, 0.9, 0.2), **kw: object) -> PoseFrame:
    rot = np.zeros((CMU_SKELETON.num_joints, 4), np.float32)
    rot[:, 0] = 1.0
    args: dict[str, object] = dict(
        sample_index=7350, capture_ns=123_456_789_012, frame_index=10, performer=0, skeleton="cmu",
        root_position=np.array(root, np.float32), rotations=rot, time_s=1.0 / 3.0,
    )
    args.update(kw)
    return PoseFrame(**args)  # type: ignore[arg-type]

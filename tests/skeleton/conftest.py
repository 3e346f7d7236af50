"""Shared fixtures for skeleton tests: locating the shared CMU data."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CMU_DIR = SHARED / "data" / "cmu_salsa"


@pytest.fixture(scope="session")
def cmu_take() -> Path:
    path = CMU_DIR / "60_01_scaled.bvh"
    if not path.exists():
        pytest.skip(f"shared CMU data not found at {path} (expected <repo>/../shared/data/cmu_salsa)")
    return path

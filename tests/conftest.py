"""Fixtures shared by every test directory: the shared CMU data, sample poses, a small random model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.frames import PoseFrame
from engine.models.gpt import CrossCondGPT, GPTConfig, save_gpt
from engine.models.vqvae import VQVAE, VQVAEConfig, save_vqvae
from engine.skeleton.skeleton import CMU_SKELETON

#: ../shared beside the repository (read-only data; CI has it there too).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def cmu_take() -> Path:
    """One real CMU salsa take (BVH; captured at 60 fps, its header says 120) from the shared data."""
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


@pytest.fixture
def make_frame() -> Callable[..., PoseFrame]:
    """Factory of CMU rest-pose frames (root at (0.1, 0.9, 0.2), frame 10, sample 7350); kwargs override fields."""
    return rest_frame


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    """A model directory with small random weights (gpt.* + vqvae.*).

    For tests of the live path (scheduling, I/O, CLI), not of dance quality: the shipped model has its own tests.
    """
    torch.manual_seed(0)
    d = tmp_path / "model"
    save_gpt(CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, n_keyframe_slots=2)), d)
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16))
    vq.down_mean[1] = 0.95  # a standing height, so the idle pose is above the floor
    save_vqvae(vq, d)
    return d


@pytest.fixture
def guidance_scales(monkeypatch: pytest.MonkeyPatch) -> list[list[float]]:
    """The genre guidance scales :class:`DanceGenerator` samples with, one list of per-row scales per call of
    ``guide_logits`` (the real function still computes the logits)."""
    import engine.models.gpt_dancer as gd

    scales: list[list[float]] = []
    real = gd.guide_logits

    def spy(c: torch.Tensor, u: torch.Tensor, s: float | torch.Tensor) -> torch.Tensor:
        scales.append([float(s)] * len(c) if isinstance(s, float) else s.reshape(-1).tolist())
        return real(c, u, s)

    monkeypatch.setattr(gd, "guide_logits", spy)
    return scales


@pytest.fixture
def generators_made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every :class:`engine.models.gpt_dancer.DanceGenerator` built while the test runs, in order (the real
    constructor still runs; ``monkeypatch.undo()`` stops the recording)."""
    import engine.models.gpt_dancer as gd

    made: list[Any] = []
    real_init = gd.DanceGenerator.__init__

    def spy(self, *a, **kw):  # type: ignore[no-untyped-def]
        real_init(self, *a, **kw)
        made.append(self)

    monkeypatch.setattr(gd.DanceGenerator, "__init__", spy)
    return made

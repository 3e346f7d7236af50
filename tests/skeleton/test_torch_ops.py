"""Torch rotation ops and FK agree with the numpy reference and pass gradients."""

from __future__ import annotations

import numpy as np
import torch

from engine.skeleton import rotations as R
from engine.skeleton import torch_ops as T
from engine.skeleton.skeleton import CMU_SKELETON, forward_kinematics


def test_torch_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    q = R.quat_normalize(rng.normal(size=(64, 4)))
    q = np.concatenate([q, [[0.0, 1, 0, 0], [0.0, 0, 0.6, 0.8]]])
    m = R.quat_to_matrix(q)
    mt = torch.tensor(m)
    np.testing.assert_allclose(T.matrix_to_quat(mt).numpy(), R.matrix_to_quat(m), atol=1e-12)
    np.testing.assert_allclose(T.quat_to_matrix(torch.tensor(q)).numpy(), m, atol=1e-12)
    d6 = rng.normal(size=(64, 6))
    np.testing.assert_allclose(T.rot6d_to_matrix(torch.tensor(d6)).numpy(), R.rot6d_to_matrix(d6), atol=1e-12)
    np.testing.assert_allclose(T.matrix_to_rot6d(mt).numpy(), R.matrix_to_rot6d(m))


def test_torch_fk_matches_numpy_and_has_gradients() -> None:
    rng = np.random.default_rng(1)
    j = CMU_SKELETON.num_joints
    rot = R.quat_to_matrix(R.quat_normalize(rng.normal(size=(2, 5, j, 4))))  # [B, T, J, 3, 3]
    root = rng.normal(size=(2, 5, 3))
    ref = forward_kinematics(CMU_SKELETON, root, rot)
    d6 = torch.tensor(R.matrix_to_rot6d(rot), requires_grad=True)
    pos = T.forward_kinematics(CMU_SKELETON.parents, torch.tensor(CMU_SKELETON.offsets), torch.tensor(root),
                               T.rot6d_to_matrix(d6))
    np.testing.assert_allclose(pos.detach().numpy(), ref, atol=1e-10)
    pos.square().sum().backward()
    assert d6.grad is not None and torch.isfinite(d6.grad).all() and d6.grad.abs().sum() > 0

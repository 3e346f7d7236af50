"""Differentiable forward kinematics of model vectors in torch (beat guidance at run time, losses in training)."""

from __future__ import annotations

import torch

from engine.models.pose_repr import LOWER_JOINTS, model_fk_layout
from engine.skeleton import torch_ops


class VectorFK(torch.nn.Module):
    """Root-relative FK of model vectors: (upper [..., 72], lower [..., 61]) -> positions [..., 23, 3].

    The root sits at (0, height, 0): horizontal root motion is excluded so the loss measures the pose.
    """

    offsets: torch.Tensor  # [K, 3]

    def __init__(self) -> None:
        super().__init__()
        parents, offsets, names = model_fk_layout()
        self.parents = parents
        self.names = names
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.float32), persistent=False)

    def forward(self, upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
        nl = len(LOWER_JOINTS)
        lead = upper.shape[:-1]
        d6 = torch.cat([lower[..., 3 : 3 + 6 * nl].reshape(*lead, nl, 6), upper.reshape(*lead, -1, 6)], dim=-2)
        rot = torch_ops.rot6d_to_matrix(d6)  # [..., 21, 3, 3]
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device).expand(*lead, 2, 3, 3)
        rot = torch.cat([rot, eye], dim=-3)  # toe end sites carry no rotation
        root = torch.zeros(*lead, 3, dtype=rot.dtype, device=rot.device)
        root = torch.cat([root[..., :1], lower[..., 1:2], root[..., 2:]], dim=-1)
        return torch_ops.forward_kinematics(self.parents, self.offsets, root, rot)

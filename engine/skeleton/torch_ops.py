"""Differentiable torch versions of the rotation conversions and forward kinematics used in training."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """``[..., 6]`` (first two matrix columns) -> ``[..., 3, 3]`` by Gram-Schmidt (same as the numpy one)."""
    a1 = d6[..., :3]
    a2 = d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1, eps=1e-8)
    a2 = a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1
    b2 = torch.nn.functional.normalize(a2, dim=-1, eps=1e-8)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` -> ``[..., 6]``: first column, then second column."""
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (w, x, y, z) -> ``[..., 3, 3]``; the input is normalised first."""
    q = torch.nn.functional.normalize(q, dim=-1, eps=1e-8)
    w, x, y, z = q.unbind(-1)
    m = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return m.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` (w, x, y, z) with ``w >= 0``.

    Uses the best-conditioned of the four closed-form solutions per element (Shepperd), so it is
    stable for rotations near 180 degrees; gradients flow through the chosen branch.
    """
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    c0 = torch.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                      m[..., 1, 0] - m[..., 0, 1]], -1)
    c1 = torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                      m[..., 0, 2] + m[..., 2, 0]], -1)
    c2 = torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                      m[..., 1, 2] + m[..., 2, 1]], -1)
    c3 = torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                      1 - m00 - m11 + m22], -1)
    cands = torch.stack([c0, c1, c2, c3], dim=-2)  # [..., 4, 4]
    diag = torch.stack([1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = diag.argmax(dim=-1)  # [...]
    idx = best[..., None, None].expand(*best.shape, 1, 4)
    q = torch.gather(cands, -2, idx).squeeze(-2)
    q = torch.nn.functional.normalize(q, dim=-1, eps=1e-8)
    return torch.where(q[..., :1] < 0, -q, q)


def forward_kinematics(
    parents: Sequence[int],
    offsets: torch.Tensor,
    root_pos: torch.Tensor,
    local_rot: torch.Tensor,
) -> torch.Tensor:
    """World joint positions from root translation and joint-local rotation matrices.

    Same semantics as :func:`engine.skeleton.skeleton.forward_kinematics`: joint ``j`` sits at
    ``world_pos[parent] + world_rot[parent] @ offsets[j]`` and the root sits at ``root_pos`` (the
    root's own offset is not added).

    Args:
        parents: ``[J]`` parent index per joint, ``-1`` for the root; parents come before children.
        offsets: ``[J, 3]`` rest offsets from each joint's parent.
        root_pos: ``[..., 3]`` root positions.
        local_rot: ``[..., J, 3, 3]`` joint-local rotation matrices.

    Returns:
        ``[..., J, 3]`` world positions.
    """
    offsets = offsets.to(dtype=local_rot.dtype, device=local_rot.device)
    world_rot: list[torch.Tensor] = []
    world_pos: list[torch.Tensor] = []
    for j, p in enumerate(parents):
        if p < 0:
            world_rot.append(local_rot[..., j, :, :])
            world_pos.append(root_pos)
            continue
        if p >= j:
            raise ValueError(f"parents must come before children: joint {j} has parent {p}")
        world_pos.append(world_pos[p] + (world_rot[p] @ offsets[j].unsqueeze(-1)).squeeze(-1))
        world_rot.append(world_rot[p] @ local_rot[..., j, :, :])
    return torch.stack(world_pos, dim=-2)

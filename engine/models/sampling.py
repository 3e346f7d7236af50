"""Temperature / top-k sampling of token logits with an explicit random generator."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_tokens(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Draw one token per row.

    Args:
        logits: [B, V] unnormalised scores.
        temperature: > 0 scales the logits; 0 means greedy (argmax).
        top_k: keep only the k most likely tokens (None or >= V keeps all).
        generator: the random stream to draw from (seeded per performer or per run for reproducibility);
            it must live on the logits' device.

    Returns:
        [B] long token ids.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be [B, V], got shape {list(logits.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / temperature
    if top_k is not None and top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]  # [B, 1] the k-th largest score
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)

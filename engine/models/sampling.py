"""Temperature / top-k sampling of token logits with an explicit random generator."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
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
    return torch.multinomial(_probs(logits, temperature, top_k), 1, generator=generator).squeeze(1)


def _probs(logits: Tensor, temperature: float, top_k: int | None) -> Tensor:
    """[B, V] logits -> [B, V] probabilities at ``temperature`` (> 0) over the ``top_k`` most likely."""
    scores = logits.float() / temperature
    if top_k is not None and top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]  # [B, 1] the k-th largest score
        scores = scores.masked_fill(scores < kth, float("-inf"))
    return torch.softmax(scores, dim=-1)


def sample_rows(logits_up: Tensor, logits_down: Tensor, settings: Sequence[tuple[float, int | None]],
                generators: Sequence[torch.Generator]) -> tuple[np.ndarray, np.ndarray]:
    """One upper and one lower token per row, row ``i`` drawn from its own stream ``generators[i]`` (upper first)
    at its own ``settings[i]`` = (temperature, top_k), as :func:`sample_tokens` on that row alone would draw them.

    The probabilities are computed in one batched pass per setting; only the draws are per row, so one row's draws
    never depend on the others (a performer's dance does not change with who else dances or what they draw).

    Args:
        logits_up, logits_down: [B, V] scores.
        settings: B (temperature, top_k) pairs (temperature 0: greedy).
        generators: B random streams.

    Returns:
        upper and lower token ids, [B] int64 each.
    """
    b = logits_up.shape[0]
    ups = np.empty(b, dtype=np.int64)
    downs = np.empty(b, dtype=np.int64)
    groups: dict[tuple[float, int | None], list[int]] = {}
    for i, st in enumerate(settings):
        groups.setdefault(st, []).append(i)
    for (temp, top_k), idx in groups.items():
        if temp < 0 or (top_k is not None and top_k < 1):
            raise ValueError(f"temperature must be >= 0 and top_k >= 1 or None, got {temp}, {top_k}")
        sel = torch.tensor(idx) if len(idx) < b else None
        lu = logits_up if sel is None else logits_up[sel]
        ld = logits_down if sel is None else logits_down[sel]
        if temp == 0:
            ups[idx] = lu.argmax(dim=-1).numpy()
            downs[idx] = ld.argmax(dim=-1).numpy()
            continue
        pu, pd = _probs(lu, temp, top_k), _probs(ld, temp, top_k)
        for j, i in enumerate(idx):
            ups[i] = int(torch.multinomial(pu[j : j + 1], 1, generator=generators[i]))
            downs[i] = int(torch.multinomial(pd[j : j + 1], 1, generator=generators[i]))
    return ups, downs


def block_repeats(logits: Tensor, recent: Tensor, max_repeat: int | None) -> Tensor:
    """The repetition guard: forbid a token drawn for the last ``max_repeat`` steps in a row.

    A row whose last ``max_repeat`` tokens are all the same token ``t`` gets ``logits[t] = -inf`` for the next
    draw, so no token is drawn more than ``max_repeat`` times in a row (the model card's
    ``sampling.max_repeat``; the upper and lower body are guarded separately, one call each). It keeps
    the GPT from collapsing onto one repeated token, which the dancer shows as standing still.

    Args:
        logits: [B, V] scores of the next draw.
        recent: [B, R] each row's last R drawn tokens, most recent last; -1 where no token was drawn yet
            (the start of a dance), which never counts as a repeat.
        max_repeat: the longest allowed run (>= 1); None or 0: no guard (the logits are returned as they are).

    Returns:
        [B, V] the logits, a masked copy when a row is stuck.
    """
    if not max_repeat:
        return logits
    if max_repeat < 0:
        raise ValueError(f"max_repeat must be >= 1 or None, got {max_repeat}")
    if recent.dim() != 2 or recent.shape[0] != logits.shape[0]:
        raise ValueError(f"recent must be [B, R] with B = {logits.shape[0]}, got shape {list(recent.shape)}")
    if recent.shape[1] < max_repeat:
        raise ValueError(f"recent holds {recent.shape[1]} tokens per row; max_repeat {max_repeat} needs that many")
    run = recent[:, -max_repeat:]
    last = run[:, -1]
    stuck = (last >= 0) & (run == last[:, None]).all(dim=1)
    if not bool(stuck.any()):
        return logits
    rows = stuck.nonzero().squeeze(1)
    out = logits.clone()
    out[rows, last[rows].long()] = float("-inf")
    return out


def genre_guidance_scale(scale: float | None) -> float | None:
    """The genre-guidance scale to apply: None when guidance is off (``scale`` None or exactly 1.0).

    Raises ValueError for a scale that is not a finite number >= 0.
    """
    if scale is None:
        return None
    s = float(scale)
    if not math.isfinite(s) or s < 0:
        raise ValueError(f"genre guidance must be a finite number >= 0 (1: off), got {scale!r}")
    return None if s == 1.0 else s


def guide_logits(cond: Tensor, uncond: Tensor, scale: float | Tensor) -> Tensor:
    """Classifier-free guidance on the genre: ``uncond + scale * (cond - uncond)``.

    ``cond`` are the logits of a step with the performer's genre (and text), ``uncond`` those of the same step
    with genre "none" and no text (the GPT was trained with the genre dropped for a share of its windows, so
    it has that unconditional mode). ``scale`` 1 gives ``cond``; above 1 pushes the draw toward what the genre
    adds; 0 is the unconditional model.

    Args:
        cond: [B, V] conditional logits.
        uncond: [B, V] unconditional logits of the same rows.
        scale: the guidance scale s.
    """
    return uncond + scale * (cond - uncond)


def guide_text_logits(cond: Tensor, uncond: Tensor, genre_only: Tensor, genre_scale: float | Tensor,
                      text_scale: float | Tensor) -> Tensor:
    """Guidance with a separate text scale: ``uncond + s_g * (genre_only - uncond) + s_t * (cond - genre_only)``.

    ``genre_only`` are the logits of the same step with the genre (and energy) but no text; the GPT was
    trained with the text dropped for half its windows, so that mode exists. With ``s_t == s_g`` this is
    :func:`guide_logits` of ``cond`` and ``uncond``.

    Args:
        cond, uncond, genre_only: [B, V] logits of the three rows.
        genre_scale: s_g; text_scale: s_t.
    """
    return uncond + genre_scale * (genre_only - uncond) + text_scale * (cond - genre_only)

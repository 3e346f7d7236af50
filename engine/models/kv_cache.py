"""Fixed-size ring-buffer KV cache with keyframe prefix slots, allocated once."""

from __future__ import annotations

import torch
from torch import Tensor


def ring_slots(pos: Tensor, n_keyframe_slots: int, context: int) -> Tensor:
    """Cache slot that the token at absolute position ``pos`` is written to.

    Args:
        pos: [B] long absolute token positions.
        n_keyframe_slots: K, the number of prefix slots reserved for keyframes.
        context: ring length C in tokens.

    Returns:
        [B] long slot indices in ``[K, K + C)``.
    """
    return n_keyframe_slots + torch.remainder(pos, context)


def slot_mask(pos: Tensor, kv_mask: Tensor, context: int) -> Tensor:
    """Which cache slots the query at ``pos`` may attend to, once its own key is written.

    Ring slot ``j`` holds position ``p`` with ``p % C == j`` and ``pos - C < p <= pos``; it has been written
    iff ``j <= pos`` (positions start at 0 and advance by one), so ring validity follows from ``pos``
    alone and needs no state. Keyframe slots are valid where ``kv_mask`` says so.

    Args:
        pos: [B] long positions of the current tokens.
        kv_mask: [B, K] bool, the keyframe slots that are set.
        context: ring length C.

    Returns:
        [B, K + C] bool.
    """
    ring = torch.arange(context, device=pos.device).unsqueeze(0) <= pos.unsqueeze(1)  # [B, C]
    return torch.cat([kv_mask.to(torch.bool), ring], dim=1)


def history_mask(pos: Tensor, kv_mask: Tensor, context: int) -> Tensor:
    """Which cache slots hold history the query at ``pos`` may attend to, *before* its own write.

    The ring slot ``pos % C`` is excluded: it holds position ``pos - C`` (outside the window) or nothing;
    the current token's key is attended separately and then written there.

    Args:
        pos: [B] long positions of the current tokens.
        kv_mask: [B, K] bool, the keyframe slots that are set.
        context: ring length C.

    Returns:
        [B, K + C] bool.
    """
    j = torch.arange(context, device=pos.device).unsqueeze(0)  # [1, C]
    p = pos.unsqueeze(1)
    ring = (j <= p) & (j != torch.remainder(p, context))  # [B, C]
    return torch.cat([kv_mask.to(torch.bool), ring], dim=1)


def write_slot(cache: Tensor, slot: Tensor, new: Tensor, inplace: bool) -> Tensor:
    """Write one token's keys (or values) per batch row into ``cache`` at ``slot``.

    Args:
        cache: [B, H, S, D] one layer's cache.
        slot: [B] long slot index per row.
        new: [B, H, 1, D] the token's keys or values.
        inplace: mutate ``cache`` with an index_put (eager/CUDA graph path); otherwise return a new
            tensor built with ``where`` so the exported graph has no scatter and fixed shapes.

    Returns:
        [B, H, S, D] the updated cache (``cache`` itself when ``inplace``).
    """
    if inplace:
        rows = torch.arange(cache.shape[0], device=cache.device)
        cache[rows, :, slot, :] = new[:, :, 0, :].to(cache.dtype)  # cache[b, :, slot[b], :] = new[b, :, 0, :]
        return cache
    hit = torch.arange(cache.shape[2], device=cache.device).unsqueeze(0) == slot.unsqueeze(1)  # [B, S]
    return torch.where(hit[:, None, :, None], new.to(cache.dtype), cache)


class RingKVCache:
    """Keys and values of every layer for a batch of performers, in a ring of ``context`` slots.

    Layout: ``k``/``v`` are ``[n_layer, B, H, S, D]`` with ``S = K + C``; slots ``[0, K)`` hold keyframe
    keys (written by :meth:`set_keyframes`, never evicted) and slots ``[K, K + C)`` the ring, where the
    token at position ``p`` lives at ``K + p % C``. Buffers are allocated once; a step writes one slot per
    layer, so its cost is the same at minute 1 and minute 60.
    """

    def __init__(
        self,
        n_layer: int,
        batch: int,
        n_head: int,
        head_dim: int,
        context: int,
        n_keyframe_slots: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.context = context
        self.n_keyframe_slots = n_keyframe_slots
        shape = (n_layer, batch, n_head, n_keyframe_slots + context, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)  # [L, B, H, S, D]
        self.v = torch.zeros(shape, device=device, dtype=dtype)  # [L, B, H, S, D]
        self.kv_mask = torch.zeros(batch, n_keyframe_slots, device=device, dtype=torch.bool)  # [B, K]

    @property
    def slots(self) -> int:
        """S, total slots per layer (keyframe prefix + ring)."""
        return self.n_keyframe_slots + self.context

    def nbytes_per_performer(self) -> int:
        """Bytes of keys + values held for one performer."""
        return 2 * self.k[:, :1].numel() * self.k.element_size()

    def update(self, pos: Tensor, k: Tensor, v: Tensor, layer: int | None = None) -> None:
        """Write the keys/values of the tokens at ``pos`` (in place).

        Args:
            pos: [B] long positions.
            k: [B, H, 1, D] when ``layer`` is given, else [L, B, H, 1, D].
            v: like ``k``.
            layer: the layer to write, or None for all layers.
        """
        slot = ring_slots(pos, self.n_keyframe_slots, self.context)
        layers = range(self.k.shape[0]) if layer is None else [layer]
        for i in layers:
            write_slot(self.k[i], slot, k if layer is not None else k[i], inplace=True)
            write_slot(self.v[i], slot, v if layer is not None else v[i], inplace=True)

    def mask(self, pos: Tensor) -> Tensor:
        """[B, S] bool: the slots the query at ``pos`` attends to (after its own write)."""
        return slot_mask(pos, self.kv_mask, self.context)

    def set_keyframes(self, k: Tensor, v: Tensor, mask: Tensor, rows: Tensor | None = None) -> None:
        """Store keyframe keys/values in the prefix slots.

        Args:
            k: [L, b, H, K, D] keys from ``CrossCondGPT.encode_keyframes``.
            v: like ``k``.
            mask: [b, K] bool, which keyframes are set.
            rows: [b] long batch rows to write (default: all rows, b == B).
        """
        kf = self.n_keyframe_slots
        if rows is None:
            self.k[:, :, :, :kf] = k
            self.v[:, :, :, :kf] = v
            self.kv_mask[:] = mask
        else:
            self.k[:, rows, :, :kf] = k
            self.v[:, rows, :, :kf] = v
            self.kv_mask[rows] = mask

    def clear_keyframes(self, rows: Tensor | None = None) -> None:
        """Unset all keyframe slots (of ``rows`` or of every row)."""
        if rows is None:
            self.kv_mask.zero_()
        else:
            self.kv_mask[rows] = False

    def reset(self, rows: Tensor | None = None) -> None:
        """Forget everything (for ``rows`` or all); ring validity restarts with position 0."""
        if rows is None:
            self.k.zero_()
            self.v.zero_()
        else:
            self.k[:, rows] = 0
            self.v[:, rows] = 0
        self.clear_keyframes(rows)

"""The follower's decode backend (torch, CPU): the shared backend interface plus the leader's inputs per row.

The couple kind (:mod:`engine.models.couple`) sets each follower's leader tokens and placement features with
:meth:`FollowerBackend.set_leader` before the step, and reads the placement head's prediction after it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from engine.models.follower import PLACE_DIM, TARGET_DIM, FollowerGPT
from engine.models.kv_cache import ring_slots
from export.base import ArrayLike, DecodeBackend, PerformerState


class FollowerBackend(DecodeBackend):
    """Eager torch over a cache pool ``[L, capacity, H, S, D]`` of the follower GPT (no keyframes, no text)."""

    name = "torch-follower"

    def __init__(self, model: FollowerGPT, capacity: int) -> None:
        super().__init__(model, capacity)
        self.follower = model.eval()
        cfg = self.config
        shape = (cfg.n_layer, capacity, cfg.n_head, cfg.cache_slots, cfg.head_dim)
        self.k = torch.zeros(shape)  # [L, N, H, S, D]
        self.v = torch.zeros(shape)
        self.lead_up = np.full(capacity, cfg.bos_id, np.int64)  # per row: the leader's tokens of this step
        self.lead_down = np.full(capacity, cfg.bos_id, np.int64)
        self.place = np.zeros((capacity, PLACE_DIM), np.float32)  # per row: placement features of this step
        self.placement = np.zeros((capacity, TARGET_DIM), np.float32)  # per row: the head's last prediction

    @property
    def device(self) -> str:
        return "cpu"

    def set_leader(self, state: PerformerState, up: int, down: int, place: np.ndarray) -> None:
        """The leader's tokens and the placement features [PLACE_DIM] of ``state``'s next step."""
        self._check(state)
        self.lead_up[state.row] = int(up)
        self.lead_down[state.row] = int(down)
        self.place[state.row] = np.asarray(place, np.float32)

    def predicted_placement(self, state: PerformerState) -> np.ndarray:
        """[TARGET_DIM] the placement head's output of ``state``'s last step."""
        self._check(state)
        return self.placement[state.row].copy()

    def _run(self, rows: np.ndarray, contiguous: bool, up: np.ndarray, down: np.ndarray, cond: np.ndarray,
             genre: np.ndarray, text: np.ndarray, pos: np.ndarray, kv_mask: np.ndarray) -> tuple[Tensor, Tensor]:
        rows_t = torch.from_numpy(rows)
        pos_t = torch.from_numpy(pos)
        with torch.inference_mode():
            lu, ld, pl, k_new, v_new = self.follower.step_follow(
                torch.from_numpy(up), torch.from_numpy(down), torch.from_numpy(cond),
                torch.from_numpy(self.lead_up[rows]), torch.from_numpy(self.lead_down[rows]),
                torch.from_numpy(self.place[rows]), pos_t, self.k[:, rows_t], self.v[:, rows_t])
            slot = ring_slots(pos_t, self.config.n_keyframe_slots, self.config.context)
            self.k[:, rows_t, :, slot] = k_new.transpose(0, 1)
            self.v[:, rows_t, :, slot] = v_new.transpose(0, 1)
        self.placement[rows] = pl.numpy()
        return lu.float(), ld.float()

    def _copy_row(self, src: int, dst: int) -> None:
        self.k[:, dst] = self.k[:, src]
        self.v[:, dst] = self.v[:, src]
        self.lead_up[dst], self.lead_down[dst] = self.lead_up[src], self.lead_down[src]
        self.place[dst] = self.place[src]
        self.placement[dst] = self.placement[src]

    def _read_slots(self, rows: np.ndarray, slots: np.ndarray) -> tuple[Tensor, Tensor]:
        r, s = torch.from_numpy(rows), torch.from_numpy(slots)
        return self.k[:, r, :, s], self.v[:, r, :, s]  # advanced indices first: [B, L, H, D] (copies)

    def _write_slots(self, rows: np.ndarray, slots: np.ndarray, k: ArrayLike, v: ArrayLike) -> None:
        r, s = torch.from_numpy(rows), torch.from_numpy(slots)
        self.k[:, r, :, s] = torch.as_tensor(k).to(self.k)
        self.v[:, r, :, s] = torch.as_tensor(v).to(self.v)

    def _write_keyframes(self, row: int, k: Tensor, v: Tensor) -> None:
        raise ValueError("the follower has no keyframe slots")

    def _write_ring(self, row: int, slots: np.ndarray, k: Tensor, v: Tensor) -> None:
        raise ValueError("the follower has no genre or text controls to rewrite its history under")

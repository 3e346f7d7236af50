"""The one interface every decode backend offers: a Model loaded once, a State per performer, a batched step."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from engine.models.gpt import CrossCondGPT, GPTConfig, Keyframes

ArrayLike = np.ndarray | Tensor


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (library not importable, no GPU); the message says why."""


@dataclass(eq=False)
class PerformerState:
    """What one performer owns: its row of the backend's cache pool, its position and last tokens.

    Attributes:
        row: the performer's row in the backend's cache pool (the pool may move it when others leave).
        pos: absolute position of the next token.
        prev_up: upper token fed at the next step (BOS before the first).
        prev_down: lower token fed at the next step.
        keyframes: how many keyframe slots are set.
    """

    row: int
    pos: int = 0
    prev_up: int = 0
    prev_down: int = 0
    keyframes: int = 0
    active: bool = field(default=True, repr=False)

    def feed(self, up: int, down: int) -> None:
        """Set the tokens chosen from the last step's logits; they are the next step's input."""
        self.prev_up = int(up)
        self.prev_down = int(down)


@dataclass(frozen=True)
class StepResult:
    """Logits of one step, one row per performer in the order given to :meth:`DecodeBackend.step`.

    Attributes:
        logits_up: [B, V] float32 (CPU).
        logits_down: [B, V] float32 (CPU).
    """

    logits_up: Tensor
    logits_down: Tensor


class DecodeBackend(abc.ABC):
    """A Model loaded once; per-performer States over a fixed pool of cache rows; a batched step.

    The pool of ``capacity`` rows is allocated once. Active performers are kept in rows ``[0, n)``
    (releasing one moves the last into its row), so stepping all of them passes contiguous views of the
    cache with no copy; any other subset is gathered and scattered back, which costs one cache copy.
    Subclasses implement :meth:`_run` (the step over rows) and the cache storage hooks.
    """

    name: ClassVar[str] = "base"

    def __init__(self, model: CrossCondGPT, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.model = model.eval()
        self.config: GPTConfig = model.cfg
        self.capacity = capacity
        self._states: list[PerformerState] = []
        # [capacity, K] keyframe bits live on the host; every backend copies them in with the inputs.
        self._kv_mask = np.zeros((capacity, self.config.n_keyframe_slots), dtype=bool)
        self._arange = np.arange(capacity)
        self._zero_text = np.zeros((capacity, self.config.text_dim), np.float32)

    # -- device string for reports ----------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def device(self) -> str:
        """Human-readable device name (e.g. "cpu", "NVIDIA H100")."""

    # -- performers ------------------------------------------------------------------------------------

    @property
    def states(self) -> list[PerformerState]:
        """Active performers, in row order."""
        return list(self._states)

    def new_state(self) -> PerformerState:
        """Admit a performer: a fresh position 0 with BOS tokens, in the next free row."""
        if len(self._states) >= self.capacity:
            raise RuntimeError(f"backend {self.name} is full: capacity {self.capacity} performers")
        bos = self.config.bos_id
        st = PerformerState(row=len(self._states), prev_up=bos, prev_down=bos)
        self._kv_mask[st.row] = False
        self._states.append(st)
        return st

    def reset_state(self, state: PerformerState) -> None:
        """Start the performer over at position 0; old ring slots are masked out by position alone."""
        self._check(state)
        state.pos = 0
        state.prev_up = state.prev_down = self.config.bos_id
        state.keyframes = 0
        self._kv_mask[state.row] = False

    def release(self, state: PerformerState) -> None:
        """Remove a performer; the last active performer moves into its row (one cache row copy)."""
        self._check(state)
        last = self._states[-1]
        if last is not state:
            self._copy_row(last.row, state.row)
            self._kv_mask[state.row] = self._kv_mask[last.row]
            self._states[state.row] = last
            last.row = state.row
        self._states.pop()
        state.active = False

    def _check(self, state: PerformerState) -> None:
        if not state.active or state.row >= len(self._states) or self._states[state.row] is not state:
            raise ValueError(f"performer state {state} does not belong to this {self.name} backend")

    # -- keyframes ------------------------------------------------------------------------------------

    def set_keyframes(
        self,
        state: PerformerState,
        up: Sequence[int],
        down: Sequence[int],
        positions: Sequence[int],
        genre: int,
        text: ArrayLike | None = None,
    ) -> None:
        """Pin target tokens at absolute positions for one performer (masked attention, never evicted)."""
        self._check(state)
        cfg = self.config
        n = len(up)
        if not (len(down) == len(positions) == n):
            raise ValueError(f"keyframes need equal lengths, got up {n}, down {len(down)}, positions {len(positions)}")
        if n > cfg.n_keyframe_slots:
            raise ValueError(f"{n} keyframes given but the model has {cfg.n_keyframe_slots} slots")
        if n == 0:
            self.clear_keyframes(state)
            return
        kf = Keyframes(
            up=torch.tensor([list(up)], dtype=torch.long),
            down=torch.tensor([list(down)], dtype=torch.long),
            pos=torch.tensor([list(positions)], dtype=torch.long),
            mask=torch.ones(1, n, dtype=torch.bool),
        )
        t = None if text is None else torch.as_tensor(np.asarray(text, dtype=np.float32)).reshape(1, -1)
        with torch.no_grad():
            k, v = self.model.encode_keyframes(kf, torch.tensor([genre], dtype=torch.long), t)  # [L, 1, H, n, D]
        self._write_keyframes(state.row, k[:, 0], v[:, 0])
        self._kv_mask[state.row] = False
        self._kv_mask[state.row, :n] = True
        state.keyframes = n

    def clear_keyframes(self, state: PerformerState) -> None:
        self._check(state)
        self._kv_mask[state.row] = False
        state.keyframes = 0

    # -- history under new controls -----------------------------------------------------------------------

    def rewrite_history(
        self,
        states: Sequence[PerformerState],
        up_in: ArrayLike,
        down_in: ArrayLike,
        cond: ArrayLike,
        genre: Sequence[int],
        text: ArrayLike | None = None,
        keyframes: Sequence[tuple[int, int, int] | None] | None = None,
    ) -> None:
        """Recompute the cache entries of performers' last ``T`` positions under new global controls.

        A genre, text or energy control enters every position's input, so the cached history still carries
        the old one until it leaves the window (8.5 s for the shipped context); this rewrites it at once
        (:meth:`engine.models.gpt.CrossCondGPT.encode_history`: one batched forward over the windows of all
        the given performers).

        Args:
            states: the performers (each one's next position is ``state.pos``; its window is the ``T`` before it).
            up_in, down_in: [B, T] the tokens fed at those positions (BOS at position 0).
            cond: [B, T, cond_dim] their conditioning rows.
            genre: [B] genre ids; text: [B, text_dim] global control vectors, or None for none.
            keyframes: per performer, the set keyframe (position, up, down) its window attends to, or None.
        """
        cfg = self.config
        b = len(states)
        for st in states:
            self._check(st)
        if b == 0:
            return
        ups = _as_np(up_in, np.int64, (b, np.shape(up_in)[-1]), "up_in")
        t = ups.shape[1]
        if t == 0:
            return
        downs = _as_np(down_in, np.int64, (b, t), "down_in")
        if t > min(min(st.pos for st in states), cfg.context):
            raise ValueError(f"history of {t} tokens for performers at positions {[st.pos for st in states]} "
                             f"(context {cfg.context})")
        dev = next(self.model.parameters()).device
        kf = None
        if keyframes is not None and any(k is not None for k in keyframes):
            rows = [k if k is not None else (0, 0, 0) for k in keyframes]
            kf = Keyframes(up=torch.tensor([[r[1]] for r in rows], device=dev),
                           down=torch.tensor([[r[2]] for r in rows], device=dev),
                           pos=torch.tensor([[r[0]] for r in rows], device=dev),
                           mask=torch.tensor([[k is not None] for k in keyframes], device=dev))
        c = torch.as_tensor(_as_np(cond, np.float32, (b, t, cfg.cond_dim), "cond"), device=dev)
        tx = None if text is None else torch.as_tensor(_as_np(text, np.float32, (b, cfg.text_dim), "text"), device=dev)
        pos0 = np.array([st.pos - t for st in states], dtype=np.int64)
        with torch.no_grad():
            k, v = self.model.encode_history(torch.as_tensor(ups, device=dev), torch.as_tensor(downs, device=dev), c,
                                             torch.as_tensor(np.asarray(genre, np.int64), device=dev), tx,
                                             torch.as_tensor(pos0, device=dev), kf)  # [L, B, H, T, D]
        for i, st in enumerate(states):
            self._write_ring(st.row, self.slots_for(np.arange(pos0[i], st.pos)), k[:, i], v[:, i])

    # -- ring entries, for exact rewinds ---------------------------------------------------------------

    def ring_slots_of(self, states: Sequence[PerformerState]) -> np.ndarray:
        """[B] the ring slot each state's next step writes (its position's)."""
        return self.slots_for(np.fromiter((st.pos for st in states), dtype=np.int64, count=len(states)))

    def read_ring(self, states: Sequence[PerformerState], slots: np.ndarray) -> tuple[ArrayLike, ArrayLike]:
        """Copies of the keys and values in cache slot ``slots[i]`` of ``states[i]``'s row (a state may appear
        more than once): [B, L, H, D] each, in the backend's own array type (numpy, or torch on its device).
        What a step or a history rewrite is about to overwrite, kept so that a rewind can put it back
        (:meth:`write_ring`)."""
        rows = np.fromiter((st.row for st in states), dtype=np.int64, count=len(states))
        return self._read_slots(rows, np.asarray(slots, dtype=np.int64))

    def write_ring(self, states: Sequence[PerformerState], slots: np.ndarray, k: ArrayLike, v: ArrayLike) -> None:
        """Write [B, L, H, D] keys and values (from :meth:`read_ring`) back into cache slot ``slots[i]`` of
        ``states[i]``'s row."""
        rows = np.fromiter((st.row for st in states), dtype=np.int64, count=len(states))
        self._write_slots(rows, np.asarray(slots, dtype=np.int64), k, v)

    # -- the step -------------------------------------------------------------------------------------

    def step(
        self,
        states: Sequence[PerformerState],
        cond: ArrayLike,
        genre: ArrayLike,
        text: ArrayLike | None = None,
    ) -> StepResult:
        """Predict the next token of every given performer and advance them by one position.

        Args:
            states: performers of this backend (distinct).
            cond: [B, cond_dim] conditioning of each performer's next token.
            genre: [B] genre ids.
            text: [B, text_dim] sentence embeddings, or None (no text).

        Returns:
            Logits per performer; choose tokens (``engine.models.sampling``) and ``feed`` them to the states.
        """
        cfg = self.config
        b = len(states)
        if b == 0:
            raise ValueError("step needs at least one performer state")
        n_active = len(self._states)
        for st in states:
            if not st.active or st.row >= n_active or self._states[st.row] is not st:
                self._check(st)  # raises with the message
        rows = np.fromiter((st.row for st in states), dtype=np.int64, count=b)
        contiguous = bool(rows[0] == 0 and rows[-1] == b - 1 and (b < 3 or np.array_equal(rows, self._arange[:b])))
        if not contiguous and len(np.unique(rows)) != b:
            raise ValueError("the same performer appears twice in one step")
        cond_np = _as_np(cond, np.float32, (b, cfg.cond_dim), "cond")
        genre_np = _as_np(genre, np.int64, (b,), "genre")
        if genre_np.min() < 0 or genre_np.max() >= cfg.n_genres:
            raise ValueError(f"genre ids must be in [0, {cfg.n_genres}), got {genre_np.tolist()}")
        text_np = self._zero_text[:b] if text is None else _as_np(text, np.float32, (b, cfg.text_dim), "text")
        tok = np.fromiter((t for st in states for t in (st.prev_up, st.prev_down)), dtype=np.int64, count=2 * b)
        if tok.min() < 0 or tok.max() > cfg.vocab_size:
            raise ValueError(f"fed tokens must be in [0, {cfg.vocab_size}] (BOS = {cfg.vocab_size}): {tok.tolist()}")
        pos = np.fromiter((st.pos for st in states), dtype=np.int64, count=b)
        kv_mask = self._kv_mask[:b] if contiguous else self._kv_mask[rows]
        up, down = np.ascontiguousarray(tok[0::2]), np.ascontiguousarray(tok[1::2])
        lu, ld = self._run(rows, contiguous, up, down, cond_np, genre_np, text_np, pos, kv_mask)
        for st in states:
            st.pos += 1
        return StepResult(lu, ld)

    def slots_for(self, pos: np.ndarray) -> np.ndarray:
        """[B] ring slots the tokens at ``pos`` are written to."""
        return self.config.n_keyframe_slots + np.remainder(pos, self.config.context)

    # -- hooks ----------------------------------------------------------------------------------------

    @abc.abstractmethod
    def _run(
        self,
        rows: np.ndarray,
        contiguous: bool,
        up: np.ndarray,
        down: np.ndarray,
        cond: np.ndarray,
        genre: np.ndarray,
        text: np.ndarray,
        pos: np.ndarray,
        kv_mask: np.ndarray,
    ) -> tuple[Tensor, Tensor]:
        """Step rows ``rows`` (== range(B) when ``contiguous``); write their new keys/values; return logits."""

    @abc.abstractmethod
    def _copy_row(self, src: int, dst: int) -> None:
        """Copy one performer's cache row."""

    @abc.abstractmethod
    def _write_keyframes(self, row: int, k: Tensor, v: Tensor) -> None:
        """Write [L, H, n, D] keyframe keys/values into the prefix slots of ``row``."""

    @abc.abstractmethod
    def _write_ring(self, row: int, slots: np.ndarray, k: Tensor, v: Tensor) -> None:
        """Write [L, H, T, D] keys/values into the ring ``slots`` [T] of ``row``."""

    @abc.abstractmethod
    def _read_slots(self, rows: np.ndarray, slots: np.ndarray) -> tuple[ArrayLike, ArrayLike]:
        """Copies of the keys/values at (``rows[i]``, ``slots[i]``) of every layer: [B, L, H, D] each."""

    @abc.abstractmethod
    def _write_slots(self, rows: np.ndarray, slots: np.ndarray, k: ArrayLike, v: ArrayLike) -> None:
        """Write [B, L, H, D] keys/values at (``rows[i]``, ``slots[i]``) of every layer."""

    def cache_bytes_per_performer(self) -> int:
        """Bytes of keys + values one performer holds in this backend."""
        return self.config.cache_bytes_per_performer(4)


def _as_np(x: ArrayLike, dtype: type, shape: tuple[int, ...], name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(a.shape)}")
    return np.ascontiguousarray(a, dtype=dtype)

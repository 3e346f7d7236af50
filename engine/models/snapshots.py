"""A ring of per-row state snapshots, so a rewind continues exactly from a kept step.

A re-plan discards a performer's newest steps and makes them again (:meth:`MotionModel.rewind`). Every kind keeps
the state its step changes as it stood after each of the row's newest ``depth`` steps, keyed by step index, and
puts it back on a rewind: the GPT's decoder histories and per-performer state, the staging's, the retrieval's, a
couple's. This is the one class they all use. Values are named arrays (numpy or torch), one row per performer,
stored in buffers allocated on the first save and reused (nothing is allocated per step), or lists of Python
objects (one per row, kept by reference: pass objects nobody changes afterwards). Depth 0 keeps nothing and costs
nothing (``save`` returns at once): what a model runs with when nothing can rewind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

Array = np.ndarray | torch.Tensor
#: A saved value: [rows, ...] array, or one object per row (a list).
Value = np.ndarray | torch.Tensor | list[object]

#: Step key of an empty slot (step -1, "before the first step", is a valid key).
_EMPTY = np.iinfo(np.int64).min


def rewind_depth(steps: int) -> int:
    """The ring depth that keeps rewinds of up to ``steps`` steps exact (``steps + 1`` states; 0: none)."""
    return steps + 1 if steps > 0 else 0


class SnapshotRing:
    """Each row's named state after each of its newest ``depth`` steps (see the module doc).

    Args:
        depth: steps kept per row (0: none). A rewind of ``n`` steps needs the state after the step ``n + 1``
            back from the newest, so exact rewinds of up to ``depth - 1`` steps.
        rows: rows (performers) allocated; :meth:`resize` grows or shrinks them.
    """

    def __init__(self, depth: int = 0, rows: int = 0) -> None:
        if depth < 0 or rows < 0:
            raise ValueError(f"depth and rows must be >= 0, got {depth}, {rows}")
        self.depth = depth
        self.rows = rows
        self._store: dict[str, Array] = {}  # name -> [rows, depth, ...] (object arrays for lists of objects)
        self._at = np.full((rows, max(depth, 1)), _EMPTY, np.int64)  # the step each slot holds

    @classmethod
    def for_rewinds(cls, steps: int, rows: int = 0) -> SnapshotRing:
        """A ring that keeps rewinds of up to ``steps`` steps exact (:func:`rewind_depth`)."""
        return cls(rewind_depth(steps), rows)

    def keep_rewinds(self, steps: int) -> None:
        """Keep rewinds of up to ``steps`` steps exact from now on (0: keep nothing); drops what was kept."""
        self.set_depth(rewind_depth(steps))

    def set_depth(self, depth: int) -> None:
        """Keep ``depth`` steps per row from now on (every kept snapshot is dropped)."""
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self.depth = depth
        self._store.clear()
        self._at = np.full((self.rows, max(depth, 1)), _EMPTY, np.int64)

    def nbytes(self, names: Sequence[str] | None = None) -> int:
        """Bytes of the buffers allocated (of ``names`` only; object values count their references, not the
        objects)."""
        total = 0
        for name, s in self._store.items():
            if names is None or name in names:
                total += s.numel() * s.element_size() if isinstance(s, torch.Tensor) else s.nbytes
        return total

    def resize(self, rows: int) -> None:
        """Grow (new rows hold nothing) or shrink to ``rows`` rows."""
        grow = max(0, rows - self.rows)
        self._at = np.concatenate([self._at, np.full((grow, self._at.shape[1]), _EMPTY, np.int64)])[:rows]
        for name, s in self._store.items():
            if isinstance(s, torch.Tensor):
                self._store[name] = torch.cat([s, s.new_zeros((grow, *s.shape[1:]))])[:rows]
            else:
                self._store[name] = np.concatenate([s, np.zeros((grow, *s.shape[1:]), s.dtype)])[:rows]
        self.rows = rows

    def forget(self, row: int) -> None:
        """Drop the row's snapshots (its steps are numbered over, or it is a new performer)."""
        self._at[row] = _EMPTY

    def move_row(self, src: int, dst: int) -> None:
        """Row ``src``'s snapshots become row ``dst``'s (a performer moved to another row)."""
        self._at[dst] = self._at[src]
        for s in self._store.values():
            s[dst] = s[src]

    def save(self, rows: Sequence[int] | np.ndarray, steps: Sequence[int] | np.ndarray,
             values: Mapping[str, Value]) -> None:
        """Keep the state of ``rows`` after their step ``steps``: ``values`` maps names to [len(rows), ...] arrays
        or to lists of len(rows) objects (the same names on every save). A no-op at depth 0."""
        if not self.depth:
            return
        r = np.asarray(rows, dtype=np.int64)
        at = np.asarray(steps, dtype=np.int64)
        k = at % self.depth
        one = len(r) == 1  # the usual case (one performer stepped): plain indexing, cheaper than gathering
        for name, v in values.items():
            s = self._store.get(name)
            if s is None:
                s = self._store[name] = self._alloc(v)
            if isinstance(v, list):  # objects, by reference
                for i, obj in enumerate(v):
                    s[int(r[i]), int(k[i])] = obj  # type: ignore[assignment]  # an object array
            elif one:
                s[int(r[0]), int(k[0])] = v[0]
            elif isinstance(s, torch.Tensor):
                s[torch.from_numpy(r), torch.from_numpy(k)] = torch.as_tensor(v, dtype=s.dtype)
            else:
                s[r, k] = v
        self._at[r, k] = at

    def load(self, row: int, step: int) -> dict[str, Any] | None:
        """The row's state after its step ``step`` (views into the ring: copy what is kept; the objects saved), or
        None when that step is not kept (too old, never saved, forgotten, or depth 0)."""
        if not self.depth:
            return None
        k = step % self.depth
        if int(self._at[row, k]) != step:
            return None
        return {name: s[row, k] for name, s in self._store.items()}

    def _alloc(self, v: Value) -> Array:
        if isinstance(v, list):
            return np.empty((self.rows, self.depth), dtype=object)
        shape = (self.rows, self.depth, *v.shape[1:])
        if isinstance(v, torch.Tensor):
            with torch.inference_mode(False):  # a normal tensor, writable in and out of inference mode
                return torch.zeros(shape, dtype=v.dtype, device=v.device)
        return np.zeros(shape, dtype=np.asarray(v).dtype)

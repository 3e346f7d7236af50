"""torch backend: eager on CPU; on CUDA a static cache pool with the step captured in CUDA graphs."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import cast

import numpy as np
import torch
from torch import Tensor

from engine.models.gpt import CrossCondGPT
from engine.models.kv_cache import ring_slots
from export.base import ArrayLike, BackendUnavailable, DecodeBackend


def _buckets(capacity: int) -> list[int]:
    """Batch sizes captured as CUDA graphs: powers of two up to ``capacity`` (and capacity itself)."""
    out, b = [], 1
    while b < capacity:
        out.append(b)
        b *= 2
    return [*out, capacity]


class _Graph:
    """One captured step for a fixed batch size over pool rows ``[0, n)``; inputs are static buffers."""

    def __init__(self, backend: TorchBackend, n: int, pos: np.ndarray) -> None:
        cfg, dev = backend.config, backend.torch_device
        self.n = n
        self.up = torch.full((n,), cfg.bos_id, dtype=torch.long, device=dev)
        self.down = torch.full((n,), cfg.bos_id, dtype=torch.long, device=dev)
        self.cond = torch.zeros(n, cfg.cond_dim, device=dev)
        self.genre = torch.zeros(n, dtype=torch.long, device=dev)
        self.text = torch.zeros(n, cfg.text_dim, device=dev)
        # Each row's own next position: warm-up and capture then write only into slots that are harmless.
        self.pos = torch.from_numpy(pos).to(dev)
        self.kv_mask = torch.zeros(n, cfg.n_keyframe_slots, dtype=torch.bool, device=dev)
        self.graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream(device=dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        # Warm up on a side stream (allocator and kernels settle) before capture, as CUDA graphs require.
        # The pool rows [0, n) are written at slot K + pos % C: harmless, see TorchBackend._run_graph.
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):
                backend._forward_rows(self.up, self.down, self.cond, self.genre, self.text, self.pos, self.kv_mask, n)
        torch.cuda.current_stream(dev).wait_stream(side)
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.out = backend._forward_rows(
                self.up, self.down, self.cond, self.genre, self.text, self.pos, self.kv_mask, n
            )


class _StepDelta(torch.nn.Module):
    """``step_delta`` as a module's forward, for tracing."""

    def __init__(self, net: CrossCondGPT) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, up: Tensor, down: Tensor, cond: Tensor, genre: Tensor, text: Tensor, pos: Tensor, k: Tensor, v: Tensor,
        kv_mask: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.net.step_delta(up, down, cond, genre, text, pos, k, v, kv_mask)


class TorchBackend(DecodeBackend):
    """Runs :meth:`CrossCondGPT.step_delta` in torch over a cache pool ``[L, capacity, H, S, D]``.

    On CPU the step is traced and frozen with TorchScript by default (``jit``), which removes most of the
    per-op Python dispatch that dominates a small model's step.
    On CUDA with ``cuda_graph=True`` the step over rows ``[0, n)`` (the common case: all active performers)
    is captured once per batch bucket (powers of two) and replayed; the batch is padded up to the bucket.
    """

    name = "torch"

    def __init__(
        self,
        model: CrossCondGPT,
        capacity: int,
        device: str = "cpu",
        cuda_graph: bool | None = None,
        dtype: torch.dtype = torch.float32,
        jit: bool | None = None,
    ) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable("torch backend on CUDA needs a CUDA device; torch.cuda.is_available() is False")
        super().__init__(model, capacity)
        self.torch_device = torch.device(device)
        p = next(model.parameters())
        # The base keeps the caller's model (keyframe encoding on the host); the step runs on a device copy.
        self.net = model if (p.device, p.dtype) == (self.torch_device, dtype) else copy.deepcopy(model).to(
            self.torch_device, dtype
        )
        self.net.eval()
        cfg = self.config
        shape = (cfg.n_layer, capacity, cfg.n_head, cfg.cache_slots, cfg.head_dim)
        self.k = torch.zeros(shape, device=self.torch_device, dtype=dtype)  # [L, N, H, S, D]
        self.v = torch.zeros(shape, device=self.torch_device, dtype=dtype)  # [L, N, H, S, D]
        self.dtype = dtype
        self.cuda_graph = self.torch_device.type == "cuda" if cuda_graph is None else cuda_graph
        if self.cuda_graph and self.torch_device.type != "cuda":
            raise ValueError("cuda_graph=True needs device='cuda'")
        self._graphs: dict[int, _Graph] = {}
        self._buckets = _buckets(capacity)
        self.jit = self.torch_device.type == "cpu" if jit is None else jit
        self._step_fn = self._traced_step() if self.jit else self.net.step_delta

    def _traced_step(self) -> Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]]:
        """step_delta traced and frozen with TorchScript: the same ops with far less Python dispatch per step.

        The step has no data-dependent control flow and only batch-agnostic reshapes, so one trace serves
        every batch size (the parity tests run it at several).
        """
        from export.onnx_export import example_step_inputs

        cfg = self.config
        x = example_step_inputs(self.net, 2, torch.Generator().manual_seed(0))
        k = torch.stack(x[7 : 7 + cfg.n_layer]).to(self.torch_device, self.dtype)
        v = torch.stack(x[7 + cfg.n_layer :]).to(self.torch_device, self.dtype)
        args = (*[t.to(self.torch_device) for t in x[:6]], k, v, x[6].to(self.torch_device))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript deprecation notices
            traced = torch.jit.trace(_StepDelta(self.net), args, check_trace=False)
            return cast(Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]], torch.jit.freeze(traced.eval()))

    @property
    def device(self) -> str:
        if self.torch_device.type == "cuda":
            return torch.cuda.get_device_name(self.torch_device)
        return "cpu"

    def cache_bytes_per_performer(self) -> int:
        return self.config.cache_bytes_per_performer(self.k.element_size())

    def _forward_rows(
        self, up: Tensor, down: Tensor, cond: Tensor, genre: Tensor, text: Tensor, pos: Tensor, kv_mask: Tensor,
        n: int,
    ) -> tuple[Tensor, Tensor]:
        """Step pool rows ``[0, n)`` and write their new entries; returns logits [n, V] x2."""
        kc, vc = self.k[:, :n], self.v[:, :n]  # views, no copy
        lu, ld, k_new, v_new = self._step_fn(up, down, cond, genre, text, pos, kc, vc, kv_mask)
        self._write(torch.arange(n, device=pos.device), pos, k_new, v_new)
        return lu, ld

    def _write(self, rows: Tensor, pos: Tensor, k_new: Tensor, v_new: Tensor) -> None:
        """k_new/v_new: [L, B, H, D] written at (rows, slot(pos)) of every layer."""
        slot = ring_slots(pos, self.config.n_keyframe_slots, self.config.context)
        # k[:, rows[b], :, slot[b]] = k_new[:, b] for every b; the indexed dims come first: [B, L, H, D].
        self.k[:, rows, :, slot] = k_new.transpose(0, 1).to(self.dtype)
        self.v[:, rows, :, slot] = v_new.transpose(0, 1).to(self.dtype)

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
        dev = self.torch_device
        b = len(rows)
        if contiguous and self.cuda_graph:
            return self._run_graph(up, down, cond, genre, text, pos, kv_mask)
        t = {
            "up": torch.from_numpy(up).to(dev), "down": torch.from_numpy(down).to(dev),
            "cond": torch.from_numpy(cond).to(dev, self.dtype), "genre": torch.from_numpy(genre).to(dev),
            "text": torch.from_numpy(text).to(dev, self.dtype), "pos": torch.from_numpy(pos).to(dev),
            "kv_mask": torch.from_numpy(kv_mask).to(dev),
        }
        with torch.inference_mode():
            if contiguous:
                lu, ld = self._forward_rows(t["up"], t["down"], t["cond"], t["genre"], t["text"], t["pos"],
                                            t["kv_mask"], b)
            else:
                rows_t = torch.from_numpy(rows).to(dev)
                kc, vc = self.k[:, rows_t], self.v[:, rows_t]  # gathered copies [L, B, H, S, D]
                lu, ld, k_new, v_new = self._step_fn(
                    t["up"], t["down"], t["cond"], t["genre"], t["text"], t["pos"], kc, vc, t["kv_mask"]
                )
                self._write(rows_t, t["pos"], k_new, v_new)
        return lu.float().cpu(), ld.float().cpu()

    def _run_graph(
        self, up: np.ndarray, down: np.ndarray, cond: np.ndarray, genre: np.ndarray, text: np.ndarray,
        pos: np.ndarray, kv_mask: np.ndarray,
    ) -> tuple[Tensor, Tensor]:
        b = len(up)
        n = next(x for x in self._buckets if x >= b)
        # Padded rows [b, n) are free rows or performers not stepped now; they are fed their own next
        # position, so the graph writes garbage only into the slot that holds position pos - C: outside
        # their window and overwritten by their next real step before anything reads it.
        pad_pos = np.zeros(n, dtype=np.int64)
        pad_pos[:b] = pos
        for st in self._states[b:n]:
            pad_pos[st.row] = st.pos
        g = self._graphs.get(n)
        if g is None:
            g = self._graphs[n] = _Graph(self, n, pad_pos)
        g.up[:b].copy_(torch.from_numpy(up))
        g.down[:b].copy_(torch.from_numpy(down))
        g.cond[:b].copy_(torch.from_numpy(cond))
        g.genre[:b].copy_(torch.from_numpy(genre))
        g.text[:b].copy_(torch.from_numpy(text))
        g.pos.copy_(torch.from_numpy(pad_pos))
        g.kv_mask.zero_()
        g.kv_mask[:b].copy_(torch.from_numpy(kv_mask))
        g.graph.replay()
        lu, ld = g.out
        return lu[:b].float().cpu(), ld[:b].float().cpu()

    def _copy_row(self, src: int, dst: int) -> None:
        self.k[:, dst] = self.k[:, src]
        self.v[:, dst] = self.v[:, src]

    def _write_keyframes(self, row: int, k: Tensor, v: Tensor) -> None:
        n = k.shape[2]
        self.k[:, row, :, :n] = k.to(self.k)
        self.v[:, row, :, :n] = v.to(self.v)

    def _read_slots(self, rows: np.ndarray, slots: np.ndarray) -> tuple[Tensor, Tensor]:
        r = torch.from_numpy(rows).to(self.k.device)
        s = torch.from_numpy(slots).to(self.k.device)
        return self.k[:, r, :, s], self.v[:, r, :, s]  # advanced indices first: [B, L, H, D] (copies)

    def _write_slots(self, rows: np.ndarray, slots: np.ndarray, k: ArrayLike, v: ArrayLike) -> None:
        r = torch.from_numpy(rows).to(self.k.device)
        s = torch.from_numpy(slots).to(self.k.device)
        self.k[:, r, :, s] = torch.as_tensor(k).to(self.k)
        self.v[:, r, :, s] = torch.as_tensor(v).to(self.v)

    def _write_ring(self, row: int, slots: np.ndarray, k: Tensor, v: Tensor) -> None:
        idx = torch.as_tensor(slots, device=self.k.device)
        self.k[:, row, :, idx] = k.to(self.k)  # torch: the int is a basic index, the result is [L, H, T, D]
        self.v[:, row, :, idx] = v.to(self.v)

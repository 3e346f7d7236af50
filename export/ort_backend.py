"""onnxruntime backend: runs the exported step on CPU over a numpy cache pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from engine.models.gpt import CrossCondGPT
from export.base import ArrayLike, BackendUnavailable, DecodeBackend
from export.onnx_export import STEP_INPUTS, cache_input_names, model_hash, read_metadata


class OnnxRuntimeBackend(DecodeBackend):
    """Runs an exported step (``export_onnx``) with onnxruntime; the cache pool is per-layer numpy arrays.

    Layer ``l``'s rows ``[0, n)`` of the pool ``[L, capacity, H, S, D]`` (all active performers) are a
    contiguous view, which onnxruntime reads without a copy; only the new entries come back and are written in place.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: CrossCondGPT,
        capacity: int,
        onnx_path: str | Path,
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
            raise BackendUnavailable(f"onnxruntime is not importable: {exc}") from exc
        super().__init__(model, capacity)
        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX step file {path} does not exist (make one: groovecast export onnx)")
        meta = read_metadata(path)
        want = model_hash(model)
        if meta.get("groovecast.model_sha256") != want:
            raise ValueError(
                f"{path} was exported from model {meta.get('groovecast.model_sha256', 'unknown')[:12]}, "
                f"not from the loaded model {want[:12]}; re-export it"
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # Idle onnxruntime workers spin by default, stealing the CPU from the engine's other threads
        # (analysis, decode, playout, sockets) between steps: a live engine wants them asleep.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
        cfg = self.config
        self._cache_names = cache_input_names(cfg.n_layer)
        shape = (cfg.n_layer, capacity, cfg.n_head, cfg.cache_slots, cfg.head_dim)
        # One array per k/v; layer l's rows [0, n) are a contiguous view k[l, :n].
        self.k = np.zeros(shape, np.float32)  # [L, N, H, S, D]
        self.v = np.zeros(shape, np.float32)
        self.onnx_path = path

    @property
    def device(self) -> str:
        return "cpu" if self.session.get_providers()[0] == "CPUExecutionProvider" else self.session.get_providers()[0]

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
        b = len(rows)
        feed: dict[str, np.ndarray] = dict(zip(STEP_INPUTS, (up, down, cond, genre, text, pos, kv_mask), strict=True))
        n_layer = self.config.n_layer
        for i in range(n_layer):
            for j, buf in enumerate((self.k, self.v)):
                # A contiguous view of the pool, or a gathered copy.
                feed[self._cache_names[i + j * n_layer]] = buf[i, :b] if contiguous else buf[i, rows]
        lu, ld, k_new, v_new = self.session.run(None, feed)
        slot = self.slots_for(pos)
        # k[:, rows[b], :, slot[b]] = k_new[:, b] for every b; the indexed dims come first: [B, L, H, D].
        self.k[:, rows, :, slot] = k_new.transpose(1, 0, 2, 3)
        self.v[:, rows, :, slot] = v_new.transpose(1, 0, 2, 3)
        return torch.from_numpy(lu), torch.from_numpy(ld)

    def _copy_row(self, src: int, dst: int) -> None:
        self.k[:, dst] = self.k[:, src]
        self.v[:, dst] = self.v[:, src]

    def _write_keyframes(self, row: int, k: Tensor, v: Tensor) -> None:
        n = k.shape[2]
        self.k[:, row, :, :n] = k.float().numpy()
        self.v[:, row, :, :n] = v.float().numpy()

    def _read_slots(self, rows: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.k[:, rows, :, slots], self.v[:, rows, :, slots]  # advanced indices first: [B, L, H, D] (copies)

    def _write_slots(self, rows: np.ndarray, slots: np.ndarray, k: ArrayLike, v: ArrayLike) -> None:
        self.k[:, rows, :, slots] = np.asarray(k, np.float32)
        self.v[:, rows, :, slots] = np.asarray(v, np.float32)

    def _write_ring(self, row: int, slots: np.ndarray, k: Tensor, v: Tensor) -> None:
        self.k[:, row, :, slots] = k.float().cpu().numpy().transpose(2, 0, 1, 3)  # indexed dim first: [T, L, H, D]
        self.v[:, row, :, slots] = v.float().cpu().numpy().transpose(2, 0, 1, 3)

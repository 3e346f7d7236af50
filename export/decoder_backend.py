"""Backends for the streaming VQ-VAE decoder step, beside the GPT's: torch (eager) and onnxruntime (CPU).

A backend turns :class:`engine.models.vqvae_stream.DecoderStep` (a pure function of tokens and per-layer
histories) into a runner ``(idx_up, idx_down, histories) -> [up, down, *new histories]`` that
:class:`~engine.models.vqvae_stream.StreamingDecoder` calls; the decoder keeps the histories. onnxruntime
exports the step in memory at start-up (no file) and runs it with one intra-op thread by default.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from engine.models.vqvae import DOWN
from engine.models.vqvae_stream import DecoderRunner, DecoderStep

DECODE_ENGINES = ("torch", "onnxruntime")


def torch_runner(fn: DecoderStep) -> DecoderRunner:
    """The step run eagerly in torch."""
    return lambda u, d, inputs: list(fn(u, d, *inputs))


def onnxruntime_runner(fn: DecoderStep, threads: int = 1) -> DecoderRunner:
    """The step exported to ONNX in memory and run by an onnxruntime CPU session."""
    import onnxruntime as ort

    shapes = fn.hist_shapes()
    n = len(shapes)
    # A beat-conditioned decoder reads the token's per-frame beat features before the histories.
    beat_names = ["beat_up", "beat_down"] if fn.beat_dim else []
    names = ["idx_up", "idx_down", *beat_names, *(f"hist_{i}" for i in range(n))]
    outs = ["up", "down", *(f"new_hist_{i}" for i in range(n))]
    beat_args = [torch.zeros(2, DOWN, fn.beat_dim) for _ in beat_names]
    args = (torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), *beat_args,
            *(torch.zeros(2, k, c) for k, c in shapes))
    # The upper and lower decoders may run on different numbers of rows (StreamingDecoder.peek_state).
    n_up = fn.n_up
    up_side = {"idx_up", "up", "beat_up", *(f"hist_{i}" for i in range(n_up)),
               *(f"new_hist_{i}" for i in range(n_up))}
    axes = {k: {0: "batch_up" if k in up_side else "batch_down"} for k in names + outs}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(fn, args, cast(Any, buf), dynamo=False, opset_version=17, input_names=names,
                          output_names=outs, dynamic_axes=axes)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])

    def run(idx_up: Tensor, idx_down: Tensor, inputs: list[Tensor]) -> list[Tensor]:
        feed = {"idx_up": idx_up.numpy(), "idx_down": idx_down.numpy()}
        feed.update({nm: np.ascontiguousarray(b.numpy()) for nm, b in zip(beat_names, inputs, strict=False)})
        hists = inputs[len(beat_names):]
        feed.update({f"hist_{i}": np.ascontiguousarray(h.numpy()) for i, h in enumerate(hists)})
        return [torch.from_numpy(a) for a in session.run(None, feed)]

    return run


def create_decoder_runner(engine: str, threads: int = 1) -> Any:
    """A runner factory for :class:`~engine.models.vqvae_stream.StreamingDecoder` (``runner=``)."""
    if engine == "torch":
        return torch_runner
    if engine == "onnxruntime":
        return lambda fn: onnxruntime_runner(fn, threads)
    raise ValueError(f"unknown decode engine {engine!r}; choose {' or '.join(DECODE_ENGINES)}")

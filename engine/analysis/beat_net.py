"""A small causal TCN giving beat and downbeat activations per hop, run hop by hop in numpy.

Input per hop (256 samples at 22.05 kHz): the 40 log-mel bands of :class:`engine.analysis.onset.OnsetStrength`
and their positive difference. Network: a 1x1 input projection to ``channels``, then one residual block per
dilation (a causal kernel-3 dilated convolution, ReLU, a 1x1 convolution added back), then ReLU and a 1x1
output to two logits (beat, downbeat). The receptive field is ``1 + 2 * sum(dilations)`` hops (5.9 s with
the default dilations 1..128); nothing after the newest hop is used, so the latency is the onset
function's (``WIN // 2`` samples).

Streaming: every block keeps its input history in a ring allocated once; a hop gathers the three taps into
a preallocated buffer and does two matrix-vector products, so a hop allocates no array. Weights are
safetensors (written by ``groovecast train beats``) next to a JSON config.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.analysis.onset import N_MEL

#: The shipped weights: ``beat_tcn.safetensors`` + ``beat_tcn.json`` (config and training provenance).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "models" / "beats"
WEIGHTS_NAME = "beat_tcn.safetensors"
CONFIG_NAME = "beat_tcn.json"


@dataclass(frozen=True)
class BeatNetConfig:
    """Shape of the network (the weights file must match it)."""

    n_in: int = 2 * N_MEL
    channels: int = 32
    kernel: int = 3
    dilations: tuple[int, ...] = field(default=(1, 2, 4, 8, 16, 32, 64, 128))

    @property
    def receptive_field(self) -> int:
        return 1 + (self.kernel - 1) * sum(self.dilations)

    @classmethod
    def from_dict(cls, d: dict) -> BeatNetConfig:
        return cls(int(d["n_in"]), int(d["channels"]), int(d["kernel"]), tuple(int(x) for x in d["dilations"]))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d


def weight_shapes(cfg: BeatNetConfig) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of the weights file (the training code writes exactly these)."""
    c = cfg.channels
    shapes: dict[str, tuple[int, ...]] = {
        "in_mean": (cfg.n_in,), "in_scale": (cfg.n_in,),
        "in_proj.weight": (c, cfg.n_in), "in_proj.bias": (c,),
        "out.weight": (2, c), "out.bias": (2,),
    }
    for i in range(len(cfg.dilations)):
        shapes[f"blocks.{i}.conv.weight"] = (c, c, cfg.kernel)  # [out, in, tap]; tap K-1 is the newest hop
        shapes[f"blocks.{i}.conv.bias"] = (c,)
        shapes[f"blocks.{i}.mix.weight"] = (c, c)
        shapes[f"blocks.{i}.mix.bias"] = (c,)
    return shapes


class _Ring2D:
    """The newest ``capacity`` rows of width ``width``, every row written twice so taps index without wrapping."""

    def __init__(self, capacity: int, width: int) -> None:
        self.capacity = capacity
        self.buf = np.zeros((2 * capacity, width), dtype=np.float32)  # [2C, W]
        self.pos = 0

    def push(self, row: np.ndarray) -> None:
        self.buf[self.pos] = row
        self.buf[self.pos + self.capacity] = row
        self.pos = (self.pos + 1) % self.capacity

    def newest_index(self) -> int:
        return self.pos + self.capacity - 1


class BeatNet:
    """Immutable weights of the beat TCN (loaded once; many :class:`BeatActivation` states may share it)."""

    def __init__(self, cfg: BeatNetConfig, tensors: dict[str, np.ndarray]) -> None:
        expected = weight_shapes(cfg)
        for name, shape in expected.items():
            if name not in tensors:
                raise ValueError(f"beat model weights lack {name!r}")
            if tuple(tensors[name].shape) != shape:
                raise ValueError(f"beat model weight {name!r} has shape {tuple(tensors[name].shape)}, expected {shape}")
        self.cfg = cfg
        t = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items() if k in expected}
        self.in_mean, self.in_scale = t["in_mean"], t["in_scale"]
        self.in_w, self.in_b = t["in_proj.weight"], t["in_proj.bias"]
        self.out_w, self.out_b = t["out.weight"], t["out.bias"]
        # conv weight [out, in, tap] -> [out, tap * in] to match the gathered taps laid out oldest first
        self.conv_w = [np.ascontiguousarray(t[f"blocks.{i}.conv.weight"].transpose(0, 2, 1).reshape(cfg.channels, -1))
                       for i in range(len(cfg.dilations))]
        self.conv_b = [t[f"blocks.{i}.conv.bias"] for i in range(len(cfg.dilations))]
        self.mix_w = [t[f"blocks.{i}.mix.weight"] for i in range(len(cfg.dilations))]
        self.mix_b = [t[f"blocks.{i}.mix.bias"] for i in range(len(cfg.dilations))]
        self.meta: dict = {}

    @classmethod
    def load(cls, folder: Path | None = None) -> BeatNet:
        """Load ``beat_tcn.safetensors`` + ``beat_tcn.json`` from ``folder`` (default: the shipped model)."""
        from safetensors.numpy import load_file

        folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
        wpath, cpath = folder / WEIGHTS_NAME, folder / CONFIG_NAME
        if not wpath.is_file() or not cpath.is_file():
            raise FileNotFoundError(f"no beat model in {folder} (expected {WEIGHTS_NAME} and {CONFIG_NAME}); "
                                    "train one with `groovecast train beats`")
        meta = json.loads(cpath.read_text())
        net = cls(BeatNetConfig.from_dict(meta["model"]), load_file(str(wpath)))
        net.meta = meta
        return net


class BeatActivation:
    """Per-stream state of :class:`BeatNet`: ``process(log_mel, mel_flux)`` -> (beat, downbeat) in [0, 1].

    Latency: none beyond its input's (the newest hop is the last one used).
    """

    latency_samples = 0

    def __init__(self, net: BeatNet) -> None:
        self.net = net
        cfg = net.cfg
        c, k = cfg.channels, cfg.kernel
        self._x_in = np.zeros(cfg.n_in, dtype=np.float32)
        self._x = np.zeros(c, dtype=np.float32)  # [C] residual stream
        self._rings = [_Ring2D((k - 1) * d + 1, c) for d in cfg.dilations]
        self._lags = [np.asarray([(k - 1 - j) * d for j in range(k)], dtype=np.int64) for d in cfg.dilations]
        self._idx = np.zeros(k, dtype=np.int64)
        self._taps = np.zeros((k, c), dtype=np.float32)  # [K, C] gathered taps, oldest first
        self._taps_flat = self._taps.reshape(-1)  # a view: [K * C]
        self._h = np.zeros(c, dtype=np.float32)
        self._r = np.zeros(c, dtype=np.float32)
        self._logits = np.zeros(2, dtype=np.float32)
        self.beat = 0.0
        self.downbeat = 0.0

    def process(self, log_mel: np.ndarray, mel_flux: np.ndarray) -> tuple[float, float]:
        net = self.net
        n_mel = len(log_mel)
        xi = self._x_in
        xi[:n_mel] = log_mel
        xi[n_mel:] = mel_flux
        xi -= net.in_mean
        xi *= net.in_scale
        x = self._x
        np.dot(net.in_w, xi, out=x)
        x += net.in_b
        h, r = self._h, self._r
        for i, ring in enumerate(self._rings):
            ring.push(x)
            np.subtract(ring.newest_index(), self._lags[i], out=self._idx)
            np.take(ring.buf, self._idx, axis=0, out=self._taps)
            np.dot(net.conv_w[i], self._taps_flat, out=h)
            h += net.conv_b[i]
            np.maximum(h, 0.0, out=h)
            np.dot(net.mix_w[i], h, out=r)
            x += r
            x += net.mix_b[i]
        np.maximum(x, 0.0, out=h)
        np.dot(net.out_w, h, out=self._logits)
        self._logits += net.out_b
        self.beat = _sigmoid(float(self._logits[0]))
        self.downbeat = _sigmoid(float(self._logits[1]))
        return self.beat, self.downbeat


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, v))))

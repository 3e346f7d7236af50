"""Streaming state for the causal VQ-VAE decoder: one token in, its 4 frames out, at constant cost.

The decoder (:class:`engine.models.vqvae.Decoder`) is a stack of causal convolutions with nearest
up-sampling, so the frames of token ``t`` depend only on the last few inputs of every layer. This class
keeps, per performer, exactly those inputs (the layer's receptive history, allocated once) and runs each
layer on ``history + new samples`` only. The output equals the full decoder run over the whole token
sequence from its start (zero history = the decoder's own causal zero padding), which a test checks.

Like the GPT's KV cache, this is state kept beside the model, not part of it.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engine.models.vqvae import VQVAE, Decoder, _CausalConv, _Res


class _ConvState:
    """Input history of one convolution: ``[B, C_in, (k - 1) * dilation]``."""

    def __init__(self, conv: nn.Conv1d, batch: int, dtype: torch.dtype) -> None:
        self.conv = conv
        self.dilation = int(conv.dilation[0])
        self.keep = (int(conv.kernel_size[0]) - 1) * self.dilation
        self.hist = torch.zeros(batch, conv.in_channels, self.keep, dtype=dtype)

    def __call__(self, x: Tensor, rows: Tensor | None) -> Tensor:
        """x: [b, C_in, n] new inputs -> [b, C_out, n] new outputs; the history advances by n."""
        h = self.hist if rows is None else self.hist[rows]
        full = torch.cat([h, x], dim=2)  # [b, C_in, keep + n]
        y = F.conv1d(full, self.conv.weight, self.conv.bias, dilation=self.dilation)
        new_hist = full[:, :, full.shape[2] - self.keep :]
        if rows is None:
            self.hist.copy_(new_hist)
        else:
            self.hist[rows] = new_hist
        return y

    def reset(self, row: int) -> None:
        self.hist[row].zero_()


class _DecoderState:
    """Streaming state of one :class:`Decoder` (upper or lower body) for ``batch`` performers."""

    def __init__(self, dec: Decoder, batch: int, dtype: torch.dtype) -> None:
        self.dec = dec
        self.inp = _ConvState(dec.inp.conv, batch, dtype)
        res0 = [cast(_Res, r) for r in dec.res0]
        res1 = [cast(_Res, r) for r in dec.res1]
        self.res0 = [(_ConvState(r.c1, batch, dtype), r) for r in res0]
        self.up = [_ConvState(cast(_CausalConv, u).conv, batch, dtype) for u in dec.up]
        self.res1 = [(_ConvState(r.c1, batch, dtype), r) for r in res1]
        self.out = _ConvState(dec.out.conv, batch, dtype)
        for m in [*dec.res0, *dec.res1]:
            if not (isinstance(m, _Res) and m.causal):
                raise ValueError("streaming decode needs the causal decoder")
        for c in [dec.inp, *dec.up, dec.out]:
            if not isinstance(c, _CausalConv):
                raise ValueError("streaming decode needs causal convolutions")

    def _res(self, st: _ConvState, r: _Res, x: Tensor, rows: Tensor | None) -> Tensor:
        # Same as _Res.forward with causal padding: relu before the dilated conv, whose history holds relu(x).
        return x + r.c2(F.relu(st(F.relu(x), rows)))

    def step(self, z: Tensor, rows: Tensor | None) -> Tensor:
        """z: [b, C_code] one token's code vectors -> [b, 4, D] its frames (normalised units)."""
        h = F.relu(self.inp(z.unsqueeze(2), rows))  # [b, H, 1]
        for st, r in self.res0:
            h = self._res(st, r, h, rows)
        for up, (st, r) in zip(self.up, self.res1, strict=True):
            h = torch.repeat_interleave(h, 2, dim=2)
            h = self._res(st, r, F.relu(up(h, rows)), rows)
        return self.out(F.relu(h), rows).transpose(1, 2)

    def reset(self, row: int) -> None:
        for st in [self.inp, *(s for s, _ in self.res0), *self.up, *(s for s, _ in self.res1), self.out]:
            st.reset(row)


class StreamingDecoder:
    """Token-by-token VQ-VAE decoding for a batch of performers (rows), state allocated once.

    Args:
        vqvae: the trained model (eval mode; its weights are used, never copied).
        batch: number of performer rows.
    """

    def __init__(self, vqvae: VQVAE, batch: int) -> None:
        self.vqvae = vqvae
        dtype = vqvae.up_mean.dtype
        self.up = _DecoderState(vqvae.dec_up, batch, dtype)
        self.down = _DecoderState(vqvae.dec_down, batch, dtype)

    @torch.inference_mode()
    def step(self, idx_up: Tensor, idx_down: Tensor, rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Decode one token per row.

        Args:
            idx_up: [b] long upper token ids.
            idx_down: [b] long lower token ids.
            rows: [b] long performer rows (None: all rows in order, b == batch).

        Returns:
            Raw (de-normalised) vectors: upper [b, 4, Du], lower [b, 4, Dl] (contacts as probabilities).
        """
        vq = self.vqvae
        yu = self.up.step(vq.q_up.lookup(idx_up), rows)
        yd = self.down.step(vq.q_down.lookup(idx_down), rows)
        return vq._denorm(yu, yd)

    def reset(self, row: int) -> None:
        """Forget one performer's history (its next token decodes as the first of a sequence)."""
        self.up.reset(row)
        self.down.reset(row)

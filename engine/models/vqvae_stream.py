"""Streaming state for the causal VQ-VAE decoder: one token in, its 4 frames out, at constant cost.

The decoder (:class:`engine.models.vqvae.Decoder`) is a stack of causal convolutions with nearest
up-sampling, so the frames of token ``t`` depend only on the last few inputs of every layer. The
streaming decoder keeps, per performer, exactly those inputs (each layer's receptive history, allocated
once) and runs each layer on ``history + new samples`` only. The output equals the full decoder run over
the whole token sequence from its start (zero history = the decoder's own causal zero padding), which a
test checks.

:class:`DecoderStep` is that step as a pure function of (tokens, histories) -> (frames, new histories),
so it can run eagerly or through a backend of ``export/`` (``export.decoder_backend``: onnxruntime,
exported once at start-up, in memory, several times faster on a CPU for these small layers). Like the
GPT's KV cache, the histories are state kept beside the model, not part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engine.models.vqvae import DOWN, VQVAE, BeatInput, Decoder, _CausalConv, _Res


class _Conv(nn.Module):
    """A causal convolution over ``history + new`` inputs, as one matrix product of the stacked taps.

    Channels-last (``[b, time, C]``): the product is ``[b * n, k * C_in] @ [k * C_in, C_out]``, one matrix
    product for the whole batch (channels-first it would be ``b`` thin products of ``n`` <= 4 columns each).
    """

    w: Tensor
    b: Tensor

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.k = int(conv.kernel_size[0])
        self.dilation = int(conv.dilation[0])
        self.keep = (self.k - 1) * self.dilation
        self.c_in = conv.in_channels
        # [k * C_in, C_out], tap-major to match the stacked taps
        w = conv.weight.detach().permute(0, 2, 1).reshape(conv.out_channels, -1)
        self.register_buffer("w", w.t().contiguous())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.register_buffer("b", bias.clone())  # [C_out]

    def forward(self, hist: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """hist: [b, keep, C_in], x: [b, n, C_in] -> (y [b, n, C_out], new hist [b, keep, C_in])."""
        n = x.shape[1]
        full = torch.cat([hist, x], dim=1)  # [b, keep + n, C_in]
        taps = torch.cat([full[:, j * self.dilation : j * self.dilation + n] for j in range(self.k)], dim=2)
        return torch.matmul(taps, self.w) + self.b, full[:, n:]


class _Pointwise(nn.Module):
    """A 1x1 convolution as a matrix product."""

    w: Tensor
    b: Tensor

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.register_buffer("w", conv.weight.detach()[:, :, 0].t().contiguous())  # [C_in, C_out]
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.register_buffer("b", bias.clone())

    def forward(self, x: Tensor) -> Tensor:
        """x: [b, n, C_in] -> [b, n, C_out]."""
        return torch.matmul(x, self.w) + self.b


class _DecoderFn(nn.Module):
    """One decoder (upper or lower body) as a step over explicit histories, in :meth:`convs` order."""

    def __init__(self, dec: Decoder) -> None:
        super().__init__()
        for m in [*dec.res0, *dec.res1]:
            if not (isinstance(m, _Res) and m.causal):
                raise ValueError("streaming decode needs the causal decoder")
        for c in [dec.inp, *dec.up, dec.out]:
            if not isinstance(c, _CausalConv):
                raise ValueError("streaming decode needs causal convolutions")
        res0 = [cast(_Res, r) for r in dec.res0]
        res1 = [cast(_Res, r) for r in dec.res1]
        self.inp = _Conv(dec.inp.conv)
        self.res0 = nn.ModuleList([_Conv(r.c1) for r in res0])
        self.res0_pw = nn.ModuleList([_Pointwise(r.c2) for r in res0])
        self.up = nn.ModuleList([_Conv(cast(_CausalConv, u).conv) for u in dec.up])
        self.res1 = nn.ModuleList([_Conv(r.c1) for r in res1])
        self.res1_pw = nn.ModuleList([_Pointwise(r.c2) for r in res1])
        self.out = _Conv(dec.out.conv)
        self.beat: BeatInput | None = dec.beat  # applied channels-last, as the offline decoder does

    def convs(self) -> list[_Conv]:
        """The history-keeping convolutions, in the order their histories are passed."""
        order: list[Any] = [self.inp, *self.res0]
        for up, res in zip(self.up, self.res1, strict=True):
            order += [up, res]
        return [*order, self.out]

    def forward(self, z: Tensor, hists: list[Tensor], beat: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """z: [b, C_code] (, beat: [b, 4, F] the token's per-frame beat features) -> frames [b, 4, D] (normalised
        units) and the new histories; or n tokens in a row, z: [b, n, C_code] (, beat [b, 4n, F]) -> [b, 4n, D]
        (every layer runs over its history and the n tokens' inputs at once: the same as n steps)."""
        new: list[Tensor] = []
        it = iter(hists)

        def conv(layer: _Conv, x: Tensor) -> Tensor:
            y, h = layer(next(it), x)
            new.append(h)
            return y

        def res(layer: _Conv, pw: nn.Module, x: Tensor) -> Tensor:
            # _Res with causal padding: relu before the dilated conv, whose history therefore holds relu(x)
            return x + pw(F.relu(conv(layer, F.relu(x))))

        h = F.relu(conv(self.inp, z if z.dim() == 3 else z.unsqueeze(1)))  # [b, n, H]
        for layer, pw in zip(self.res0, self.res0_pw, strict=True):
            h = res(cast(_Conv, layer), pw, h)
        last = len(self.up) - 1
        for i, (up, layer, pw) in enumerate(zip(self.up, self.res1, self.res1_pw, strict=True)):
            h = torch.repeat_interleave(h, 2, dim=1)  # nearest up-sampling
            h = F.relu(conv(cast(_Conv, up), h))
            if i == last and self.beat is not None:
                assert beat is not None
                h = h + self.beat(beat)  # at frame rate, as Decoder.forward
            h = res(cast(_Conv, layer), pw, h)
        return conv(self.out, F.relu(h)), new


class DecoderStep(nn.Module):
    """Both decoders' one-token step: ``(idx_up [b], idx_down [b], *inputs) -> (up, down, *new_hists)``, the inputs
    being the histories, preceded for a beat-conditioned decoder (``beat_dim > 0``) by the token's per-frame beat
    features of the upper and the lower rows, ``beat_up [b, 4, F]``, ``beat_down [b, 4, F]``.

    Outputs are raw (de-normalised) pose vectors, upper ``[b, 4, Du]`` and lower ``[b, 4, Dl]`` with foot
    contacts as probabilities, exactly as :meth:`VQVAE.decode`.
    """

    code_up: Tensor
    code_down: Tensor
    up_mean: Tensor
    up_std: Tensor
    down_mean: Tensor
    down_std: Tensor
    contact_mask: Tensor

    def __init__(self, vqvae: VQVAE) -> None:
        super().__init__()
        self.dec_up = _DecoderFn(vqvae.dec_up)
        self.dec_down = _DecoderFn(vqvae.dec_down)
        self.register_buffer("code_up", vqvae.q_up.lookup(torch.arange(vqvae.cfg.n_codes)).detach().clone())
        self.register_buffer("code_down", vqvae.q_down.lookup(torch.arange(vqvae.cfg.n_codes)).detach().clone())
        for name in ("up_mean", "up_std", "down_mean", "down_std", "contact_mask"):
            self.register_buffer(name, getattr(vqvae, name).detach().clone())
        self.n_up = len(self.dec_up.convs())
        #: Channels of the per-frame beat input (0: none; then no beat inputs precede the histories).
        self.beat_dim = vqvae.cfg.beat_dim

    def hist_shapes(self) -> list[tuple[int, int]]:
        """(length, channels) of every history (channels-last), upper decoder first."""
        return [(c.keep, c.c_in) for c in [*self.dec_up.convs(), *self.dec_down.convs()]]

    def forward(self, idx_up: Tensor, idx_down: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
        beat_up = beat_down = None
        hists = inputs
        if self.beat_dim:
            beat_up, beat_down, hists = inputs[0], inputs[1], inputs[2:]
        yu, hu = self.dec_up(F.embedding(idx_up, self.code_up), list(hists[: self.n_up]), beat_up)
        yd, hd = self.dec_down(F.embedding(idx_down, self.code_down), list(hists[self.n_up :]), beat_down)
        up = yu * self.up_std + self.up_mean
        down = torch.where(self.contact_mask, torch.sigmoid(yd), yd * self.down_std + self.down_mean)
        return (up, down, *hu, *hd)


#: Runs the decoder step: ``(idx_up, idx_down, inputs) -> [up, down, *new histories]``, ``inputs`` being
#: :class:`DecoderStep`'s (the beat features of a beat-conditioned decoder, then the histories). The default runs
#: it eagerly in torch; ``export.decoder_backend`` provides onnxruntime.
DecoderRunner = Callable[[Tensor, Tensor, list[Tensor]], list[Tensor]]


class StreamingDecoder:
    """Token-by-token VQ-VAE decoding for a batch of performers (rows); histories allocated once.

    Args:
        vqvae: the trained model.
        batch: number of performer rows.
        runner: what runs the step (None: torch, eager). Backends live in ``export/``
            (``export.decoder_backend.create_decoder_runner``), beside the GPT's.
    """

    def __init__(self, vqvae: VQVAE, batch: int, runner: Callable[[DecoderStep], DecoderRunner] | None = None) -> None:
        self.fn = DecoderStep(vqvae.eval()).eval()
        self.hists = [torch.zeros(batch, k, c) for k, c in self.fn.hist_shapes()]  # each [batch, keep, C]
        self.batch = batch
        self._run_step: DecoderRunner = (lambda u, d, h: list(self.fn(u, d, *h))) if runner is None else runner(self.fn)

    @property
    def beat_dim(self) -> int:
        """Channels of the per-frame beat features the decoder reads (0: none; the ``beat`` arguments are ignored)."""
        return self.fn.beat_dim

    @torch.inference_mode()
    def step(self, idx_up: Tensor, idx_down: Tensor, rows: Tensor | None = None,
             beat: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Decode one token per row.

        Args:
            idx_up: [b] long upper token ids.
            idx_down: [b] long lower token ids.
            rows: [b] long performer rows (None: rows 0 .. b-1 in order).
            beat: [b, 4, beat_dim] each row's per-frame beat features for this token
                (``conditioning.decoder_beat_features`` of its conditioning row); needed when :attr:`beat_dim`
                > 0, ignored otherwise.

        Returns:
            Raw (de-normalised) vectors: upper [b, 4, Du], lower [b, 4, Dl] (contacts as probabilities).
        """
        b = len(idx_up)
        res = self._run(idx_up, idx_down, rows, None, beat, beat)
        for h, new in zip(self.hists, res[2:], strict=True):
            if rows is None:
                h[:b] = new
            else:
                h[rows] = new
        return res[0], res[1]

    @torch.inference_mode()
    def peek(self, idx_up: Tensor, idx_down: Tensor, rows: Tensor, beat: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Decode candidate tokens after the given rows' histories without committing them.

        ``rows`` may repeat a row (several candidates for one performer); the histories are left as they
        were. Returns what :meth:`step` would return for each (token, row) pair (``beat``: as there, per entry).
        """
        res = self._run(idx_up, idx_down, rows, None, beat, beat)
        return res[0], res[1]

    @torch.inference_mode()
    def peek_state(self, idx_up: Tensor, idx_down: Tensor, rows_up: Tensor, rows_down: Tensor,
                   beat_up: Tensor | None = None, beat_down: Tensor | None = None) -> list[Tensor]:
        """:meth:`peek` with the new histories too, the upper and lower decoders on their own rows:
        ``[up [bu, 4, Du], down [bd, 4, Dl], *new upper histories (bu), *new lower histories (bd)]``, entry ``i``
        of the upper part decoding ``idx_up[i]`` after row ``rows_up[i]`` (with beat features ``beat_up[i]``
        for a beat-conditioned decoder), likewise the lower part. The two decoders are independent networks, so
        candidates with few distinct upper tokens decode only those. :meth:`commit_peeked` then commits some
        entries without decoding them again."""
        return self._run(idx_up, idx_down, rows_up, rows_down, beat_up, beat_down)

    @torch.inference_mode()
    def commit_peeked(self, peeked: list[Tensor], rows: Tensor, from_up: Tensor, from_down: Tensor) -> None:
        """Commit :meth:`peek_state` entries as the tokens of ``rows``: row ``rows[i]`` takes the upper decoder's
        state of upper entry ``from_up[i]`` and the lower decoder's of lower entry ``from_down[i]``. The result
        equals :meth:`step` on those tokens: the same computation, done once (equal to float
        rounding: the matrix kernels may vary with the batch size)."""
        n_up = self.fn.n_up
        for j, (h, new) in enumerate(zip(self.hists, peeked[2:], strict=True)):
            h[rows] = new[from_up if j < n_up else from_down]

    def _run(self, idx_up: Tensor, idx_down: Tensor, rows: Tensor | None,
             rows_down: Tensor | None = None, beat_up: Tensor | None = None,
             beat_down: Tensor | None = None) -> list[Tensor]:
        """(up, down, *new histories) for one token per row; the stored histories are not touched.
        ``rows_down``: the lower decoder's rows when they differ from ``rows`` (then ``idx_down`` matches it)."""
        b = len(idx_up)
        beats: list[Tensor] = []
        if self.fn.beat_dim:
            want = (self.fn.beat_dim,)
            for name, bt, n in (("beat_up", beat_up, b), ("beat_down", beat_down, len(idx_down))):
                if bt is None or tuple(bt.shape) != (n, DOWN, *want):
                    got = None if bt is None else tuple(bt.shape)
                    raise ValueError(f"this decoder reads per-frame beat features: {name} must be "
                                     f"[{n}, {DOWN}, {want[0]}], got {got}")
                beats.append(bt.float())
        if rows_down is not None:
            assert rows is not None
            n_up = self.fn.n_up
            hists = [h[rows] for h in self.hists[:n_up]] + [h[rows_down] for h in self.hists[n_up:]]
        else:
            hists = [h[:b] for h in self.hists] if rows is None else [h[rows] for h in self.hists]
        return self._run_step(idx_up, idx_down, beats + hists)

    def reset(self, row: int) -> None:
        """Forget one performer's history (its next token decodes as the first of a sequence)."""
        for h in self.hists:
            h[row].zero_()

    @torch.inference_mode()
    def feed(self, row: int, idx_up: Tensor, idx_down: Tensor, beat: Tensor | None = None) -> None:
        """Commit n tokens ``idx_up``, ``idx_down`` [n] to one row's histories at once, their frames unused (as n
        :meth:`step` calls, in one pass of every layer, eagerly in torch whatever the runner): a genre switch's
        primer. ``beat`` [n, 4, beat_dim] their per-frame beat features (needed when :attr:`beat_dim` > 0)."""
        n = len(idx_up)
        if n == 0:
            return
        bt = self._sequence_beat(beat, n)
        n_up = self.fn.n_up
        hists = [h[row : row + 1] for h in self.hists]
        _, hu = self.fn.dec_up(F.embedding(idx_up, self.fn.code_up)[None], hists[:n_up], bt)
        _, hd = self.fn.dec_down(F.embedding(idx_down, self.fn.code_down)[None], hists[n_up:], bt)
        for h, new in zip(self.hists, [*hu, *hd], strict=True):
            h[row] = new[0]

    @torch.inference_mode()
    def decode_fresh(self, idx_up: Tensor, idx_down: Tensor, beat: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Decode ``b`` token sequences ``idx_up``, ``idx_down`` [b, n] each from an empty history (as :meth:`feed`
        after :meth:`reset`, eagerly in torch), no row's history touched: raw vectors upper [b, 4n, Du] and lower
        [b, 4n, Dl], as :meth:`step` returns them. ``beat`` [n, 4, beat_dim]: the per-frame beat features the
        sequences share (needed when :attr:`beat_dim` > 0). A genre switch's primer candidates (``gpt_dancer``)."""
        b, n = idx_up.shape
        bt = self._sequence_beat(beat, n)
        beats = [] if bt is None else [bt.expand(b, -1, -1)] * 2  # the upper and the lower decoder's
        zeros = [torch.zeros(b, k, c) for k, c in self.fn.hist_shapes()]
        out = self.fn(idx_up, idx_down, *beats, *zeros)  # the step function, over n tokens at once
        return out[0], out[1]

    def _sequence_beat(self, beat: Tensor | None, n: int) -> Tensor | None:
        """The per-frame beat features ``beat`` [n, 4, beat_dim] of an n-token sequence as the decoders read them,
        [1, 4n, beat_dim] (None for a decoder without beat input); a clear error when they are missing or misshaped."""
        if not self.fn.beat_dim:
            return None
        if beat is None or tuple(beat.shape) != (n, DOWN, self.fn.beat_dim):
            got = None if beat is None else tuple(beat.shape)
            raise ValueError(f"this decoder reads per-frame beat features: beat must be "
                             f"[{n}, {DOWN}, {self.fn.beat_dim}], got {got}")
        return beat.float().reshape(1, n * DOWN, -1)

    def state(self, rows: Tensor) -> dict[str, Tensor]:
        """The histories of ``rows`` [b] as one tensor ``{"hists": [b, sum(keep * C)]}``, to snapshot
        (:class:`engine.models.snapshots.SnapshotRing`; one tensor costs one copy into the ring, not one per layer):
        :meth:`set_state` puts a row's back, so a rewind decodes on exactly as if the discarded tokens never were."""
        if len(rows) == 1:  # one row: views, copied once by the concatenation
            r = int(rows[0])
            return {"hists": torch.cat([h[r].reshape(1, -1) for h in self.hists], dim=1)}
        return {"hists": torch.cat([h[rows].flatten(1) for h in self.hists], dim=1)}

    @torch.inference_mode()
    def set_state(self, row: int, values: Mapping[str, Any]) -> None:
        """Put ``row``'s histories back to a :meth:`state` of it (``values["hists"]``: [sum(keep * C)])."""
        flat = torch.as_tensor(values["hists"])
        at = 0
        for h in self.hists:
            n = h[row].numel()
            h[row] = flat[at : at + n].view(h.shape[1:])
            at += n

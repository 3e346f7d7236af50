"""Cross-conditional GPT over upper/lower body tokens with rotary positions and a sliding window."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engine.models.kv_cache import RingKVCache, history_mask, ring_slots, write_slot

#: Files of a GPT model directory.
GPT_WEIGHTS = "gpt.safetensors"
GPT_CONFIG = "gpt.json"


@dataclass(frozen=True)
class GPTConfig:
    """Size and conditioning of a :class:`CrossCondGPT`.

    Attributes:
        vocab_size: codebook size V per body half; token id V is BOS, so embeddings have V + 1 rows.
        n_layer: transformer blocks.
        n_head: attention heads; ``n_embd // n_head`` must be even (rotary pairs).
        n_embd: width.
        cond_dim: per-token conditioning vector (music features of the frames before the token +
            predicted beat phase of the token's own frames).
        n_genres: genre embedding rows (including a "none" genre).
        text_dim: sentence-embedding width (all-MiniLM-L6-v2: 384); a zero vector means "no text".
        context: sliding-window length in tokens = ring cache length.
        n_keyframe_slots: K prefix slots for keyframe tokens (never evicted).
        dropout: dropout probability during training.
        rope_base: rotary frequency base.
        text_layers: the text also enters every block after the first (a bias per block from
            ``text_layer_proj``, no bias term: zero for no text), not only the input; False: input only.
    """

    vocab_size: int = 512
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 256
    cond_dim: int = 168
    n_genres: int = 13
    text_dim: int = 384
    context: int = 60
    n_keyframe_slots: int = 8
    dropout: float = 0.1
    rope_base: float = 10000.0
    text_layers: bool = False

    def __post_init__(self) -> None:
        # Types and sizes first, before anything is allocated (a config file is input like any other).
        for name, hi in _INT_LIMITS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"GPTConfig.{name} must be an integer, got {v!r}")
            if v > hi:
                raise ValueError(f"GPTConfig.{name} = {v} is beyond the sanity limit {hi}")
        for name in ("dropout", "rope_base"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"GPTConfig.{name} must be a finite number, got {v!r}")
        if not isinstance(self.text_layers, bool):
            raise ValueError(f"GPTConfig.text_layers must be true or false, got {self.text_layers!r}")
        if not 0.0 <= self.dropout < 1.0 or self.rope_base <= 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1) and rope_base > 1 "
                             f"(got {self.dropout}, {self.rope_base})")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if (self.n_embd // self.n_head) % 2:
            raise ValueError(f"head dim {self.n_embd // self.n_head} must be even for rotary positions")
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "cond_dim", "n_genres", "text_dim", "context"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_keyframe_slots < 0:
            raise ValueError(f"GPTConfig.n_keyframe_slots must be >= 0, got {self.n_keyframe_slots}")

    @property
    def head_dim(self) -> int:
        """D, width of one attention head."""
        return self.n_embd // self.n_head

    @property
    def bos_id(self) -> int:
        """Token id fed before the first real token."""
        return self.vocab_size

    @property
    def cache_slots(self) -> int:
        """S = K + context, slots per layer of the KV cache."""
        return self.n_keyframe_slots + self.context

    def cache_bytes_per_performer(self, bytes_per_value: int = 4) -> int:
        """Keys + values of one performer's cache."""
        return 2 * self.n_layer * self.n_head * self.cache_slots * self.head_dim * bytes_per_value

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """Build from a dict; unknown keys are an error that names the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GPTConfig:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a GPT config must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)


#: Upper sanity limits of GPTConfig's integer fields (far above any model this engine runs; a config
#: beyond them is refused before a single tensor is allocated).
_INT_LIMITS: dict[str, int] = {
    "vocab_size": 65536, "n_layer": 128, "n_head": 128, "n_embd": 8192, "cond_dim": 8192, "n_genres": 4096,
    "text_dim": 8192, "context": 16384, "n_keyframe_slots": 1024,
}

#: Named sizes. "default" is small enough for a < 5 ms step on 2 CPU cores; "bailando" matches the paper.
GPT_PRESETS: dict[str, GPTConfig] = {
    "default": GPTConfig(n_layer=4, n_head=8, n_embd=256, context=60),
    "bailando": GPTConfig(n_layer=12, n_head=12, n_embd=768, context=240),
    "tiny": GPTConfig(n_layer=2, n_head=2, n_embd=32, context=8, n_keyframe_slots=2, cond_dim=12, text_dim=16),
}


class Keyframes(NamedTuple):
    """Target tokens at target positions, attended to through the K prefix slots.

    Attributes:
        up: [B, K] long upper-body token ids.
        down: [B, K] long lower-body token ids.
        pos: [B, K] long absolute token positions the targets are meant for.
        mask: [B, K] bool, which of the K slots are set.
    """

    up: Tensor
    down: Tensor
    pos: Tensor
    mask: Tensor


def rope_angles(pos: Tensor, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    """cos/sin tables for absolute positions.

    Args:
        pos: [...] long positions.

    Returns:
        cos, sin: [..., D/2] float32.
    """
    half = head_dim // 2
    inv_freq = base ** (-torch.arange(half, device=pos.device, dtype=torch.float32) / half)  # [D/2]
    ang = pos.to(torch.float32).unsqueeze(-1) * inv_freq  # [..., D/2]
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, half: int) -> Tensor:
    """Rotate (first half, second half) pairs of ``x`` [..., D] by the angles ``cos/sin`` [..., D/2].

    ``half`` = D / 2 is passed as a Python int so an exported graph slices with constants.
    """
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    """Pre-norm transformer block; attention takes an explicit boolean mask and rotary angles."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.head_dim = cfg.head_dim
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.fc_out = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)

    def qkv_heads(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: [B, T, E] -> q, k, v: [B, H, T, D] with rotary positions on q and k."""
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(self.n_head * self.head_dim, dim=-1)
        q = q.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        half = self.head_dim // 2
        return apply_rope(q, cos, sin, half), apply_rope(k, cos, sin, half), v

    def attend(self, x: Tensor, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """Attention of q [B, H, T, D] over k/v [B, H, S, D] under mask [B, 1|H, T, S]; residual + MLP."""
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))  # [B, H, T, S]
        # Every query row has at least its own key valid, so -inf never yields an all-masked row.
        scores = scores.masked_fill(~mask, float("-inf"))
        att = self.drop(torch.softmax(scores, dim=-1))
        return self._residual(x, torch.matmul(att, v))

    def step_cached(
        self, x: Tensor, cos: Tensor, sin: Tensor, k_cache: Tensor, v_cache: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One token per row over the cached history plus its own key; the cache is only read.

        Written for the exported step: constant reshapes only (no shape arithmetic in the graph) and one
        rotary application for q and k together.

        Args:
            x: [B, E] block input.
            cos, sin: [B, 1, D/2] rotary angles of each row's position.
            k_cache, v_cache: [B, H, S, D] this layer's cache.
            mask: [B, 1, 1, S] valid history slots (the slot being replaced excluded).

        Returns:
            block output [B, E], the token's k and v [B, H, D].
        """
        h, d = self.n_head, self.head_dim
        qkv = self.qkv(self.ln1(x)).reshape(-1, 3 * h, d)  # [B, 3H, D]
        qk = apply_rope(qkv[:, : 2 * h], cos, sin, d // 2)  # [B, 2H, D]
        q, k, v = qk[:, :h], qk[:, h : 2 * h], qkv[:, 2 * h : 3 * h]  # [B, H, D] (explicit ends: static shapes)
        q4 = q.unsqueeze(2)  # [B, H, 1, D]
        hist = torch.matmul(q4, k_cache.transpose(-1, -2)).masked_fill(~mask, float("-inf"))  # [B, H, 1, S]
        own = (q4 * k.unsqueeze(2)).sum(-1, keepdim=True)  # [B, H, 1, 1]
        att = torch.softmax(torch.cat([hist, own], dim=-1) * (1.0 / math.sqrt(d)), dim=-1)  # [B, H, 1, S + 1]
        # Constant slices: the history weights, then the token's own weight in the last column.
        y = torch.matmul(att[..., :-1], v_cache) + att[..., -1:] * v.unsqueeze(2)  # [B, H, 1, D]
        x = x + self.proj(y.reshape(-1, h * d))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x)))), k, v

    def _residual(self, x: Tensor, y: Tensor) -> Tensor:
        """x [B, T, E], per-head attention output y [B, H, T, D] -> block output [B, T, E]."""
        b, _, t, _ = y.shape
        y = y.transpose(1, 2).reshape(b, t, self.n_head * self.head_dim)  # [B, T, E]
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.fc_out(F.gelu(self.fc(self.ln2(x)))))


class CrossCondGPT(nn.Module):
    """Predicts the next upper and lower token together from both streams' history (Bailando).

    Position t's input is ``emb_up(up[t-1]) + emb_down(down[t-1]) + cond_proj(cond[t]) + genre + text``
    (BOS at t = 0); one causal trunk sees both streams, so each half's prediction is conditioned on the
    other's past; two heads give the logits. Attention is restricted to the last ``context`` tokens so
    training sees exactly what the ring cache holds at run time.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.n_embd
        self.emb_up = nn.Embedding(cfg.vocab_size + 1, e)
        self.emb_down = nn.Embedding(cfg.vocab_size + 1, e)
        self.cond_proj = nn.Linear(cfg.cond_dim, e)
        self.genre_emb = nn.Embedding(cfg.n_genres, e)
        # No bias: a zero text vector ("no text") contributes nothing.
        self.text_proj = nn.Linear(cfg.text_dim, e, bias=False)
        # The text into every later block too (cfg.text_layers); zero at the start, so a model widened to it
        # computes what it did until training moves it.
        self.text_layer_proj = (nn.Linear(cfg.text_dim, (cfg.n_layer - 1) * e, bias=False)
                                if cfg.text_layers and cfg.n_layer > 1 else None)
        # Marks keyframe inputs (they carry no music conditioning).
        self.kf_emb = nn.Parameter(torch.zeros(e))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(e)
        self.head_up = nn.Linear(e, cfg.vocab_size)
        self.head_down = nn.Linear(e, cfg.vocab_size)
        self.apply(self._init_weights)
        nn.init.normal_(self.kf_emb, std=0.02)
        if self.text_layer_proj is not None:
            nn.init.zeros_(self.text_layer_proj.weight)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def _block_list(self) -> list[Block]:
        return [cast(Block, b) for b in self.blocks]

    # -- inputs -------------------------------------------------------------------------------------------

    def _global(self, genre: Tensor, text: Tensor | None) -> Tensor:
        """genre [B], text [B, text_dim] | None -> [B, 1, E]."""
        g = self.genre_emb(genre)
        if text is not None:
            g = g + self.text_proj(text)
        return g.unsqueeze(1)

    def _layer_text(self, text: Tensor | None) -> Tensor | None:
        """text [B, text_dim] -> the per-block text biases [B, L - 1, E] (None: no text or no such path)."""
        if text is None or self.text_layer_proj is None:
            return None
        return self.text_layer_proj(text).reshape(text.shape[0], self.cfg.n_layer - 1, self.cfg.n_embd)

    def _stream_inputs(self, up_in: Tensor, down_in: Tensor, cond: Tensor, glob: Tensor) -> Tensor:
        """[B, T] x2, cond [B, T, C], glob [B, 1, E] -> [B, T, E]."""
        return self.emb_up(up_in) + self.emb_down(down_in) + self.cond_proj(cond) + glob

    def _keyframe_inputs(self, kf: Keyframes, glob: Tensor) -> Tensor:
        """-> [B, K, E]."""
        return self.emb_up(kf.up) + self.emb_down(kf.down) + self.kf_emb + glob

    def _check_tokens(self, name: str, t: Tensor) -> None:
        if t.dtype != torch.long:
            raise TypeError(f"{name} must be int64 token ids, got {t.dtype}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) > self.cfg.vocab_size):
            raise ValueError(f"{name} ids must be in [0, {self.cfg.vocab_size}] (BOS = {self.cfg.vocab_size})")

    # -- training / full-window forward -------------------------------------------------------------------

    def forward(
        self,
        up_in: Tensor,
        down_in: Tensor,
        cond: Tensor,
        genre: Tensor,
        text: Tensor | None = None,
        keyframes: Keyframes | None = None,
        pos0: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Logits for every position of a token sequence.

        Args:
            up_in: [B, T] long, upper tokens shifted right (``up_in[:, t] = up[t-1]``, BOS first).
            down_in: [B, T] long, likewise for the lower body.
            cond: [B, T, cond_dim] conditioning of each position's token.
            genre: [B] long genre ids.
            text: [B, text_dim] sentence embeddings, or None for no text.
            keyframes: optional targets in the K prefix slots (K' <= n_keyframe_slots columns).
            pos0: [B] long absolute position of the first token (default 0).

        Returns:
            logits_up, logits_down: [B, T, V].
        """
        cfg = self.cfg
        b, t = up_in.shape
        self._check_tokens("up_in", up_in)
        self._check_tokens("down_in", down_in)
        if cond.shape != (b, t, cfg.cond_dim):
            raise ValueError(f"cond must be [B={b}, T={t}, cond_dim={cfg.cond_dim}], got {list(cond.shape)}")
        dev = up_in.device
        if pos0 is None:
            pos0 = torch.zeros(b, dtype=torch.long, device=dev)
        glob = self._global(genre, text)
        x = self._stream_inputs(up_in, down_in, cond, glob)  # [B, T, E]
        pos = pos0.unsqueeze(1) + torch.arange(t, device=dev)  # [B, T]
        i = torch.arange(t, device=dev)
        rel = i.unsqueeze(1) - i.unsqueeze(0)  # [T, T] query index - key index
        mask = ((rel >= 0) & (rel < cfg.context)).unsqueeze(0).expand(b, t, t)  # [B, T, T]
        n_kf = 0
        if keyframes is not None:
            n_kf = keyframes.up.shape[1]
            if n_kf > cfg.n_keyframe_slots:
                raise ValueError(f"{n_kf} keyframes given but the model has {cfg.n_keyframe_slots} slots")
            self._check_tokens("keyframes.up", keyframes.up)
            self._check_tokens("keyframes.down", keyframes.down)
            kfm = keyframes.mask.to(torch.bool)  # [B, K]
            x = torch.cat([self._keyframe_inputs(keyframes, glob), x], dim=1)  # [B, K + T, E]
            pos = torch.cat([keyframes.pos, pos], dim=1)
            eye = torch.eye(n_kf, dtype=torch.bool, device=dev)
            kf_rows = torch.cat(
                [kfm.unsqueeze(1) | eye, torch.zeros(b, n_kf, t, dtype=torch.bool, device=dev)], dim=2
            )  # keyframes see set keyframes and themselves, never the stream
            st_rows = torch.cat([kfm.unsqueeze(1).expand(b, t, n_kf), mask], dim=2)
            mask = torch.cat([kf_rows, st_rows], dim=1)  # [B, K + T, K + T]
        x = self._trunk(self.drop(x), pos, mask, None, self._layer_text(text))
        x = self.ln_f(x[:, n_kf:])
        return self.head_up(x), self.head_down(x)

    def _trunk(self, x: Tensor, pos: Tensor, mask: Tensor, kv: list[tuple[Tensor, Tensor]] | None,
               layer_text: Tensor | None = None) -> Tensor:
        """The blocks over inputs x [B, N, E] at positions pos [B, N] under mask [B, N, N]; appends each
        layer's keys/values [B, H, N, D] to ``kv`` when given; ``layer_text`` [B, L - 1, E] is added before
        every block after the first."""
        cos, sin = rope_angles(pos, self.cfg.head_dim, self.cfg.rope_base)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [B, 1, N, D/2]
        m4 = mask.unsqueeze(1)  # [B, 1, N, N]
        for i, blk in enumerate(self._block_list()):
            if layer_text is not None and i > 0:
                x = x + layer_text[:, i - 1 : i]
            q, k, v = blk.qkv_heads(x, cos, sin)
            if kv is not None:
                kv.append((k, v))
            x = blk.attend(x, q, k, v, m4)
        return x

    # -- history re-encoded under new controls ----------------------------------------------------------------

    def encode_history(
        self,
        up_in: Tensor,
        down_in: Tensor,
        cond: Tensor,
        genre: Tensor,
        text: Tensor | None,
        pos0: Tensor,
        keyframes: Keyframes | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Keys/values of a window of already generated positions under (new) global controls.

        What a switched control needs: the cache entries of the positions ``pos0 .. pos0 + T - 1`` computed
        again with ``genre``/``text``, as the training forward computes them for a window that starts at
        ``pos0`` (the window's own history only; set ``keyframes`` attended as in training). Inputs as
        :meth:`forward`; ``T`` <= ``context``.

        Returns:
            k, v: [L, B, H, T, D], to be written at the positions' ring slots.
        """
        cfg = self.cfg
        b, t = up_in.shape
        if t > cfg.context:
            raise ValueError(f"a history window is at most context = {cfg.context} tokens, got {t}")
        self._check_tokens("up_in", up_in)
        self._check_tokens("down_in", down_in)
        glob = self._global(genre, text)
        x = self._stream_inputs(up_in, down_in, cond, glob)  # [B, T, E]
        dev = x.device
        pos = pos0.unsqueeze(1) + torch.arange(t, device=dev)  # [B, T]
        mask = torch.ones(t, t, dtype=torch.bool, device=dev).tril().unsqueeze(0).expand(b, t, t)
        n_kf = 0
        if keyframes is not None:
            n_kf = keyframes.up.shape[1]
            kfm = keyframes.mask.to(torch.bool)
            x = torch.cat([self._keyframe_inputs(keyframes, glob), x], dim=1)
            pos = torch.cat([keyframes.pos, pos], dim=1)
            eye = torch.eye(n_kf, dtype=torch.bool, device=dev)
            kf_rows = torch.cat([kfm.unsqueeze(1) | eye, torch.zeros(b, n_kf, t, dtype=torch.bool, device=dev)], 2)
            mask = torch.cat([kf_rows, torch.cat([kfm.unsqueeze(1).expand(b, t, n_kf), mask], dim=2)], dim=1)
        kv: list[tuple[Tensor, Tensor]] = []
        self._trunk(x, pos, mask, kv, self._layer_text(text))
        return (torch.stack([k[:, :, n_kf:] for k, _ in kv]), torch.stack([v[:, :, n_kf:] for _, v in kv]))

    # -- keyframes for the cache ----------------------------------------------------------------------------

    def encode_keyframes(
        self, keyframes: Keyframes, genre: Tensor, text: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Keys/values of the keyframe tokens for the cache's prefix slots.

        Returns:
            k, v: [L, B, H, K', D], the same values the full forward computes for its keyframe columns.
        """
        n_kf = keyframes.up.shape[1]
        if n_kf > self.cfg.n_keyframe_slots:
            raise ValueError(f"{n_kf} keyframes given but the model has {self.cfg.n_keyframe_slots} slots")
        self._check_tokens("keyframes.up", keyframes.up)
        self._check_tokens("keyframes.down", keyframes.down)
        x = self._keyframe_inputs(keyframes, self._global(genre, text))  # [B, K, E]
        eye = torch.eye(n_kf, dtype=torch.bool, device=x.device)
        mask = (keyframes.mask.to(torch.bool).unsqueeze(1) | eye).unsqueeze(1)  # [B, 1, K, K]
        cos, sin = rope_angles(keyframes.pos, self.cfg.head_dim, self.cfg.rope_base)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        ks, vs = [], []
        lt = self._layer_text(text)
        for i, blk in enumerate(self._block_list()):
            if lt is not None and i > 0:
                x = x + lt[:, i - 1 : i]
            q, k, v = blk.qkv_heads(x, cos, sin)
            ks.append(k)
            vs.append(v)
            x = blk.attend(x, q, k, v, mask)
        return torch.stack(ks), torch.stack(vs)

    # -- single-token step over a batch of performers -------------------------------------------------------

    def step_delta(
        self,
        up_prev: Tensor,
        down_prev: Tensor,
        cond: Tensor,
        genre: Tensor,
        text: Tensor,
        pos: Tensor,
        k_cache: Tensor | Sequence[Tensor],
        v_cache: Tensor | Sequence[Tensor],
        kv_mask: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One token for every performer; reads the cache and returns the entries to write into it.

        This is the function ONNX exports: the cache is an explicit input of fixed shape and the new
        keys/values are explicit outputs, so a backend writes one slot per layer in place instead of
        copying the whole cache through the graph every step.

        Args:
            up_prev: [B] long previous upper token (BOS at position 0).
            down_prev: [B] long previous lower token.
            cond: [B, cond_dim] conditioning of the token at ``pos``.
            genre: [B] long.
            text: [B, text_dim] (zeros for no text).
            pos: [B] long absolute position of the token being predicted.
            k_cache: [L, B, H, S, D] keys (S = K + context), or a sequence of L [B, H, S, D]; not modified.
            v_cache: like ``k_cache``, values.
            kv_mask: [B, K] bool, the keyframe slots that are set. Ring slot validity follows from ``pos``.

        Returns:
            logits_up [B, V], logits_down [B, V], k_new [L, B, H, D], v_new [L, B, H, D]; the new entries
            belong at slot ``K + pos % context`` (see :func:`engine.models.kv_cache.ring_slots`).
        """
        cfg = self.cfg
        glob = self._global(genre, text)
        x = self.emb_up(up_prev) + self.emb_down(down_prev) + self.cond_proj(cond) + glob[:, 0]  # [B, E]
        cos, sin = rope_angles(pos.unsqueeze(1), cfg.head_dim, cfg.rope_base)  # [B, 1, D/2]
        mask = history_mask(pos, kv_mask, cfg.context)[:, None, None, :]  # [B, 1, 1, S]
        new_k, new_v = [], []
        lt = self._layer_text(text)
        for i, blk in enumerate(self._block_list()):
            if lt is not None and i > 0:
                x = x + lt[:, i - 1]
            x, k, v = blk.step_cached(x, cos, sin, k_cache[i].to(x.dtype), v_cache[i].to(x.dtype), mask)
            new_k.append(k)
            new_v.append(v)
        x = self.ln_f(x)
        return self.head_up(x), self.head_down(x), torch.stack(new_k), torch.stack(new_v)

    def step(
        self,
        up_prev: Tensor,
        down_prev: Tensor,
        cond: Tensor,
        genre: Tensor,
        text: Tensor,
        pos: Tensor,
        k_cache: Tensor,
        v_cache: Tensor,
        kv_mask: Tensor,
        inplace: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One token for every performer through the ring KV cache, with the cache updated.

        Args: as :meth:`step_delta`, plus ``inplace``: write into ``k_cache``/``v_cache`` (eager and
        CUDA-graph path); otherwise return updated copies and leave the inputs untouched.

        Returns:
            logits_up [B, V], logits_down [B, V], k_cache, v_cache (updated; the inputs when ``inplace``).
        """
        lu, ld, k_new, v_new = self.step_delta(up_prev, down_prev, cond, genre, text, pos, k_cache, v_cache, kv_mask)
        slot = ring_slots(pos, self.cfg.n_keyframe_slots, self.cfg.context)  # [B]
        ks = [write_slot(k_cache[i], slot, k_new[i].unsqueeze(2), inplace) for i in range(k_cache.shape[0])]
        vs = [write_slot(v_cache[i], slot, v_new[i].unsqueeze(2), inplace) for i in range(v_cache.shape[0])]
        if not inplace:
            k_cache, v_cache = torch.stack(ks), torch.stack(vs)
        return lu, ld, k_cache, v_cache

    def new_cache(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> RingKVCache:
        """A zeroed :class:`~engine.models.kv_cache.RingKVCache` for ``batch`` performers."""
        p = next(self.parameters())
        cfg = self.cfg
        return RingKVCache(
            cfg.n_layer, batch, cfg.n_head, cfg.head_dim, cfg.context, cfg.n_keyframe_slots,
            device=device if device is not None else p.device, dtype=dtype if dtype is not None else p.dtype,
        )


def save_gpt(model: CrossCondGPT, directory: str | Path) -> Path:
    """Write ``gpt.safetensors`` + ``gpt.json`` into ``directory`` (created if needed)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(d / GPT_WEIGHTS))
    (d / GPT_CONFIG).write_text(model.cfg.to_json() + "\n")
    return d


def load_gpt(directory: str | Path, device: torch.device | str = "cpu") -> CrossCondGPT:
    """Load a model directory written by :func:`save_gpt`, in eval mode (bad files: ValueError naming them)."""
    d = Path(directory)
    missing = [n for n in (GPT_WEIGHTS, GPT_CONFIG) if not (d / n).is_file()]
    if missing:
        have = sorted(p.name for p in d.iterdir()) if d.is_dir() else "directory does not exist"
        raise FileNotFoundError(f"model directory {d} lacks {missing}; it has: {have}")
    try:
        cfg = GPTConfig.from_json((d / GPT_CONFIG).read_text())
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{d / GPT_CONFIG}: {exc}") from None
    model = CrossCondGPT(cfg)
    try:
        model.load_state_dict(load_weights(d / GPT_WEIGHTS, device))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:160]
        raise ValueError(f"{d / GPT_WEIGHTS}: weights do not fit {GPT_CONFIG} ({first})") from None
    return model.to(device).eval()


def load_weights(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a corrupt or truncated file is a ValueError naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # SafetensorError, OSError, ...: the file is not a valid safetensors archive
        raise ValueError(f"{path}: not a readable safetensors file ({str(exc)[:160]})") from None

"""FreqVQ-VAE: upper/lower-body motion tokenizer with a frequency-domain encoder branch and a causal decoder.

Follows Bailando (separate 512-entry codebooks for the upper and lower body, EMA codebook updates) and
ExpressiveBailando (an encoder branch on the frequency content of the motion window). One token covers
``DOWN = 4`` frames (133 ms at 30 fps).

The decoder is strictly causal: the frames of token ``t`` depend only on tokens ``<= t``, so a token
can be turned into poses the moment it is sampled (decode latency: 0 frames of look-ahead; the
decoder's receptive field is :meth:`VQVAE.decode_context` tokens, which the runtime keeps).
The encoder is non-causal; it only runs offline (training, encoding real data).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Frames per token.
DOWN = 4


@dataclass
class VQVAEConfig:
    """Sizes and loss weights of the FreqVQ-VAE."""

    upper_dim: int = 72
    lower_dim: int = 61
    #: Indices (within the lower vector) of the foot-contact channels (predicted as logits).
    lower_contact: list[int] = field(default_factory=lambda: [57, 58, 59, 60])
    n_codes: int = 512
    code_dim: int = 64
    hidden: int = 128
    n_res: int = 2
    #: Frames of the window whose rFFT magnitude feeds the frequency branch (centred on the token).
    freq_window: int = 16
    ema_decay: float = 0.99
    #: A code whose EMA usage falls below this is re-seeded from a random encoder output.
    dead_usage: float = 0.03
    beta: float = 0.1  # commitment weight
    w_rec: float = 1.0
    w_vel: float = 1.0
    w_contact: float = 0.2
    w_fk: float = 1.0
    #: Weight of the joint-velocity (position space) loss: motion beats are speed minima, so the decoded
    #: speed profile must follow the real one, not only the poses.
    w_fk_vel: float = 1.0
    #: Weight of the speed-curve loss (training only; 0 = off, as every shipped model): L1 between the smoothed
    #: mean joint speed curves of reconstruction and input, and between their slopes (``train.losses``), so
    #: the speed minima that Bailando's motion beats are stay in place (issue 10 item 6 diagnostic).
    w_speed: float = 0.0
    #: Per-frame beat input of the decoder (0 = none, as the shipped ``vq3``; 4 =
    #: ``conditioning.DECODER_BEAT_DIM``): the predicted beat phase of the frames being decoded, through a small
    #: MLP whose output layer starts at zero, added to the decoder's frame-rate features (issue 10 item 6).
    beat_dim: int = 0
    #: Hidden width of that MLP.
    beat_hidden: int = 32
    #: Weight of the beat-dip loss (training only; 0 = off): a beat-conditioned decoder's smoothed speed at each
    #: frame its beat flag marks should be the local minimum within ``beat_radius`` frames (``train.losses``).
    w_beat: float = 0.0
    beat_radius: int = 4
    #: Which speed the beat-dip loss dips: "all" (the joints' speed with the root's horizontal travel, as the Beat
    #: Align Score measures it; every run before session 7's h36) or "body" (the joints relative to the root,
    #: without the travel, which the shipped card's foot locking puts back anyway).
    beat_dip_on: str = "all"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def __post_init__(self) -> None:
        # Types and sizes first, before anything is allocated (a config file is input like any other).
        for name, hi in (("upper_dim", 4096), ("lower_dim", 4096), ("n_codes", 65536), ("code_dim", 4096),
                         ("hidden", 4096), ("n_res", 64), ("freq_window", 1024), ("beat_hidden", 1024),
                         ("beat_radius", 64)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
                raise ValueError(f"VQVAEConfig.{name} must be an integer in 1..{hi}, got {v!r}")
        if isinstance(self.beat_dim, bool) or not isinstance(self.beat_dim, int) or not 0 <= self.beat_dim <= 64:
            raise ValueError(f"VQVAEConfig.beat_dim must be an integer in 0..64, got {self.beat_dim!r}")
        if self.beat_dip_on not in ("all", "body"):
            raise ValueError(f"VQVAEConfig.beat_dip_on must be \"all\" or \"body\", got {self.beat_dip_on!r}")
        if not isinstance(self.lower_contact, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < self.lower_dim for i in self.lower_contact):
            raise ValueError(f"VQVAEConfig.lower_contact must list channels of 0..{self.lower_dim - 1}")
        for name in ("ema_decay", "dead_usage", "beta", "w_rec", "w_vel", "w_contact", "w_fk", "w_fk_vel",
                     "w_speed", "w_beat"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"VQVAEConfig.{name} must be a finite number >= 0, got {v!r}")

    @classmethod
    def from_dict(cls, d: Any) -> VQVAEConfig:
        if not isinstance(d, dict):
            raise ValueError(f"a VQ-VAE config must be a JSON object, got {type(d).__name__}")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class _Res(nn.Module):
    """Residual conv block; ``causal`` pads only on the left."""

    def __init__(self, ch: int, dilation: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.pad = 2 * dilation
        self.c1 = nn.Conv1d(ch, ch, 3, dilation=dilation)
        self.c2 = nn.Conv1d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T]
        if self.causal:
            h = F.pad(x, (self.pad, 0))
        else:
            h = F.pad(x, (self.pad // 2, self.pad // 2), mode="replicate")
        return x + self.c2(F.relu(self.c1(F.relu(h))))


class _CausalConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.conv = nn.Conv1d(cin, cout, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T]
        return self.conv(F.pad(x, (self.k - 1, 0)))


class Encoder(nn.Module):
    """Temporal conv encoder (stride 4) fused with a frequency branch on the window's rFFT magnitude."""

    def __init__(self, dim: int, cfg: VQVAEConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.win = cfg.freq_window
        self.inp = nn.Conv1d(dim, h, 3, padding=1)
        self.down = nn.ModuleList()
        for i in range(2):
            self.down.append(nn.Conv1d(h, h, 4, stride=2, padding=1))
            self.down.append(_Res(h, 1 + i, causal=False))
        self.out = nn.Conv1d(h, cfg.code_dim, 3, padding=1)
        n_bins = self.win // 2 + 1
        self.freq = nn.Sequential(
            nn.Linear(dim * n_bins, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, cfg.code_dim)
        )
        self.fuse = nn.Linear(2 * cfg.code_dim, cfg.code_dim)

    def freq_features(self, x: torch.Tensor) -> torch.Tensor:
        """Log rFFT magnitude of each token's window, per channel. x: [B, T, D] -> [B, T/4, D*(W/2+1)]."""
        b, t, _ = x.shape
        n = t // DOWN
        before = (self.win - DOWN) // 2
        after = self.win - DOWN - before
        xp = F.pad(x.transpose(1, 2), (before, after), mode="replicate")  # [B, D, T+W-4]
        win = xp.unfold(2, self.win, DOWN)[:, :, :n]  # [B, D, n, W]
        win = win - win.mean(dim=-1, keepdim=True)  # the temporal branch carries the level
        mag = torch.fft.rfft(win * torch.hann_window(self.win, device=x.device, dtype=x.dtype), dim=-1).abs()
        return torch.log1p(mag).permute(0, 2, 1, 3).reshape(b, n, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, D] -> [B, T/4, C]
        h = F.relu(self.inp(x.transpose(1, 2)))
        for m in self.down:
            h = m(h) if isinstance(m, _Res) else F.relu(m(h))
        zt = self.out(h).transpose(1, 2)  # [B, T/4, C]
        zf = self.freq(self.freq_features(x))  # [B, T/4, C]
        return self.fuse(torch.cat([zt, zf], dim=-1))


class BeatInput(nn.Module):
    """Per-frame beat features -> the decoder's hidden width; the output layer starts at zero, so a decoder
    fine-tuned with it starts out computing exactly what it computed without it."""

    def __init__(self, beat_dim: int, hidden: int, width: int) -> None:
        super().__init__()
        self.inp = nn.Linear(beat_dim, hidden)
        self.out = nn.Linear(hidden, width)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, beat: torch.Tensor) -> torch.Tensor:  # beat: [B, T, F] -> [B, T, H]
        return self.out(F.relu(self.inp(beat)))


class Decoder(nn.Module):
    """Causal decoder: frames of token t depend only on tokens <= t (and, with ``beat_dim``, on the beat
    features of frames <= its own, which the tracker predicts before the token is decoded)."""

    def __init__(self, dim: int, cfg: VQVAEConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.inp = _CausalConv(cfg.code_dim, h, 3)
        self.res0 = nn.ModuleList([_Res(h, 1 + i, causal=True) for i in range(cfg.n_res)])
        self.up = nn.ModuleList([_CausalConv(h, h, 3) for _ in range(2)])
        self.res1 = nn.ModuleList([_Res(h, 1, causal=True) for _ in range(2)])
        self.out = _CausalConv(h, dim, 3)
        self.beat = BeatInput(cfg.beat_dim, cfg.beat_hidden, h) if cfg.beat_dim else None

    def forward(self, z: torch.Tensor, beat: torch.Tensor | None = None) -> torch.Tensor:
        """z: [B, N, C] (, beat: [B, 4N, F]) -> [B, 4N, D]."""
        h = F.relu(self.inp(z.transpose(1, 2)))
        for m in self.res0:
            h = m(h)
        last = len(self.up) - 1
        for i, (up, res) in enumerate(zip(self.up, self.res1, strict=True)):
            h = torch.repeat_interleave(h, 2, dim=2)  # nearest up-sampling keeps causality
            h = F.relu(up(h))
            if i == last and self.beat is not None:
                # At frame rate, before the last residual block: the beat shapes the frames' timing.
                h = h + self.beat(_beat_or_zero(beat, h)).transpose(1, 2)
            h = res(h)
        return self.out(F.relu(h)).transpose(1, 2)


def _beat_or_zero(beat: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """The beat features [B, T, F] checked against the frame-rate hidden h: [B, H, T]; a clear error if absent."""
    if beat is None:
        raise ValueError("this VQ-VAE's decoder takes per-frame beat features (beat_dim > 0); none were given")
    if beat.shape[0] != h.shape[0] or beat.shape[1] != h.shape[2]:
        raise ValueError(f"beat features {tuple(beat.shape)} do not match {h.shape[2]} frames x {h.shape[0]}")
    return beat.to(h.dtype)


class EMAQuantizer(nn.Module):
    """Nearest-code quantizer with EMA codebook updates and dead-code re-seeding."""

    codebook: torch.Tensor  # [K, C]
    ema_count: torch.Tensor  # [K]
    ema_sum: torch.Tensor  # [K, C]
    initialised: torch.Tensor  # [] bool

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.decay = cfg.ema_decay
        self.dead = cfg.dead_usage
        k, c = cfg.n_codes, cfg.code_dim
        self.register_buffer("codebook", torch.randn(k, c) * 0.1)
        self.register_buffer("ema_count", torch.ones(k))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def indices(self, z: torch.Tensor) -> torch.Tensor:  # z: [..., C] -> [...] long
        flat = z.reshape(-1, z.shape[-1])
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)[None]
        return d.argmin(dim=1).reshape(z.shape[:-1])

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:  # idx: [...] -> [..., C]
        return F.embedding(idx, self.codebook)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z: [B, N, C] -> (quantised with straight-through [B, N, C], indices [B, N], commit loss)."""
        flat = z.reshape(-1, z.shape[-1]).detach()
        if self.training and not bool(self.initialised):
            # Seed the codebook from data so no code starts far from every encoder output.
            pick = torch.randint(0, flat.shape[0], (self.codebook.shape[0],), device=z.device)
            self.codebook.copy_(flat[pick])
            self.ema_sum.copy_(flat[pick])
            self.ema_count.fill_(1.0)
            self.initialised.fill_(True)
        idx = self.indices(z)
        q = self.lookup(idx)
        if self.training:
            with torch.no_grad():
                onehot = F.one_hot(idx.reshape(-1), self.codebook.shape[0]).type_as(flat)  # [M, K]
                self.ema_count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
                self.ema_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
                n = self.ema_count.sum()
                count = (self.ema_count + 1e-5) / (n + self.codebook.shape[0] * 1e-5) * n
                self.codebook.copy_(self.ema_sum / count[:, None])
                dead = self.ema_count < self.dead
                n_dead = int(dead.sum())
                if n_dead:
                    pick = torch.randint(0, flat.shape[0], (n_dead,), device=z.device)
                    self.codebook[dead] = flat[pick]
                    self.ema_sum[dead] = flat[pick]
                    self.ema_count[dead] = 1.0
        commit = F.mse_loss(z, q.detach())
        q_st = z + (q - z).detach()
        return q_st, idx, commit


class VQVAE(nn.Module):
    """Upper and lower FreqVQ-VAEs with normalisation statistics held as buffers.

    Inputs are raw pose vectors (see :mod:`engine.models.pose_repr`); the model normalises them with
    ``*_mean``/``*_std`` (set from training data) and returns raw vectors, foot contacts as 0..1.
    """

    up_mean: torch.Tensor
    up_std: torch.Tensor
    down_mean: torch.Tensor
    down_std: torch.Tensor
    contact_mask: torch.Tensor  # [Dl] bool

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enc_up = Encoder(cfg.upper_dim, cfg)
        self.enc_down = Encoder(cfg.lower_dim, cfg)
        self.dec_up = Decoder(cfg.upper_dim, cfg)
        self.dec_down = Decoder(cfg.lower_dim, cfg)
        self.q_up = EMAQuantizer(cfg)
        self.q_down = EMAQuantizer(cfg)
        self.register_buffer("up_mean", torch.zeros(cfg.upper_dim))
        self.register_buffer("up_std", torch.ones(cfg.upper_dim))
        self.register_buffer("down_mean", torch.zeros(cfg.lower_dim))
        self.register_buffer("down_std", torch.ones(cfg.lower_dim))
        contact = torch.zeros(cfg.lower_dim, dtype=torch.bool)
        contact[cfg.lower_contact] = True
        self.register_buffer("contact_mask", contact, persistent=False)

    def set_stats(self, up: torch.Tensor, down: torch.Tensor) -> None:
        """Set normalisation from raw training vectors up: [M, Du], down: [M, Dl]."""
        self.up_mean.copy_(up.mean(0))
        self.up_std.copy_(up.std(0).clamp_min(1e-3))
        dm, ds = down.mean(0), down.std(0).clamp_min(1e-3)
        dm[self.contact_mask] = 0.0  # contacts stay 0/1 (targets of a BCE)
        ds[self.contact_mask] = 1.0
        self.down_mean.copy_(dm)
        self.down_std.copy_(ds)

    def _norm(self, up: torch.Tensor, down: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (up - self.up_mean) / self.up_std, (down - self.down_mean) / self.down_std

    def encode(self, up: torch.Tensor, down: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw vectors up: [B, T, Du], down: [B, T, Dl] (T multiple of 4) -> token ids [B, T/4] x 2."""
        nu, nd = self._norm(up, down)
        return self.q_up.indices(self.enc_up(nu)), self.q_down.indices(self.enc_down(nd))

    def decode(self, idx_up: torch.Tensor, idx_down: torch.Tensor,
               beat: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids [B, N] x 2 -> raw vectors [B, 4N, Du], [B, 4N, Dl] (contacts as probabilities).

        ``beat`` [B, 4N, beat_dim]: the per-frame beat features (``conditioning.decoder_beat_features``), needed
        when ``cfg.beat_dim > 0`` and ignored otherwise."""
        beat = beat if self.cfg.beat_dim else None
        yu = self.dec_up(self.q_up.lookup(idx_up), beat)
        yd = self.dec_down(self.q_down.lookup(idx_down), beat)
        return self._denorm(yu, yd)

    def _denorm(self, yu: torch.Tensor, yd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up = yu * self.up_std + self.up_mean
        down = yd * self.down_std + self.down_mean
        down = torch.where(self.contact_mask, torch.sigmoid(yd), down)
        return up, down

    def decode_context(self) -> int:
        """Tokens of history the causal decoder needs to reproduce a token's frames exactly."""
        # Token-rate layers: inp k3 (2) + res0 dilations 1..n (2*d each); the up-sampled layers look back
        # 8 half-rate samples + 6 frames (< 4 tokens); +1 for the nearest up-sampling offset.
        return 2 + sum(2 * (1 + i) for i in range(self.cfg.n_res)) + 5

    def forward(self, up: torch.Tensor, down: torch.Tensor,
                beat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training pass on raw vectors (``beat`` [B, T, beat_dim] for a beat-conditioned decoder); returns
        losses and the raw reconstructions."""
        cfg = self.cfg
        beat = beat if cfg.beat_dim else None
        nu, nd = self._norm(up, down)
        qu, iu, cu = self.q_up(self.enc_up(nu))
        qd, idn, cd = self.q_down(self.enc_down(nd))
        yu = self.dec_up(qu, beat)  # [B, T, Du] normalised
        yd = self.dec_down(qd, beat)  # [B, T, Dl] normalised (contacts as logits)
        m = self.contact_mask
        rec = F.smooth_l1_loss(yu, nu) + F.smooth_l1_loss(yd[..., ~m], nd[..., ~m])
        vel = F.smooth_l1_loss(yu[:, 1:] - yu[:, :-1], nu[:, 1:] - nu[:, :-1]) + F.smooth_l1_loss(
            yd[:, 1:, ~m] - yd[:, :-1, ~m], nd[:, 1:, ~m] - nd[:, :-1, ~m]
        )
        contact = F.binary_cross_entropy_with_logits(yd[..., m], down[..., m].clamp(0, 1))
        raw_up, raw_down = self._denorm(yu, yd)
        loss = cfg.w_rec * rec + cfg.w_vel * vel + cfg.w_contact * contact + cfg.beta * (cu + cd)
        return {
            "loss": loss,
            "rec": rec.detach(),
            "vel": vel.detach(),
            "contact": contact.detach(),
            "commit": (cu + cd).detach(),
            "up": raw_up,
            "down": raw_down,
            "idx_up": iu,
            "idx_down": idn,
        }


def save_vqvae(model: VQVAE, out_dir: Path, extra: dict | None = None) -> None:
    """Write ``vqvae.safetensors`` + ``vqvae.json`` into ``out_dir``."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / "vqvae.safetensors"))
    meta = {"config": asdict(model.cfg), **(extra or {})}
    (out_dir / "vqvae.json").write_text(json.dumps(meta, indent=2))


def load_vqvae(model_dir: Path, device: str = "cpu") -> VQVAE:
    """Load a VQ-VAE written by :func:`save_vqvae`; FileNotFoundError names what is missing, ValueError what is bad."""
    cfg_path = model_dir / "vqvae.json"
    w_path = model_dir / "vqvae.safetensors"
    for p in (cfg_path, w_path):
        if not p.is_file():
            have = sorted(x.name for x in model_dir.glob("*")) if model_dir.is_dir() else "no such folder"
            raise FileNotFoundError(f"missing {p.name} in {model_dir} (have: {have})")
    try:
        meta = json.loads(cfg_path.read_text())
        cfg = VQVAEConfig.from_dict(meta["config"] if isinstance(meta, dict) and "config" in meta else None)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{cfg_path}: {exc}") from None
    model = VQVAE(cfg)
    from engine.models.gpt import load_weights

    try:
        model.load_state_dict(load_weights(w_path, device))
    except RuntimeError as exc:
        raise ValueError(f"{w_path}: weights do not fit vqvae.json ({str(exc).splitlines()[0][:160]})") from None
    model.eval()
    return model.to(device)

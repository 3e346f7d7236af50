"""Auxiliary GPT training loss: decoded joint speed should dip where the music's predicted beat falls.

Cross-entropy alone teaches the GPT which tokens follow which; with a handful of takes it learns no timing
rule from the phase input (plain samples score chance-level Beat Align Score even on training music). This
loss looks at what the tokens *mean*: the GPT's predicted distributions are sampled with straight-through
Gumbel-softmax (the forward pass decodes real codebook entries, so the decoder sees what it was trained on;
gradients flow through the soft probabilities), decoded by the frozen VQ-VAE, turned into joint positions by
forward kinematics, and the smoothed mean joint speed is read at the beat frames. The loss is the speed at a
beat over the mean speed of its neighbourhood (``radius`` frames either side): below 1 when the motion slows
into the beat, which is what Bailando's motion beats (speed minima) need.

The beat frames come from the GPT's own conditioning: the frames where the *predicted* phase input crosses 0
(the rule of :func:`engine.models.beat_guidance.beat_frames`). So what the model learns is "slow down where the
phase input says a beat is", whatever tracker produced that phase (issue 10 item 7).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.models.conditioning import FRAMES_PER_TOKEN
from engine.models.vector_fk import VectorFK
from engine.models.vqvae import VQVAE
from engine.train.losses import gauss_kernel, smoothed_speed


def predicted_beat_frames(cond: torch.Tensor) -> torch.Tensor:
    """Frames on which a predicted beat falls, from the phase (sin, cos) entries of each token's conditioning.

    Args:
        cond: [B, N, COND_DIM] per-token conditioning (the last ``2 * FRAMES_PER_TOKEN`` entries are the
            predicted phase of the token's frames as sin/cos pairs).

    Returns:
        [B, N * FRAMES_PER_TOKEN] bool; the same frames as :func:`engine.models.beat_guidance.beat_frames`
        gives token by token (a beat is within half a frame of frame k: phase within half a step of 0).
    """
    b, n, _ = cond.shape
    sc = cond[..., -2 * FRAMES_PER_TOKEN :].reshape(b, n, FRAMES_PER_TOKEN, 2).double()
    ph = torch.remainder(torch.atan2(sc[..., 0], sc[..., 1]) / (2 * math.pi), 1.0)  # [B, N, 4]
    step = torch.remainder(ph[..., 1:] - ph[..., :-1], 1.0).mean(-1, keepdim=True)  # [B, N, 1]
    near = torch.minimum(ph, 1.0 - ph) <= step / 2
    return (near & (step > 0)).reshape(b, n * FRAMES_PER_TOKEN)


class BeatSpeedLoss(torch.nn.Module):
    """Speed-at-beat contrast of decoded GPT predictions (see the module docstring); the VQ-VAE stays frozen.

    Args:
        vq: the trained VQ-VAE the GPT's tokens belong to (its parameters are not trained here).
        radius: neighbourhood of a beat, frames either side, whose mean speed the beat's speed is compared to.
        sigma: Gaussian smoothing of the speed curve, frames (2.5 at 30 fps = Bailando's 5 at 60 fps).
        tau: Gumbel-softmax temperature.
        skip_tokens: beats in the first tokens of a window are not scored (the causal decoder lacks history).
        kind: "offset" (default: squared distance from the beat to the soft minimum of the speed around it) or
            "contrast" (speed at the beat over the neighbourhood's mean).
        temp: softness of the "offset" minimum, in units of the neighbourhood's mean speed.
    """

    def __init__(self, vq: VQVAE, radius: int = 7, sigma: float = 2.5, tau: float = 1.0, skip_tokens: int = 2,
                 kind: str = "offset", temp: float = 0.02) -> None:
        super().__init__()
        self.vq = vq.eval()
        for p in self.vq.parameters():
            p.requires_grad_(False)
        self.fk = VectorFK()
        self.radius = int(radius)
        self.tau = float(tau)
        if kind not in ("offset", "contrast"):
            raise ValueError(f"beat loss kind must be 'offset' or 'contrast', got {kind!r}")
        self.kind = kind
        self.temp = float(temp)
        self.skip = int(skip_tokens) * FRAMES_PER_TOKEN
        self.register_buffer("kernel", gauss_kernel(sigma)[None, None], persistent=False)
        self.kernel: torch.Tensor

    def decode_probs(self, p_up: torch.Tensor, p_down: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode distributions over the codebooks [B, N, V] x 2 (one-hot or soft) -> raw vectors [B, 4N, D]."""
        vq = self.vq
        zu = p_up @ vq.q_up.codebook  # [B, N, C]
        zd = p_down @ vq.q_down.codebook
        return vq._denorm(vq.dec_up(zu), vq.dec_down(zd))

    def speed(self, upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
        """Smoothed mean joint speed (m/s) [B, T - 1] of raw vectors [B, T, D]; column i between frames i, i + 1.

        Root horizontal motion included (as the Beat Align Score and beat guidance measure it)."""
        return smoothed_speed(self.fk(upper, lower), lower, self.kernel[0, 0])

    def _windows(self, speed: torch.Tensor, beats: torch.Tensor, valid: torch.Tensor) -> torch.Tensor | None:
        """Speed around every scored beat, [M, 2r + 1] (column r = the beat), each row over its mean; None when
        no beat is scored. A beat is scored when its whole neighbourhood lies in the window on real frames."""
        r = self.radius
        s_len = speed.shape[1]
        cols = torch.arange(beats.shape[1], device=beats.device)
        ok = beats & (cols >= max(self.skip, r)) & (cols < s_len - r)
        win_valid = F.max_pool1d((~valid).float()[:, None], 2 * r + 1, stride=1, padding=r)[:, 0] < 0.5
        ok = ok & win_valid
        if not bool(ok.any()):
            return None
        bi, fi = ok.nonzero(as_tuple=True)
        win = speed[bi[:, None], fi[:, None] + torch.arange(-r, r + 1, device=speed.device)]  # [M, 2r + 1]
        return win / (win.mean(-1, keepdim=True) + 1e-3)

    def contrast(self, speed: torch.Tensor, beats: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean over scored beats of speed[beat] / mean(speed[beat - r .. beat + r]); 1.0 when none is scored.

        speed [B, S]; beats [B, T] bool (frames); valid [B, T] bool (frames with a real target)."""
        z = self._windows(speed, beats, valid)
        return speed.new_tensor(1.0) if z is None else z[:, self.radius].mean()

    def offset(self, speed: torch.Tensor, beats: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean over scored beats of the squared distance (in radii) from the beat to the soft minimum of the
        speed around it (softmax of -speed / mean / ``temp``): 0 when the speed's minimum sits on the beat,
        about 1/3 when it lies anywhere; the same 1/3-ish neutral value when no beat is scored."""
        r = self.radius
        k2 = (torch.arange(-r, r + 1, device=speed.device, dtype=speed.dtype) / r) ** 2
        z = self._windows(speed, beats, valid)
        if z is None:
            return k2.mean()
        return (torch.softmax(-z / self.temp, dim=-1) * k2).sum(-1).mean()

    def forward(self, logits_up: torch.Tensor, logits_down: torch.Tensor, cond: torch.Tensor,
                target_up: torch.Tensor) -> torch.Tensor:
        """The loss of a batch: logits [B, N, V] x 2, cond [B, N, COND_DIM], targets [B, N] (-100 = padding)."""
        v = self.vq.q_up.codebook.shape[0]  # the GPT's logits have the codebook's width (BOS is input-only)
        pu = F.gumbel_softmax(logits_up[..., :v].float(), tau=self.tau, hard=True)
        pd = F.gumbel_softmax(logits_down[..., :v].float(), tau=self.tau, hard=True)
        up, down = self.decode_probs(pu, pd)
        s = self.speed(up, down)
        beats = predicted_beat_frames(cond)
        valid = (target_up >= 0).repeat_interleave(FRAMES_PER_TOKEN, dim=1)
        return self.offset(s, beats, valid) if self.kind == "offset" else self.contrast(s, beats, valid)

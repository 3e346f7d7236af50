"""Offline dance generation through the GPT's cached step API: audio -> tokens -> poses -> BVH.

This is what ``groovecast generate`` and the evaluation run. It uses exactly the live pieces: the causal
analysis (``analyze_signal``), the per-token conditioning of :mod:`engine.models.conditioning`, one
``CrossCondGPT.step`` per token through the ring KV cache, and the causal VQ-VAE decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.frames import ENGINE_SAMPLE_RATE, MODEL_FPS
from engine.models.beat_guidance import GuidanceConfig
from engine.models.conditioning import TEXT_DIM, embed_texts, genre_id, sequence_conditions
from engine.models.dance_model import DEFAULT_MODEL_DIR, MODEL_CARD, DanceModel, load_dance_model
from engine.models.gpt import CrossCondGPT
from engine.models.pose_repr import Motion, lock_feet, metric_cmu_skeleton, vectors_to_motion
from engine.models.sampling import block_repeats, sample_tokens
from engine.models.vqvae import DOWN, VQVAE

__all__ = ["DEFAULT_MODEL_DIR", "MODEL_CARD", "DanceModel", "load_dance_model"]  # re-exported for training code

@dataclass
class Generated:
    """Result of a generation: model vectors, the motion, and the music analysis used."""

    upper: np.ndarray  # [T, 72]
    lower: np.ndarray  # [T, 61]
    motion: Motion
    tokens_up: np.ndarray  # [N]
    tokens_down: np.ndarray  # [N]
    features: np.ndarray  # [T', 40]
    beats_s: list[float]  # beats the tracker committed to


def _start_sampling(
    gpt: CrossCondGPT, cond: np.ndarray, genre: int, text: np.ndarray | None, seed: int
) -> tuple[Any, torch.Generator, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fresh cache, random stream, BOS inputs and the batch-1 genre/text/conditioning tensors."""
    bos = gpt.cfg.bos_id
    tx = torch.zeros(1, gpt.cfg.text_dim) if text is None else torch.from_numpy(np.asarray(text, np.float32))[None]
    return (
        gpt.new_cache(1),
        torch.Generator().manual_seed(seed),
        torch.tensor([bos]),
        torch.tensor([bos]),
        torch.tensor([genre], dtype=torch.long),
        tx,
        torch.from_numpy(np.asarray(cond, np.float32)),
    )


@torch.no_grad()
def generate_tokens(
    gpt: CrossCondGPT,
    cond: np.ndarray,
    genre: int = 0,
    text: np.ndarray | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    max_repeat: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample one token pair per conditioning row with the ring KV cache. cond: [N, COND_DIM].

    ``max_repeat``: the repetition guard (:func:`engine.models.sampling.block_repeats`; None or 0: off).
    """
    n = len(cond)
    m = max_repeat or 0
    cache, gen, up_prev, down_prev, g, tx, c = _start_sampling(gpt, cond, genre, text, seed)
    ups = np.full(n + m, -1, dtype=np.int64)  # the first m entries: no token yet (never a repeat)
    downs = np.full(n + m, -1, dtype=np.int64)
    for t in range(n):
        pos = torch.tensor([t])
        lu, ld, _, _ = gpt.step(up_prev, down_prev, c[t : t + 1], g, tx, pos, cache.k, cache.v, cache.kv_mask,
                                inplace=True)
        if m:
            lu = block_repeats(lu, torch.from_numpy(ups[None, t : t + m]), m)
            ld = block_repeats(ld, torch.from_numpy(downs[None, t : t + m]), m)
        up_prev = sample_tokens(lu, temperature, top_k, gen)
        down_prev = sample_tokens(ld, temperature, top_k, gen)
        ups[t + m] = int(up_prev[0])
        downs[t + m] = int(down_prev[0])
    return ups[m:].copy(), downs[m:].copy()


@torch.no_grad()
def generate_tokens_guided(
    gpt: CrossCondGPT,
    vq: VQVAE,
    cond: np.ndarray,
    genre: int = 0,
    text: np.ndarray | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    guidance: GuidanceConfig | None = None,
    max_repeat: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Beat-guided sampling (:mod:`engine.models.beat_guidance`) by the live generator at batch 1: on tokens
    near a predicted beat ``candidates`` token pairs are drawn, decoded after the committed frames, and the
    one that puts a speed minimum on the beat wins. One sampler, live and offline
    (:class:`engine.models.gpt_dancer.DanceGenerator`, torch backend, performer 0 drawing from ``seed``),
    with the repetition guard ``max_repeat`` (None or 0: off).
    """
    from engine.models.gpt_dancer import DanceGenerator
    from engine.models.protocol import Controls
    from export.torch_backend import TorchBackend

    gen = DanceGenerator(TorchBackend(gpt, capacity=1, device="cpu"), vq, seed=seed, foot_lock=False,
                         guidance=guidance or GuidanceConfig(), max_repeat=max_repeat)
    p = gen.get(gen.add_performer(Controls(genre=genre, text=text, temperature=temperature, top_k=top_k or 0)))
    n = len(cond)
    ups = np.zeros(n, dtype=np.int64)
    downs = np.zeros(n, dtype=np.int64)
    for t in range(n):
        gen.step(cond[t])
        ups[t], downs[t] = p.state.prev_up, p.state.prev_down
    return ups, downs


@torch.no_grad()
def decode_tokens(vq: VQVAE, ups: np.ndarray, downs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [N] x 2 -> model vectors [4N, 72], [4N, 61] (contacts thresholded to 0/1)."""
    u, d = vq.decode(torch.from_numpy(ups)[None].long(), torch.from_numpy(downs)[None].long())
    up = u[0].numpy().astype(np.float32)
    low = d[0].numpy().astype(np.float32)
    low[:, -4:] = (low[:, -4:] > 0.5).astype(np.float32)
    return up, low


def sample_dance_tokens(
    model: DanceModel, cond: np.ndarray, genre: int, text: np.ndarray | None, temperature: float | None = None,
    top_k: int | None = None, seed: int = 0, max_repeat: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tokens for a conditioning sequence with the model card's sampling (plain or beat-guided, repetition
    guard); ``temperature``, ``top_k`` and ``max_repeat`` override the card's (None: the card's; max_repeat 0:
    no guard)."""
    temp = model.temperature if temperature is None else temperature
    k = model.top_k if top_k is None else top_k
    m = model.max_repeat if max_repeat is None else max_repeat
    guidance = model.beat_guidance
    if guidance.enabled:
        return generate_tokens_guided(model.gpt, model.vq, cond, genre, text, temp, k, seed, guidance, m)
    return generate_tokens(model.gpt, cond, genre, text, temp, k, seed, m)


def generate_dance(
    model: DanceModel,
    audio: np.ndarray,
    sr: int = ENGINE_SAMPLE_RATE,
    genre: str | None = "salsa",
    text: str | None = None,
    seconds: float | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    seed: int = 0,
    analysis: tuple[np.ndarray, np.ndarray, np.ndarray, list[float]] | None = None,
    max_repeat: int | None = None,
) -> Generated:
    """Dance to ``audio``: analysis -> conditioning -> cached GPT steps -> VQ decode -> motion.

    ``analysis`` may pass precomputed (features, period_s, next_beat_s, beats) from ``analyze_signal``;
    ``max_repeat`` overrides the card's repetition guard (None: the card's, 0: off).
    """
    from engine.analysis.analyze import dance_analysis

    feats, period, nxt, beats = dance_analysis(audio, sr, analysis)
    n_frames = len(feats)
    if seconds is not None:
        n_frames = min(n_frames, int(seconds * MODEL_FPS))
    n_tokens = n_frames // DOWN
    if n_tokens < 1:
        raise ValueError(f"audio too short: {n_frames} frames, need at least {DOWN}")
    cond = sequence_conditions(feats, period, nxt, n_tokens)
    emb = embed_texts([text])[0] if text else np.zeros(TEXT_DIM, np.float32)
    gid = genre_id(genre)
    if gid >= model.gpt.cfg.n_genres:
        raise ValueError(f"genre {genre!r} is row {gid}, but this model has only {model.gpt.cfg.n_genres} genre rows "
                         f"(trained: {', '.join(model.card.get('trained_genres', [])) or 'unknown'})")
    ups, downs = sample_dance_tokens(model, cond, gid, emb, temperature, top_k, seed, max_repeat)
    up, low = decode_tokens(model.vq, ups, downs)
    if model.foot_lock:
        low = lock_feet(up, low)
    motion = vectors_to_motion(up, low, metric_cmu_skeleton())
    return Generated(upper=up, lower=low, motion=motion, tokens_up=ups, tokens_down=downs, features=feats,
                     beats_s=[b for b in beats if b < n_tokens * DOWN / MODEL_FPS])


def write_motion_bvh(motion: Motion, path: Path) -> None:
    """Write a Motion as BVH (CMU hierarchy in metres, ZXY channel order like the source files)."""
    from engine.skeleton.bvh import write_bvh

    write_bvh(path, motion.skeleton, motion.root_pos, 1.0 / motion.fps, local_rot_mats=motion.rot,
              rotation_orders="ZXY")

"""Salsa couples for the follower model: both dancers of each take, aligned frame by frame, with their placement.

The packed GPT data keeps each dancer as its own sequence (root as velocity, so where the two stand is lost);
this module loads the salsa takes again (subject 60 leads, 61 follows; 60 fps true rate, see
:mod:`engine.train.sources`) and keeps both roots and headings, with the same tempo warps, mirror images and
cached synthetic music as :func:`engine.train.dataset.build_sequences` (same cache keys and seeds).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.models.conditioning import sequence_conditions
from engine.models.follower import hip_yaw, place_features, place_targets, relative_position
from engine.models.pose_repr import Motion, mirror_vectors, motion_to_vectors
from engine.models.vqvae import DOWN, VQVAE
from engine.train.cmu_data import Take, load_split, warp_take
from engine.train.dataset import DEFAULT_WARPS, TRAINED_GENRES, MusicTrack, _fit, default_cache_dir, music_for_take

log = logging.getLogger(__name__)


@dataclass
class Dancer:
    """One partner of a couple: model vectors and floor placement per frame (30 fps)."""

    upper: np.ndarray  # [T, 72]
    lower: np.ndarray  # [T, 61]
    xz: np.ndarray  # [T, 2] root on the floor, metres
    yaw: np.ndarray  # [T] hip heading, radians


@dataclass
class CouplePair:
    """A take variant's two dancers (leader = subject 60, follower = 61) and its music."""

    name: str
    lead: Dancer
    follow: Dancer
    music: MusicTrack


def _dancer(motion: Motion, mirror: bool) -> Dancer:
    up, low = motion_to_vectors(motion)
    xz = motion.root_pos[:, [0, 2]].astype(np.float64)
    yaw = hip_yaw(motion.rot[:, 0])
    if mirror:
        up, low = mirror_vectors(up, low)
        xz = xz * np.array([-1.0, 1.0])
        yaw = -yaw
    return Dancer(upper=up, lower=low, xz=xz, yaw=yaw)


def take_pairs(take: Take, cache_dir: Path, seed: int, mirror: bool) -> list[CouplePair]:
    """The couple of one take variant (and its mirror image)."""
    if take.style != "salsa" or take.dancer_ids[:2] != ("60", "61"):
        raise ValueError(f"{take.name}: a couple needs the salsa lead (60) and follow (61), got {take.dancer_ids}")
    m = music_for_take(take, cache_dir, seed)
    n = take.n_frames
    music = MusicTrack(audio=np.zeros(0, np.float32), features=_fit(m.features, n), period_s=_fit(m.period_s, n),
                       next_beat_s=_fit(m.next_beat_s, n), bpm=_fit(m.bpm, n), beats_s=m.beats_s)
    out = []
    for mir in (False, True) if mirror else (False,):
        out.append(CouplePair(name=take.name + ("_m" if mir else ""), lead=_dancer(take.dancers[0], mir),
                              follow=_dancer(take.dancers[1], mir), music=music))
    return out


def build_pairs(data_dir: Path | None = None, split: str = "train", warps: tuple[float, ...] = DEFAULT_WARPS,
                cache_dir: Path | None = None, mirror: bool = True, max_takes: int | None = None) -> list[CouplePair]:
    """All salsa couples of a split; training adds tempo warps and mirror images, validation is as captured."""
    cache_dir = cache_dir or default_cache_dir()
    takes = load_split(data_dir, split, styles=("salsa",))[: max_takes or None]
    if split != "train":
        warps, mirror = (1.0,), False
    out: list[CouplePair] = []
    for take in takes:
        for wi, w in enumerate(warps):
            variant = take if w == 1.0 else warp_take(take, w)
            seed = 1000 * int(take.take) + wi + 100_000 * TRAINED_GENRES.index(take.style)
            out.extend(take_pairs(variant, cache_dir, seed, mirror))
            log.info("couple data: %s (%d frames)", variant.name, variant.n_frames)
    return out


@dataclass
class CoupleTokens:
    """A couple in token space: what the follower trains on (N steps)."""

    name: str
    lead_up: np.ndarray  # [N] int64
    lead_down: np.ndarray  # [N]
    up: np.ndarray  # [N] follower tokens
    down: np.ndarray  # [N]
    cond: np.ndarray  # [N, cond_dim]
    place: np.ndarray  # [N, PLACE_DIM] leader at the end of step t seen from the follower at the end of t - 1
    target: np.ndarray  # [N, TARGET_DIM] follower at the end of step t in the leader's frame


def step_placement(lead: Dancer, follow: Dancer, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Placement features and targets of ``n`` steps (DOWN frames each) from real placements."""
    end = np.arange(n) * DOWN + DOWN - 1  # last frame of each step
    prev = np.concatenate([[0], end[:-1]])  # the follower's last frame before the step (frame 0 at the start)
    feats = place_features(lead.xz[end], lead.yaw[end], follow.xz[prev], follow.yaw[prev])
    targ = place_targets(lead.xz[end], lead.yaw[end], follow.xz[end], follow.yaw[end])
    return feats, targ


@torch.no_grad()
def tokenize_pairs(vq: VQVAE, pairs: list[CouplePair]) -> list[CoupleTokens]:
    """Encode both dancers with the VQ-VAE and attach music rows and placement per step."""
    vq.eval()
    out = []
    for p in pairs:
        t = (min(len(p.lead.upper), len(p.follow.upper)) // DOWN) * DOWN
        toks = []
        for d in (p.lead, p.follow):
            iu, idn = vq.encode(torch.from_numpy(d.upper[:t])[None], torch.from_numpy(d.lower[:t])[None])
            toks.append((iu[0].numpy().astype(np.int64), idn[0].numpy().astype(np.int64)))
        n = t // DOWN
        cond = sequence_conditions(p.music.features, p.music.period_s, p.music.next_beat_s, n)
        feats, targ = step_placement(p.lead, p.follow, n)
        out.append(CoupleTokens(name=p.name, lead_up=toks[0][0], lead_down=toks[0][1], up=toks[1][0], down=toks[1][1],
                                cond=cond, place=feats, target=targ))
    return out


def start_offset(pairs: list[CouplePair]) -> tuple[float, float]:
    """Median [forward, lateral] of the follower in the leader's frame over all frames of the pairs (where a
    couple stands in its hold: the placement a generated couple starts from)."""
    rows = []
    for p in pairs:
        n = min(len(p.lead.xz), len(p.follow.xz))
        rows.append(relative_position(p.lead.xz[:n], p.lead.yaw[:n], p.follow.xz[:n]))
    med = np.median(np.concatenate(rows), axis=0)
    return float(med[0]), float(med[1])


def min_root_distance(pairs: list[CouplePair]) -> float:
    """Smallest root distance between the partners over all frames of the pairs (metres)."""
    return float(min(np.linalg.norm(p.lead.xz[: len(p.follow.xz)] - p.follow.xz[: len(p.lead.xz)], axis=1).min()
                     for p in pairs))

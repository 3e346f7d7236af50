"""Offline dance generation by the live generator at batch 1: audio -> tokens -> poses -> BVH.

This is what ``groovecast generate`` and the evaluation run. It is the live path, not a copy of it: the
causal analysis (``analyze_signal``), the per-token conditioning of :mod:`engine.models.conditioning` (the
rows the live music window builds at lookahead 0), and :class:`engine.models.gpt_dancer.DanceGenerator`
stepped for one performer (plain or beat-guided sampling, streaming VQ-VAE decode, foot locking).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.frames import ENGINE_SAMPLE_RATE, MODEL_FPS
from engine.models.beat_guidance import GuidanceConfig
from engine.models.conditioning import genre_id, sequence_conditions
from engine.models.dance_model import DEFAULT_MODEL_DIR, MODEL_CARD, DanceModel, load_dance_model
from engine.models.pose_repr import Motion, metric_cmu_skeleton
from engine.models.staging import DEFAULT_STAGING, StagedModel, StagingConfig
from engine.models.text_prompts import phrase_baseline, prompt_embedder
from engine.models.vqvae import DOWN, VQVAE
from engine.skeleton import rotations as R

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


@dataclass
class Sampled:
    """One performer's dance from the live generator at batch 1: its tokens, model vectors and output frames."""

    tokens_up: np.ndarray  # [N]
    tokens_down: np.ndarray  # [N]
    upper: np.ndarray  # [4N, 72] model vectors the streaming decoder gave (after foot locking, when on)
    lower: np.ndarray  # [4N, 61]
    root: np.ndarray  # [4N, 3] float32: the model's frames (unstaged)
    quat: np.ndarray  # [4N, J, 4] float32
    # with ``staging``: the frames the live engine would play (staged as it stages them), float64
    staged_root: np.ndarray | None = None  # [4N, 3]
    staged_quat: np.ndarray | None = None  # [4N, J, 4]


@torch.no_grad()
def sample_dance(
    model: DanceModel,
    cond: np.ndarray,
    genre: int = 1,
    text: np.ndarray | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    seed: int = 0,
    guidance: GuidanceConfig | None = None,
    max_repeat: int | None = None,
    genre_guidance: float | None = None,
    staging: StagingConfig | None = None,
) -> Sampled:
    """Dance to conditioning rows ``cond`` [N, COND_DIM] with the live generator at batch 1.

    One path for plain and beat-guided sampling, offline and live: a
    :class:`engine.models.gpt_dancer.DanceGenerator` on the torch backend with one performer (seeded
    ``seed``), stepped once per row exactly as the runtime steps it (GPT step through the ring KV cache,
    sampling with the repetition guard, beat guidance when on, streaming VQ-VAE decode, foot locking when the
    card asks). The live engine built with ``backend="torch", decode="torch"`` produces the same tokens and
    frames (``tests/runtime/test_offline_is_live.py``). ``temperature``, ``top_k``, ``guidance`` and
    ``max_repeat`` default to the card's (``max_repeat`` 0: no guard), and so does ``genre_guidance`` (1: off;
    on, the generator's unconditional row makes the backend batch 2). ``staging``: each step's frames staged as the
    live engine stages them (:class:`engine.models.staging.StagedModel`: the same :class:`Stager`, which tells the
    generator where the dancer stands after each step, for beat guidance's stage term), in ``staged_root`` /
    ``staged_quat``; None: not staged (the generator is told nothing).
    """
    from engine.models.gpt_dancer import DanceGenerator, cache_rows
    from engine.models.protocol import Controls
    from export.torch_backend import TorchBackend

    temp = model.temperature if temperature is None else temperature
    k = model.top_k if top_k is None else top_k
    gg = model.genre_guidance if genre_guidance is None else genre_guidance
    tg = model.text_guidance
    rows = cache_rows(1, gg, tg, bool(model.text_guidance_attributes))
    gen = DanceGenerator(TorchBackend(model.gpt, capacity=rows, device="cpu"), model.vq, seed=seed,
                         foot_lock=model.foot_lock, guidance=model.beat_guidance if guidance is None else guidance,
                         max_repeat=model.max_repeat if max_repeat is None else max_repeat, genre_guidance=gg,
                         text_guidance=tg, **model.generator_options(), text_prompts=model.text_prompts,
                         text_guidance_attributes=model.text_guidance_attributes,
                         text_baseline=phrase_baseline if model.text_baseline == "phrases" else None)  # as live
    gen.keep_rewinds(0)  # nothing rewinds an offline render: keep no state for it
    p = gen.get(gen.add_performer(Controls(genre=genre, text=text, temperature=temp, top_k=k or 0)))
    n = len(cond)
    ups = np.zeros(n, dtype=np.int64)
    downs = np.zeros(n, dtype=np.int64)
    upper, lower, roots, quats = [], [], [], []
    staged = None if staging is None else StagedModel(gen, staging)
    s_roots, s_quats = [], []
    for t in range(n):
        if staged is None:
            (sf,) = gen.step(cond[t])
        else:  # the staging wraps the generator as the live engine's does: the raw frames are the model's output
            (sf,) = staged.inner.step(cond[t])
            staged_sf = staged.stage_frames([sf])[0]
            s_roots.append(staged_sf.root)
            s_quats.append(staged_sf.quat)
        ups[t], downs[t] = int(p.tok_up[-1]), int(p.tok_down[-1])
        assert p.vectors is not None
        upper.append(p.vectors[0])
        lower.append(p.vectors[1])
        roots.append(sf.root)
        quats.append(sf.quat)
    return Sampled(tokens_up=ups, tokens_down=downs, upper=np.concatenate(upper), lower=np.concatenate(lower),
                   root=np.concatenate(roots), quat=np.concatenate(quats),
                   staged_root=np.concatenate(s_roots) if s_roots else None,
                   staged_quat=np.concatenate(s_quats) if s_quats else None)


@torch.no_grad()
def decode_tokens(vq: VQVAE, ups: np.ndarray, downs: np.ndarray,
                  beat: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [N] x 2 -> model vectors [4N, 72], [4N, 61] (contacts thresholded to 0/1). ``beat`` [4N, F]: the
    per-frame beat features a beat-conditioned decoder reads (``conditioning.sequence_beat_features``)."""
    bt = torch.from_numpy(np.ascontiguousarray(beat[: 4 * len(ups)]))[None] if beat is not None else None
    u, d = vq.decode(torch.from_numpy(ups)[None].long(), torch.from_numpy(downs)[None].long(), bt)
    up = u[0].numpy().astype(np.float32)
    low = d[0].numpy().astype(np.float32)
    low[:, -4:] = (low[:, -4:] > 0.5).astype(np.float32)
    return up, low


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
    staging: StagingConfig | None = DEFAULT_STAGING,
    genre_guidance: float | None = None,
) -> Generated:
    """Dance to ``audio``: causal analysis -> conditioning rows -> the live generator at batch 1 (:func:`sample_dance`).

    ``motion`` holds exactly the frames the live engine would hand to playout for this audio (staged).

    ``analysis`` may pass precomputed (features, period_s, next_beat_s, beats) from ``analyze_signal``;
    ``max_repeat`` overrides the card's repetition guard (None: the card's, 0: off). ``staging`` is the live
    engine's staging filter run over the motion one step at a time (:func:`engine.models.staging.stage_arrays`;
    None: the model's raw motion). ``upper``/``lower`` stay the model's own vectors.
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
    # As the live engine: no text row without a prompt; the prompt embedded as the model reads it.
    emb = prompt_embedder(model.text_prompts)([text])[0] if text else None
    gid = genre_id(genre)
    if gid >= model.gpt.cfg.n_genres:
        raise ValueError(f"genre {genre!r} is row {gid}, but this model has only {model.gpt.cfg.n_genres} genre rows "
                         f"(trained: {', '.join(model.card.get('trained_genres', [])) or 'unknown'})")
    d = sample_dance(model, cond, gid, emb, temperature, top_k, seed, max_repeat=max_repeat,
                     genre_guidance=genre_guidance, staging=staging)  # staged one step at a time, as live
    root, quat = d.root.astype(np.float64), d.quat.astype(np.float64)
    if d.staged_root is not None and d.staged_quat is not None:
        root, quat = d.staged_root.astype(np.float64), d.staged_quat.astype(np.float64)
    motion = Motion(metric_cmu_skeleton(), root, R.quat_to_matrix(quat), float(MODEL_FPS))
    return Generated(upper=d.upper, lower=d.lower, motion=motion, tokens_up=d.tokens_up, tokens_down=d.tokens_down,
                     features=feats, beats_s=[b for b in beats if b < n_tokens * DOWN / MODEL_FPS])


def write_motion_bvh(motion: Motion, path: Path) -> None:
    """Write a Motion as BVH (CMU hierarchy in metres, ZXY channel order like the source files)."""
    from engine.skeleton.bvh import write_bvh

    write_bvh(path, motion.skeleton, motion.root_pos, 1.0 / motion.fps, local_rot_mats=motion.rot,
              rotation_orders="ZXY")


@dataclass(frozen=True)
class KeyframeSpec:
    """``POSE.bvh@SECONDS[:upper|:lower]``: the first frame of a motion file pinned at a time of the dance."""

    path: Path
    seconds: float
    joints: str = "all"

    @classmethod
    def parse(cls, text: str) -> KeyframeSpec:
        """Parse the ``--keyframe`` argument; a malformed one is a ValueError saying the expected form."""
        form = "expected POSE.bvh@SECONDS, optionally followed by :upper or :lower"
        path, at, when = text.rpartition("@")
        if not at or not path:
            raise ValueError(f"--keyframe {text!r}: {form}")
        joints = "all"
        if ":" in when:
            when, _, joints = when.partition(":")
        if joints not in ("all", "upper", "lower"):
            raise ValueError(f"--keyframe {text!r}: joints must be upper or lower ({form})")
        try:
            sec = float(when)
        except ValueError:
            raise ValueError(f"--keyframe {text!r}: {when!r} is not a number of seconds ({form})") from None
        if not np.isfinite(sec) or sec < 0:
            raise ValueError(f"--keyframe {text!r}: the time must be >= 0 seconds")
        return cls(Path(path), sec, joints)


def keyframe_pose(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first frame of a motion file as (root [3], joint-local quaternions [43, 4]) of the engine skeleton.

    A non-CMU humanoid is retargeted (``engine.skeleton.retarget``); the root height is set so the lowest
    foot point is on the floor (the file's units and floor do not matter).
    """
    from engine.models.pose_repr import foot_points
    from engine.skeleton import rotations as R
    from engine.skeleton.bvh import BvhError
    from engine.skeleton.motion import load_motion
    from engine.skeleton.retarget import RetargetError, retarget_motion
    from engine.skeleton.skeleton import get_skeleton, skeleton_names

    try:
        m = load_motion(path)
        if m.skeleton.name not in skeleton_names():
            m = retarget_motion(m, get_skeleton("cmu"), drop_tposes=False)
    except (FileNotFoundError, BvhError, RetargetError, ValueError) as exc:
        raise ValueError(f"keyframe pose {path}: {exc}") from None
    skel = metric_cmu_skeleton()
    if m.skeleton.num_joints != skel.num_joints:
        raise ValueError(f"keyframe pose {path}: {m.skeleton.num_joints} joints, the engine skeleton has "
                         f"{skel.num_joints}")
    quat = np.asarray(m.rotations[0], dtype=np.float64)
    feet = foot_points(skel, np.zeros((1, 3)), R.quat_to_matrix(quat)[None])  # [1, 4, 3]
    return np.array([0.0, -float(feet[..., 1].min()), 0.0]), quat


def render_controlled(
    model_dir: Path | None, audio: np.ndarray, sr: int, genre: str = "salsa", text: str | None = None,
    energy: float | None = None, keyframes: tuple[KeyframeSpec, ...] = (), seconds: float | None = None,
    seed: int = 0, temperature: float | None = None, beat_guidance: int | None = None, max_repeat: int | None = None,
    genre_guidance: float | None = None, text_guidance: float | None = None, text_steer: float | None = None,
) -> tuple[Motion, list[float]]:
    """A dance with controls, rendered by the live model at batch 1 (``engine.runtime.offline.render``):
    the same generator, energy input, keyframe slots and in-betweening as ``play``/``live``.
    Keyframes are pinned before the first step at their frame (``round(seconds * 30)``)."""
    from engine.runtime.assemble import ModelSpec, build_model
    from engine.runtime.offline import render

    model = build_model(ModelSpec(model=model_dir, genre=genre or "salsa", text=text, energy=energy, seed=seed,
                                  temperature=temperature, beat_guidance=beat_guidance, max_repeat=max_repeat,
                                  genre_guidance=genre_guidance, text_guidance=text_guidance, decode="torch",
                                  text_steer=text_steer))
    pid = model.performer_ids()[0]
    for kf in keyframes:
        if not model.capabilities.keyframes:
            raise ValueError("this model has no keyframe slots")
        root, quat = keyframe_pose(kf.path)
        model.set_keyframe(pid, round(kf.seconds * MODEL_FPS) + 1, root, quat, kf.joints)
    r = render(model, audio, sr, seconds=seconds)
    return r.motion, r.beats_s

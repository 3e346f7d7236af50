"""Does each control do what it says? Paired dances through the live generator, measured (``eval --controls``).

Every dance is rendered by the live model kind at batch 1 (:func:`engine.runtime.assemble.build_model`, the
generator ``play``/``live`` run) on the music of the held-out validation clips, 12 s each by default. A
*pair* is the same clip, the same random stream and the same genre under two settings of one control, so the
difference between its two dances is the control's doing. Per control:

* **energy** (0, 0.25, 0.5, 0.75, 1): mean root-relative joint speed per level (goal: monotonic); a pair is
  (0, 1), a success when level 1 moves faster. Beside it, real motion's own FID cost of energy: the held-out
  takes' pieces by speed tercile (:func:`real_by_energy`); and each level's FID_k against the real 4 s segments
  of its own energy tercile within each style (:func:`energy_tercile`, :func:`tercile_pieces`), of the training
  takes and of the held-out takes (with the latter's noise floor, :func:`half_split_fid`): is a fast dance far
  from real motion, or only from the average of it?
* **text**, per attribute, opposite prompts (``captions.EVAL_PROMPTS``, trained phrasings, and
  ``captions.HELD_OUT_PROMPTS``, paraphrases no caption contains): the attribute the prompt names, measured
  as captions were made (``captions.clip_attributes``); a success when the asked-for-high dance measures higher
  (goal: >= 80 % of pairs). Beside it, per prompt, whether it stops the dance (:func:`stall_measures`): the
  dance's speed, its slowest 2 s window and its share of frozen 2 s windows (below :data:`FREEZE_MS`) against the
  uncontrolled dance on the same music and seed; a prompt other than a calm one must not freeze more windows than
  the uncontrolled dances by more than :data:`STALL_MARGIN` (the paired success alone passed while "spinning"
  stood still for 6 s).
* **keyframes**: a real pose (a frame of another held-out take) pinned 6 s ahead, for all joints, the upper
  and the lower body: mean joint position error at the target frame (the pinned joints, root-relative, in
  the dancer's heading) with the full mechanism, with the GPT's keyframe slots only (blend off), and with no
  keyframe (how far the dance is from that pose anyway); the highest joint speed around the target against
  the real data's 99.9th percentile; the speed in the 2 s after the release against the same dance without
  a keyframe (the dance continues).
* **genre switch**: 8 s in one style then another; time until a style classifier on 0.5 s windows sees the
  new style (and the share of switches where it began within one beat of the music), and the highest mean
  joint speed around the switch (a pose snap) against 1.2x the real p99.9.

Effect size is the paired Cohen's d (mean paired difference / its standard deviation). The cost of a control
is FID_k of its dances against the real training takes beside the uncontrolled dances' (goal: within 1.5x).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.frames import MODEL_FPS
from engine.models.conditioning import FRAMES_PER_TOKEN, genre_id, sequence_conditions
from engine.models.inbetween import REAL_JOINT_SPEED_P999, REAL_MEAN_SPEED_P999, PoseTarget, joint_mask
from engine.models.pose_repr import Motion, motion_to_vectors, vectors_to_motion
from engine.models.staging import StagingConfig
from engine.models.text_prompts import prompt_embedder
from engine.skeleton import rotations as R
from engine.train import captions as C
from engine.train import metrics as M
from engine.train.dataset import Sequence
from engine.train.evaluate import points, style_of, style_of_sequence
from engine.train.style_classifier import train_style_classifier, windows

#: Energy levels measured.
ENERGY_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The measured controls.
PARTS = ("energy", "text", "keyframes", "genre")
#: Style classifier window of the genre-switch measure (frames): 0.5 s, 99.9-100 % on held-out real takes.
SWITCH_WINDOW = 15
#: The FID cost bar: a controlled row's FID_k within this factor of the uncontrolled row's.
FID_BAR = 1.5
#: Window of the stall measure (s): as watched (``bench/reports/watch.md`` quotes the speed per 2 s).
STALL_WINDOW_S = 2.0
#: A 2 s window whose mean root-relative joint speed is below this (m/s) counts as frozen. About the 5th percentile of
#: the real training takes' 2 s windows (0.131 m/s; 6.6 % of them are slower than 0.15, mostly the standing starts
#: and ends of takes and modern's held poses; real salsa's 5th percentile 0.144), and above the watched stall (0.10-0.15
#: m/s in the "spinning" dance at seed 0). Uncontrolled dances of the shipped model: 1-2 % of windows.
FREEZE_MS = 0.15
#: A prompt stalls the dance when the share of its dances' 2 s windows that are frozen exceeds the uncontrolled
#: dances' share (same music and seeds) by more than this: more than one window in 20 beyond what the dance does
#: anyway (the real takes' own share of such windows, 6.6 %, is of that size).
STALL_MARGIN = 0.05


@dataclass
class Dance:
    """One rendered dance: model vectors and world points [T, 23, 3] of the FK layout."""

    upper: np.ndarray
    lower: np.ndarray
    pos: np.ndarray
    root: np.ndarray  # [T, 3] of the full skeleton (after the in-betweening)
    quat: np.ndarray  # [T, J, 4]


class Renderer:
    """Renders dances with the live generator of a model folder, one performer, re-seeded per dance."""

    def __init__(self, model_dir: Path | None, beat_guidance: int | None = None,
                 genre_guidance: float | None = None, text_guidance: float | None = None,
                 text_steer: float | None = None, staging: StagingConfig | None = None) -> None:
        from engine.runtime.assemble import ModelSpec, build_model

        self.model = build_model(ModelSpec(model=model_dir, decode="torch", beat_guidance=beat_guidance,
                                           genre_guidance=genre_guidance, text_guidance=text_guidance,
                                           text_steer=text_steer, staging=staging or StagingConfig()))
        self.args = (model_dir, beat_guidance, genre_guidance, text_guidance, text_steer)
        self.gen: Any = self.model
        self.pid = self.model.performer_ids()[0]
        self.skel = self.model.skeleton
        self._text: dict[str, np.ndarray] = {}

    def text(self, prompt: str) -> np.ndarray:
        if prompt not in self._text:  # embedded as the live engine embeds it (the model's text_prompts)
            self._text[prompt] = prompt_embedder(self.model.capabilities.text_prompts)([prompt])[0]
        return self._text[prompt]

    def dance(self, cond: np.ndarray, seed: int, genre: str, text: str | None = None, energy: float | None = None,
              keyframe: tuple[int, np.ndarray, np.ndarray, str] | None = None, blend: bool = True,
              switch: tuple[int, str] | None = None) -> Dance:
        """cond [N, cond_dim] -> a dance; ``keyframe`` = (frame, root [3], quat [J, 4], joints);
        ``switch`` = (token, genre) changes the genre before that token."""
        g = self.gen
        g.reset(self.pid, np.zeros(2))
        p = g.get(self.pid)
        p.rng.manual_seed(seed)
        c = p.controls
        c.genre = genre_id(genre)
        c.text = self.text(text) if text else None
        c.energy = energy
        if keyframe is not None:
            frame, root, quat, joints = keyframe
            g.set_keyframe(self.pid, frame + 1, root, quat, joints)
            if not blend:
                p.inbetween.clear()
        roots, quats = [], []
        for t in range(len(cond)):
            if switch is not None and t == switch[0]:
                c.genre = genre_id(switch[1])
            for sf in g.step(cond[t]):
                if sf.pid == self.pid:
                    roots.append(sf.root)
                    quats.append(sf.quat)
        root = np.concatenate(roots).astype(np.float64)
        quat = np.concatenate(quats).astype(np.float64)
        up, low = motion_to_vectors(Motion(self.skel, root, R.quat_to_matrix(quat), MODEL_FPS))
        return Dance(upper=up, lower=low, pos=points(up, low), root=root, quat=quat)


def paired_d(diff: np.ndarray) -> float:
    """Paired Cohen's d: mean difference / its standard deviation (inf-safe)."""
    sd = float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0
    return float(np.mean(diff) / sd) if sd > 1e-12 else float("inf") * float(np.sign(np.mean(diff)))


def mean_speed(pos: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(M.root_relative(pos), axis=0), axis=-1).mean() * MODEL_FPS)


def window_speeds(pos: np.ndarray, seconds: float = STALL_WINDOW_S) -> np.ndarray:
    """Mean root-relative joint speed (m/s) of each whole ``seconds`` window of a dance pos [T, J, 3], back to back."""
    n = round(seconds * MODEL_FPS)
    return np.array([mean_speed(pos[a : a + n]) for a in range(0, len(pos) - n + 1, n)])


def stall_measures(dances: list[np.ndarray], base: list[np.ndarray], calm: bool = False) -> dict[str, Any]:
    """Does a prompt stop the dance? ``dances`` [T, J, 3] under the prompt, ``base`` the uncontrolled dances on the
    same music and seeds (pair by pair): the mean speed and its ratio to the uncontrolled dance's (median over
    pairs), the slowest 2 s window and its ratio, the share of frozen 2 s windows (< :data:`FREEZE_MS`) and of
    dances with one, beside the uncontrolled dances'. ``stalls``: the frozen share exceeds the uncontrolled one by
    more than :data:`STALL_MARGIN` (None for a ``calm`` prompt, which may ask for stillness)."""
    w = [window_speeds(p) for p in dances]
    bw = [window_speeds(p) for p in base]
    frozen = float(np.mean(np.concatenate(w) < FREEZE_MS))
    base_frozen = float(np.mean(np.concatenate(bw) < FREEZE_MS))
    return {"speed_ms": float(np.mean([mean_speed(p) for p in dances])),
            "speed_ratio": float(np.median([mean_speed(p) / max(mean_speed(b), 1e-9)
                                            for p, b in zip(dances, base, strict=True)])),
            "slowest_window_ms": float(np.mean([x.min() for x in w])),
            "slowest_window_ratio": float(np.median([x.min() / max(y.min(), 1e-9)
                                                     for x, y in zip(w, bw, strict=True)])),
            "frozen_windows": frozen, "frozen_dances": float(np.mean([(x < FREEZE_MS).any() for x in w])),
            "uncontrolled_frozen_windows": base_frozen,
            "uncontrolled_slowest_window_ms": float(np.mean([y.min() for y in bw])),
            "stalls": None if calm else bool(frozen > base_frozen + STALL_MARGIN)}


def fid_k(dances: list[np.ndarray], ref: tuple[np.ndarray, np.ndarray]) -> float:
    """FID_k of dances' 4 s segments against the reference segment features (as ``eval``)."""
    gk, _ = M.segment_features(dances, MODEL_FPS)
    if len(gk) < 2:
        return float("nan")
    a, b = M.normalise_pair(ref[0], gk)
    return M.frechet_distance(a, b)


def energy_tercile(level: float) -> str:
    """The real energy tercile an energy level asks for: the training label is the window's speed percentile
    within its style (``captions.energy_percentile``), so levels below 1/3 are the slowest third (0, 0.25: low),
    below 2/3 the middle (0.5: mid), the rest the fastest third (0.75, 1: high)."""
    return ("low", "mid", "high")[min(2, max(0, int(level * 3)))]


def tercile_pieces(pieces: list[np.ndarray], styles: list[str]) -> dict[str, list[np.ndarray]]:
    """Real pieces (or segments) [T, J, 3] split into mean joint speed terciles *within each style* (as the energy
    label): {"low", "mid", "high", "all"} -> pieces. A style with fewer than 3 pieces counts in "all" only."""
    out: dict[str, list[np.ndarray]] = {"low": [], "mid": [], "high": [], "all": list(pieces)}
    for st in sorted(set(styles)):
        mine = [p for p, s in zip(pieces, styles, strict=True) if s == st]
        if len(mine) < 3:
            continue
        o = np.argsort([mean_speed(p) for p in mine], kind="stable")
        k = len(o) // 3
        for name, idx in (("low", o[:k]), ("mid", o[k : len(o) - k]), ("high", o[len(o) - k :])):
            out[name] += [mine[i] for i in idx]
    return out


def style_segments(clips: list[np.ndarray], styles: list[str]) -> tuple[list[np.ndarray], list[str]]:
    """The 4 s segments FID is computed on (``metrics.segments``) of real clips [T, J, 3], with each one's style."""
    segs: list[np.ndarray] = []
    seg_styles: list[str] = []
    for c, st in zip(clips, styles, strict=True):
        cut = M.segments(c, MODEL_FPS)
        segs += cut
        seg_styles += [st] * len(cut)
    return segs, seg_styles


def half_split_fid(segs: list[np.ndarray], splits: int = 5, seed: int = 0) -> float:
    """Noise floor of an FID against these real segments: the median FID_k between two random halves of them."""
    if len(segs) < 8:
        return float("nan")
    k, _ = M.segment_features(segs, MODEL_FPS)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(splits):
        perm = rng.permutation(len(k))
        a, b = M.normalise_pair(k[perm[: len(k) // 2]], k[perm[len(k) // 2 :]])
        out.append(M.frechet_distance(a, b))
    return float(np.median(out))


def _reference(pieces: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """Segment features of real pieces as an FID reference (None: too few segments)."""
    if not pieces:
        return None
    k, _ = M.segment_features(pieces, MODEL_FPS)
    return (k, k) if len(k) >= 2 else None


def _clips(val: list[Sequence], pairs: int, seconds: float, seed_offset: int = 0
           ) -> list[tuple[Sequence, np.ndarray, str, int]]:
    """(clip, conditioning rows, its style, seed) for each pair: the validation clips in turn, seed = pair +
    ``seed_offset`` (another offset: other dances on the same music, to check a setting tuned on the first).

    A clip shorter than ``seconds`` has its conditioning rows repeated from its start (three modern clips
    last 7-11 s; a keyframe at 6 s and a genre switch at 8 s need the dance to go on)."""
    out = []
    n_tok = int(seconds * MODEL_FPS) // FRAMES_PER_TOKEN
    for i in range(pairs):
        s = val[i % len(val)]
        m = s.music
        k = min(n_tok, s.n_frames // FRAMES_PER_TOKEN)
        cond = sequence_conditions(m.features, m.period_s, m.next_beat_s, k)
        out.append((s, np.resize(cond, (n_tok, cond.shape[1])), style_of_sequence(s), i + seed_offset))
    return out


def pose_error(r: Renderer, dance: Dance, frame: int, target: PoseTarget) -> float:
    """Mean position error (m) of the target's joints at ``frame``: root-relative, in the dancer's heading
    (the target hip's yaw replaced by the generated one), root height included for all/lower targets."""
    from engine.skeleton.skeleton import forward_kinematics

    gen = dance.quat[frame]
    want = r.gen.inbetweener.target_pose(target, gen)
    mask = joint_mask(r.skel, target.joints)
    y_want = target.root_y if target.joints != "upper" else dance.root[frame, 1]
    roots = np.array([[0.0, dance.root[frame, 1], 0.0], [0.0, y_want, 0.0]])
    pos = forward_kinematics(r.skel, roots, R.quat_to_matrix(np.stack([gen, np.where(mask[:, None], want, gen)])))
    sel = mask.copy()
    sel[[i for i, n in enumerate(r.skel.joint_names) if n.startswith(("rThumb", "rIndex", "rMid", "rRing", "rPinky",
                                                                      "lThumb", "lIndex", "lMid", "lRing", "lPinky",
                                                                      "leftEye", "rightEye"))]] = False
    return float(np.linalg.norm(pos[0, sel] - pos[1, sel], axis=-1).mean())


def evaluate_controls(model_dir: Path | None, val: list[Sequence], reference: list[tuple[str, np.ndarray, np.ndarray]],
                      pairs: int = 12, seconds: float = 12.0, beat_guidance: int | None = None, held_out: bool = True,
                      progress: Callable[[str], None] | None = None,
                      parts: tuple[str, ...] = PARTS, genre_guidance: float | None = None,
                      text_guidance: float | None = None, text_steer: float | None = None,
                      seed_offset: int = 0) -> dict[str, Any]:
    """Every control's measures (see the module doc). ``reference`` = (name, upper, lower) training takes;
    ``parts`` picks some of :data:`PARTS` (the uncontrolled dances are always rendered); ``beat_guidance``,
    ``genre_guidance``, ``text_guidance`` and ``text_steer`` (beat guidance's text term weight) override the
    model card's (None: the card's); pair ``i`` dances with seed ``i + seed_offset``."""
    say = progress or (lambda s: None)
    r = Renderer(model_dir, beat_guidance, genre_guidance, text_guidance, text_steer)
    caps = r.model.capabilities
    clips = _clips(val, pairs, seconds, seed_offset)
    ref_pos = [points(u, lo) for _, u, lo in reference]
    ref_k, _ = M.segment_features(ref_pos, MODEL_FPS)
    ref = (ref_k, ref_k)
    out: dict[str, Any] = {"pairs": pairs, "seconds": seconds, "genre_guidance": getattr(r.gen, "genre_guidance", None),
                           "text_guidance": getattr(r.gen, "text_guidance", None),
                           "text_steer": getattr(getattr(r.gen, "guidance", None), "text_weight", None),
                           "seed_offset": seed_offset,
                           "capabilities": {
        "energy": caps.energy, "text": caps.text, "keyframes": caps.keyframes, "n_genres": caps.n_genres}}

    say("uncontrolled")
    base = [r.dance(cond, seed, style) for _, cond, style, seed in clips]
    base_fid = fid_k([d.pos for d in base], ref)
    out["uncontrolled"] = {"fid_k": base_fid, "speed_ms": float(np.mean([mean_speed(d.pos) for d in base])),
                           "attributes": _attr_means(base)}

    if caps.energy and "energy" in parts:
        say("energy")
        levels: dict[float, list[Dance]] = {}
        for e in ENERGY_LEVELS:
            levels[e] = [r.dance(cond, seed, style, energy=e) for _, cond, style, seed in clips]
        speeds = {e: np.array([mean_speed(d.pos) for d in ds]) for e, ds in levels.items()}
        means = [float(speeds[e].mean()) for e in ENERGY_LEVELS]
        diff = speeds[1.0] - speeds[0.0]
        out["energy"] = {
            "levels": list(ENERGY_LEVELS), "speed_ms": means,
            "monotonic": bool(all(b > a for a, b in itertools.pairwise(means))),
            "success": float(np.mean(diff > 0)), "effect_d": paired_d(diff),
            "fid_k": {str(e): fid_k([d.pos for d in levels[e]], ref) for e in ENERGY_LEVELS},
            "real_by_energy": real_by_energy(val, ref, seconds),
            **_matching_tercile(val, reference, ref_pos, levels, base),
            "per_style_speed_ms": {st: [float(np.mean([mean_speed(d.pos) for d, (_, _, s2, _) in
                                                       zip(levels[e], clips, strict=True) if s2 == st]))
                                        for e in ENERGY_LEVELS] for st in sorted({c[2] for c in clips})},
        }
    if caps.text and "text" in parts:
        for name, prompts in (("text", C.EVAL_PROMPTS), ("text_held_out", C.HELD_OUT_PROMPTS)):
            if name == "text_held_out" and not held_out:
                continue
            res: dict[str, Any] = {}
            for attr, (lo_p, hi_p) in prompts.items():
                say(f"{name} {attr}")
                i = C.ATTRIBUTES.index(attr)
                lo = [r.dance(cond, seed, style, text=lo_p) for _, cond, style, seed in clips]
                hi = [r.dance(cond, seed, style, text=hi_p) for _, cond, style, seed in clips]
                a_lo = np.array([C.clip_attributes(d.pos, d.lower, MODEL_FPS)[i] for d in lo])
                a_hi = np.array([C.clip_attributes(d.pos, d.lower, MODEL_FPS)[i] for d in hi])
                res[attr] = {"prompts": [lo_p, hi_p], "low": float(a_lo.mean()), "high": float(a_hi.mean()),
                             "success": float(np.mean(a_hi > a_lo)), "effect_d": paired_d(a_hi - a_lo),
                             "fid_k": fid_k([d.pos for d in lo + hi], ref),
                             "stall": {lo_p: stall_measures([d.pos for d in lo], [d.pos for d in base],
                                                            calm=attr == "speed"),
                                       hi_p: stall_measures([d.pos for d in hi], [d.pos for d in base])}}
            out[name] = res
    if caps.keyframes and "keyframes" in parts:
        out["keyframes"] = _keyframes(r, clips, val, base, ref, say)
    if "genre" in parts and caps.n_genres > max(genre_id(g) for g in ("salsa", "indian", "modern")):
        out["genre_switch"] = _genre_switch(r, clips, reference, val, base, say)
    return out


def _matching_tercile(val: list[Sequence], reference: list[tuple[str, np.ndarray, np.ndarray]],
                      ref_pos: list[np.ndarray], levels: dict[float, list[Dance]], base: list[Dance]) -> dict[str, Any]:
    """Each energy level's FID_k against the real 4 s segments of its energy tercile (speed terciles within each
    style): of the training takes (the reference of the FID column, restricted to the tercile) and of the held-out
    takes (few; each tercile's noise floor, the FID between two random halves of it, is reported beside)."""
    out: dict[str, Any] = {"tercile_of_level": {str(e): energy_tercile(e) for e in ENERGY_LEVELS}}
    sources = {"train": (ref_pos, [style_of(n) for n, _, _ in reference]),
               "held_out": ([points(s.upper, s.lower) for s in val], [style_of_sequence(s) for s in val])}
    for key, (clips, styles) in sources.items():
        terc = tercile_pieces(*style_segments(clips, styles))
        refs = {name: _reference(ps) for name, ps in terc.items()}
        fid: dict[str, float] = {}
        for e in ENERGY_LEVELS:
            r = refs[energy_tercile(e)]
            fid[str(e)] = fid_k([d.pos for d in levels[e]], r) if r is not None else float("nan")
        out[f"fid_k_{key}_tercile"] = fid
        out[f"{key}_terciles"] = {name: {"segments": len(ps), "speed_ms": float(np.mean([mean_speed(p) for p in ps]))
                                         if ps else float("nan")} for name, ps in terc.items()}
        out[f"{key}_noise_fid_k"] = {name: half_split_fid(terc[name]) for name in ("low", "mid", "high")}
        if key == "held_out":
            r_all = refs["all"]
            out["uncontrolled_fid_k_held_out"] = fid_k([d.pos for d in base], r_all) if r_all else float("nan")
    return out


def real_by_energy(val: list[Sequence], ref: tuple[np.ndarray, np.ndarray],
                   seconds: float) -> dict[str, dict[str, float]]:
    """The FID cost of energy in real motion: the held-out takes cut into ``seconds`` pieces (every 4 s), split
    into speed terciles; each tercile's mean joint speed and FID_k against the training takes, beside all pieces'.
    What a control that asks for the fastest third of real motion costs in FID_k even when it is real."""
    n = int(seconds * MODEL_FPS)
    pieces = [p[a : a + n] for p in (points(s.upper, s.lower) for s in val)
              for a in range(0, len(p) - n + 1, 4 * MODEL_FPS)]
    if len(pieces) < 6:
        return {}
    sp = np.array([mean_speed(p) for p in pieces])
    o = np.argsort(sp)
    k = len(o) // 3
    out = {"all": o, "low": o[:k], "mid": o[k : len(o) - k], "high": o[len(o) - k :]}
    return {name: {"pieces": len(idx), "speed_ms": float(sp[idx].mean()), "fid_k": fid_k([pieces[i] for i in idx], ref)}
            for name, idx in out.items()}


def _attr_means(ds: list[Dance]) -> dict[str, float]:
    a = np.array([C.clip_attributes(d.pos, d.lower, MODEL_FPS) for d in ds])
    return {n: float(v) for n, v in zip(C.ATTRIBUTES, a.mean(0), strict=True)}


def _keyframes(r: Renderer, clips: list, val: list[Sequence], base: list[Dance], ref: tuple[np.ndarray, np.ndarray],
               say: Callable[[str], None]) -> dict[str, Any]:
    frame = int(6.0 * MODEL_FPS)
    res: dict[str, Any] = {"target_s": 6.0}
    rng = np.random.default_rng(7)
    targets = []
    for k, (s, _, _, _) in enumerate(clips):
        other = val[(val.index(s) + 1 + k) % len(val)]  # a pose from another held-out take
        f = int(rng.integers(0, other.n_frames))
        m = vectors_to_motion(other.upper[f : f + 1], other.lower[f : f + 1], r.skel)
        targets.append((float(m.root_pos[0, 1]), R.matrix_to_quat(m.rot[0])))
    w = slice(max(0, frame - 60), frame + 61)
    for joints in ("all", "upper", "lower"):
        say(f"keyframes {joints}")
        rows: dict[str, Any] = {}
        under: list[Dance] = []  # slots-only dances: exactly what the blend runs on (it changes no token)
        for mode in ("slots_only", "blend"):
            errs, peak, peak_mean, after, fr, added, new_over, new_mean = [], [], [], [], [], [], [], []
            own: list[dict[str, float]] = []
            ds = []
            for i, ((_, cond, style, seed), (y, q), b) in enumerate(zip(clips, targets, base, strict=True)):
                ib = r.gen.inbetweener
                ib.trace = [] if mode == "blend" else None
                try:
                    d = r.dance(cond, seed, style, keyframe=(frame, np.array([0.0, y, 0.0]), q, joints),
                                blend=mode == "blend")
                    trace, ib.trace = ib.trace, None
                finally:
                    ib.trace = None
                if trace:
                    own.append(blend_own_speed(r, trace, w))
                ds.append(d)
                t = PoseTarget(frame=frame, root_y=y, quat=q, joints=joints)
                errs.append(pose_error(r, d, frame, t))
                vel = np.diff(d.pos[w], axis=0) * MODEL_FPS
                v = np.linalg.norm(vel, axis=-1)
                peak.append(float(v.max()))
                vm = np.linalg.norm(np.diff(M.root_relative(d.pos[w]), axis=0), axis=-1).mean(-1) * MODEL_FPS
                peak_mean.append(float(vm.max()))
                a = slice(frame + 60, frame + 120)
                after.append(mean_speed(d.pos[a]) / max(1e-6, mean_speed(b.pos[a])))
                fr.append(M.longest_freeze_s(d.pos[frame:], MODEL_FPS))
                if mode == "slots_only":
                    under.append(d)
                else:
                    # The speed the blend adds per joint and frame (a snap of the dance underneath that the
                    # blend smooths away counts as nothing, not as speed added).
                    vu = np.linalg.norm(np.diff(under[i].pos[w], axis=0) * MODEL_FPS, axis=-1)
                    added.append(float(np.max(v - vu)))
                    new_over.append(float(np.mean((v > REAL_JOINT_SPEED_P999) & (vu <= REAL_JOINT_SPEED_P999))))
                    vmu = (np.linalg.norm(np.diff(M.root_relative(under[i].pos[w]), axis=0), axis=-1).mean(-1)
                           * MODEL_FPS)
                    new_mean.append(float(np.sum((vm > REAL_MEAN_SPEED_P999) & (vmu <= REAL_MEAN_SPEED_P999))))
            e = np.array(errs)
            rows[mode] = {"err_cm_p50": float(np.percentile(e, 50) * 100),
                          "err_cm_p90": float(np.percentile(e, 90) * 100),
                          "err_cm_mean": float(e.mean() * 100), "within_10cm": float(np.mean(e <= 0.10)),
                          "peak_joint_speed_ms": float(np.max(peak)), "peak_mean_speed_ms": float(np.max(peak_mean)),
                          "speed_after_vs_uncontrolled": float(np.nanmedian(after)),
                          "longest_freeze_after_s": float(np.max(fr)), "fid_k": fid_k([d.pos for d in ds], ref)}
            if added:
                rows[mode]["blend_added_speed_peak_ms"] = float(np.max(added))
                rows[mode]["blend_added_speed_p50_ms"] = float(np.median(added))
                rows[mode]["share_new_joint_speed_over_p999"] = float(np.mean(new_over))
                rows[mode]["frames_new_mean_speed_over_p999"] = float(np.sum(new_mean))
            if own:  # the blend against its own dance underneath (the same run, before the staging)
                for key in own[0]:
                    agg = np.max if key.endswith("peak_ms") else np.sum
                    rows[mode][key] = float(agg([o[key] for o in own]))
        no = np.array([pose_error(r, b, frame, PoseTarget(frame, y, q, joints))
                       for b, (y, q) in zip(base, targets, strict=True)])
        rows["no_keyframe"] = {"err_cm_p50": float(np.percentile(no, 50) * 100),
                               "err_cm_p90": float(np.percentile(no, 90) * 100)}
        rows["uncontrolled_peak_joint_speed_ms"] = float(max(
            (np.linalg.norm(np.diff(b.pos[w], axis=0), axis=-1) * MODEL_FPS).max() for b in base))
        rows["uncontrolled_peak_mean_speed_ms"] = float(max(
            (np.linalg.norm(np.diff(M.root_relative(b.pos[w]), axis=0), axis=-1).mean(-1) * MODEL_FPS).max()
            for b in base))
        res[joints] = rows
    res["real_joint_speed_p999"] = REAL_JOINT_SPEED_P999
    res["real_mean_speed_p999"] = REAL_MEAN_SPEED_P999
    return res


def blend_own_speed(r: Renderer, trace: list, window: slice) -> dict[str, float]:
    """The keyframe blend against the dance it ran on, from one dance's trace (:attr:`InBetweener.trace`: per frame
    the generated and the output pose, before the staging): within ``window`` (frames), the joint-frames the blend
    takes over the real per-joint p99.9 where the dance underneath is not over it, the frames it takes over the
    real mean-speed p99.9 where the dance underneath is not, and the most it adds to a point's speed.

    The dance underneath is the same run's, so this holds whatever the staging feeds back into the token choice
    (the slots-only dance of a pair starts on the same tokens but need not keep them: the staging reports where the
    dancer stands and the stage term picks tokens by it, and the blend moves the legs the staging reads)."""
    from engine.models.staging import PointFK

    fk = PointFK(r.skel)
    frames = np.array([t[0] for t in trace])
    sel = (frames >= window.start) & (frames < window.stop)
    if sel.sum() < 2 or np.any(np.diff(frames[sel]) != 1):
        return {"own_joint_frames_over_p999": 0.0, "own_frames_mean_over_p999": 0.0, "own_added_peak_ms": 0.0}
    idx = np.nonzero(sel)[0]
    out = {}
    speeds = []
    for g in (1, 3):  # generated, output
        root = np.stack([trace[k][g] for k in idx])
        pts, _ = fk(root, np.stack([trace[k][g + 1] for k in idx]))
        rel = pts.copy()
        rel[..., [0, 2]] -= root[:, None, [0, 2]]
        speeds.append((np.linalg.norm(np.diff(pts, axis=0), axis=-1) * MODEL_FPS,
                       np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean(-1) * MODEL_FPS))
    (vg, mg), (vo, mo) = speeds
    out["own_joint_frames_over_p999"] = float(np.sum((vo > REAL_JOINT_SPEED_P999) & (vg <= REAL_JOINT_SPEED_P999)))
    out["own_frames_mean_over_p999"] = float(np.sum((mo > REAL_MEAN_SPEED_P999) & (mg <= REAL_MEAN_SPEED_P999)))
    out["own_added_peak_ms"] = float(np.max(vo - vg))
    return out


def _style_check(clf4: Any, after: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                 ref_by_style: dict[str, np.ndarray]) -> dict[str, Any]:
    """Independent checks that the style changed, on the 4 s after the switch of each dance (new style, upper,
    lower, points): the 4 s style classifier of ``groovecast eval`` (one window each: the share read as the new
    style, per style), and FID_k of those 4 s against the real training segments of the new style and of the other
    styles (per new style; lower against its own style than the others = it looks like that style); and FID_k of all
    of them against all the real segments (``fid_k_all``: the cost in naturalness, against the FID bar)."""
    out: dict[str, Any] = {"style_acc_4s": {}, "fid_k_own_style": {}, "fid_k_other_styles": {}}
    every = np.concatenate(list(ref_by_style.values())) if ref_by_style else None
    out["fid_k_all"] = fid_k([a[3] for a in after], (every, every)) if every is not None else float("nan")
    for st in sorted({a[0] for a in after}):
        mine = [a for a in after if a[0] == st]
        f = np.concatenate([windows(u, lo) for _, u, lo, _ in mine])
        out["style_acc_4s"][st] = float(np.mean(clf4.predict_windows(f) == clf4.styles.index(st)))
        pts = [p for _, _, _, p in mine]
        own = ref_by_style.get(st)
        others = [k for s2, k in ref_by_style.items() if s2 != st]
        out["fid_k_own_style"][st] = fid_k(pts, (own, own)) if own is not None else float("nan")
        oth = np.concatenate(others) if others else None
        out["fid_k_other_styles"][st] = fid_k(pts, (oth, oth)) if oth is not None else float("nan")
    for key in ("style_acc_4s", "fid_k_own_style", "fid_k_other_styles"):
        out[key + "_mean"] = float(np.nanmean(list(out[key].values()))) if out[key] else float("nan")
    return out


def _switch_measure(clf: Any, upper: np.ndarray, lower: np.ndarray, sf: int, old: str, new_style: str,
                    win: int) -> dict[str, float]:
    """The style measures of one dance around frame ``sf`` (0.5 s windows every 2 frames): ``latency`` from ``sf``
    to the end of the first window after it in ``new_style`` from which >= 2/3 of the later windows are in it
    (nan: never), ``first`` to the end of the first window after ``sf`` in ``new_style`` at all, the share of
    windows in ``old`` before ``sf`` and in ``new_style`` from 1 s after it."""
    f = windows(upper, lower, hop=2, window=win)  # window k covers frames [2k, 2k + win)
    if len(upper) <= sf + win:
        return {"latency": float("nan"), "first": float("nan"), "acc_before": float("nan"), "acc_after": float("nan")}
    pred = clf.predict_windows(f)
    ends = np.arange(len(f)) * 2 + win
    new = pred == clf.styles.index(new_style)
    after = ends > sf
    t_new = float("nan")
    for k in np.flatnonzero(after & new):
        if np.mean(new[k:]) >= 2 / 3:
            t_new = float((ends[k] - sf) / MODEL_FPS)
            break
    hits = np.flatnonzero(after & new)
    late = ends >= sf + MODEL_FPS
    return {"latency": t_new, "first": float((ends[hits[0]] - sf) / MODEL_FPS) if len(hits) else float("nan"),
            "acc_before": float(np.mean(pred[ends <= sf] == clf.styles.index(old))),
            "acc_after": float(np.mean(new[late])) if np.any(late) else float("nan")}


def _within_beat(latency: np.ndarray, beats: np.ndarray, win: int) -> float:
    """Share of dances whose new style began within one beat: the first new-style window ends ``latency`` after the
    switch and spans the window before that, so (a window mostly new) the style began about ``latency - window / 2``
    after the switch; that must be <= the clip's beat period."""
    onset = latency - 0.5 * win / MODEL_FPS
    return float(np.mean(np.isfinite(onset) & (onset <= beats)))


def _genre_switch(r: Renderer, clips: list, reference: list[tuple[str, np.ndarray, np.ndarray]],
                  val: list[Sequence], base: list[Dance], say: Callable[[str], None]) -> dict[str, Any]:
    """8 s in one style, then the next style (salsa -> indian -> modern -> salsa) for the rest.

    Beside the switched dances, the same measure at the same moment of two references: the same clip and seed
    danced in the new style all along (no switch: how often this GPT's own style noise lets the measure see the new
    style "within one beat" at all, the measure's ceiling for it), and real held-out motion cut from a take of the
    old style to one of the new (an instant switch of real dancing: the classifier's and the measure's own delay);
    and, as a diagnostic, the same switches staged without the stage correction (``StagingConfig`` ``pull_ms``,
    ``walk_ms``, ``air_ms`` 0: its leg IK changes the legs' rotations, which the classifier reads). Independent of
    the 0.5 s classifier: the 4 s after the switch read by ``eval``'s 4 s classifier and their FID_k against real
    segments of the new style and of the others (:func:`_style_check`); and the uncontrolled dances' 4 s style
    accuracy per style (issue 10 item 3)."""
    from engine.train.sources import style_of

    say("genre switch")
    win = SWITCH_WINDOW
    clf = train_style_classifier([(style_of(n), u, lo) for n, u, lo in reference], window=win)
    clf4 = train_style_classifier([(style_of(n), u, lo) for n, u, lo in reference])  # the 4 s one of ``eval``
    pts_by_style: dict[str, list[np.ndarray]] = {}
    for n, u, lo in reference:
        pts_by_style.setdefault(style_of(n), []).append(points(u, lo))
    ref_by_style = {st: M.segment_features(ps, MODEL_FPS)[0] for st, ps in pts_by_style.items()}
    real_acc = {st: clf.accuracy_windows([(s.upper, s.lower) for s in val if style_of_sequence(s) == st], st, win)
                for st in sorted({style_of_sequence(s) for s in val})}
    order = ("salsa", "indian", "modern")
    switch_tok = int(8.0 * MODEL_FPS) // FRAMES_PER_TOKEN
    sf = switch_tok * FRAMES_PER_TOKEN
    rows: dict[str, list[dict[str, float]]] = {"switch": [], "new_all_along": [], "real_cut": [],
                                               "switch_no_stage_pull": []}
    # Diagnostic: the same switches staged without any stage correction (no leg IK, which re-solves planted legs the
    # style classifier reads, no turns about the planted foot, no moves in the air; facing and the speed limit on).
    r_free = Renderer(*r.args, staging=StagingConfig(pull_ms=0.0, walk_ms=0.0, air_ms=0.0))
    snaps, snaps_base, beats = [], [], []
    after: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]] = {"switch": [], "new_all_along": [],
                                                                              "switch_no_stage_pull": []}
    seg = 4 * MODEL_FPS
    for (s, cond, style, seed), b0 in zip(clips, base, strict=True):
        per = np.asarray(s.music.period_s, dtype=np.float64)
        beats.append(float(np.median(per[per > 0])) if np.any(per > 0) else float("nan"))
        a = style if style in order else "salsa"
        b = order[(order.index(a) + 1) % 3]
        d = r.dance(cond, seed, a, switch=(switch_tok, b))
        rows["switch"].append(_switch_measure(clf, d.upper, d.lower, sf, a, b, win))
        db = r.dance(cond, seed, b)
        rows["new_all_along"].append(_switch_measure(clf, db.upper, db.lower, sf, b, b, win))
        df = r_free.dance(cond, seed, a, switch=(switch_tok, b))
        rows["switch_no_stage_pull"].append(_switch_measure(clf, df.upper, df.lower, sf, a, b, win))
        for key, dd in (("switch", d), ("new_all_along", db), ("switch_no_stage_pull", df)):
            if len(dd.upper) >= sf + seg:
                after[key].append((b, dd.upper[sf : sf + seg], dd.lower[sf : sf + seg], dd.pos[sf : sf + seg]))
        ru, rl = _real_cut(val, a, b, sf, len(d.upper), seed)
        rows["real_cut"].append(_switch_measure(clf, ru, rl, sf, a, b, win))
        w = slice(sf - 30, sf + 30)
        vm = np.linalg.norm(np.diff(M.root_relative(d.pos[w]), axis=0), axis=-1).mean(-1) * MODEL_FPS
        snaps.append(float(vm.max()))
        vb = np.linalg.norm(np.diff(M.root_relative(b0.pos[w]), axis=0), axis=-1).mean(-1) * MODEL_FPS
        snaps_base.append(float(vb.max()))
    beat_a = np.array(beats)
    out: dict[str, Any] = {"switch_s": 8.0, "classifier_window_s": win / MODEL_FPS,
                           "beat_s_median": float(np.nanmedian(beat_a))}
    for name, rs in rows.items():
        lat_a = np.array([x["latency"] for x in rs])
        ok = lat_a[np.isfinite(lat_a)]
        first = np.array([x["first"] for x in rs])
        m = {"latency_s_p50": float(np.median(ok)) if len(ok) else float("nan"),
             "latency_s_p90": float(np.percentile(ok, 90)) if len(ok) else float("nan"),
             "switched": float(np.mean(np.isfinite(lat_a))),
             "within_one_beat": _within_beat(lat_a, beat_a, win),
             "first_within_one_beat": _within_beat(first, beat_a, win),
             "style_acc_before": float(np.nanmean([x["acc_before"] for x in rs])),
             "style_acc_after_1s": float(np.nanmean([x["acc_after"] for x in rs]))}
        if after.get(name):
            m.update(_style_check(clf4, after[name], ref_by_style))
        if name == "switch":
            out.update(m)
        else:
            out[name] = m
    base_acc: dict[str, list[float]] = {}
    for (_, _, style, _), b0 in zip(clips, base, strict=True):
        f4 = windows(b0.upper, b0.lower)
        if len(f4) and style in clf4.styles:
            base_acc.setdefault(style, []).extend((clf4.predict_windows(f4) == clf4.styles.index(style)).tolist())
    out["uncontrolled_style_acc_4s"] = {st: float(np.mean(v)) for st, v in sorted(base_acc.items())}
    every = np.concatenate(list(ref_by_style.values()))
    out.update(switch_fid_bar([d.pos for d in base], sf, seg, (every, every)))
    out.update({"peak_mean_speed_ms": float(np.max(snaps)), "snap_bar_ms": 1.2 * REAL_MEAN_SPEED_P999,
                "peak_mean_speed_no_switch_ms": float(np.max(snaps_base)), "classifier_acc_real_val": real_acc})
    return out


def switch_fid_bar(base: list[np.ndarray], sf: int, seg: int, ref: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """The FID bar of the 4 s after a switch at frame ``sf`` (``seg`` frames), from the uncontrolled dances' points
    ``base``: ``fid_bar_4s`` = FID_BAR x their FID_k over the same ``seg`` frames (``uncontrolled_fid_k_4s``: one
    segment per dance, as many as the switched dances' figure has). Before session 13 the bar was over all their 4 s
    segments (three per 12 s dance; kept as ``fid_bar_4s_all_segments``), which reads lower by FID's small-sample
    bias alone (seeds 0-47: 19.3 against 22.7 for the same dances' 8-12 s, 22.2 for 48 random segments of the 144),
    so it held the switch to a stricter bar than the uncontrolled dances themselves met."""
    same = fid_k([p[sf : sf + seg] for p in base if len(p) >= sf + seg], ref)
    return {"uncontrolled_fid_k_4s": same, "fid_bar_4s": FID_BAR * same,
            "fid_bar_4s_all_segments": FID_BAR * fid_k(list(base), ref)}


def _real_cut(val: list[Sequence], a: str, b: str, sf: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real motion cut at frame ``sf`` from a held-out take of style ``a`` to one of style ``b`` (``n`` frames; a
    take shorter than its part is repeated from its start; which take and where it starts follow ``seed``)."""
    from engine.train.evaluate import style_of_sequence as sty

    ta = [s for s in val if sty(s) == a]
    tb = [s for s in val if sty(s) == b]
    if not ta or not tb:
        return np.zeros((0, 72)), np.zeros((0, 61))
    sa, sb = ta[seed % len(ta)], tb[seed % len(tb)]
    off = (37 * seed) % max(1, sb.n_frames - MODEL_FPS)
    up = np.concatenate([np.resize(sa.upper, (sf, sa.upper.shape[1])),
                         np.resize(sb.upper[off:], (n - sf, sb.upper.shape[1]))])
    lo = np.concatenate([np.resize(sa.lower, (sf, sa.lower.shape[1])),
                         np.resize(sb.lower[off:], (n - sf, sb.lower.shape[1]))])
    return up, lo


def _f(x: Any, nd: int = 2) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float | int):
        return f"{x:.{nd}f}" if math.isfinite(float(x)) else str(x)
    return str(x)


def controls_markdown(res: dict[str, Any], header: str = "") -> str:
    """The controls table (one section per control) as Markdown."""
    base = res["uncontrolled"]["fid_k"]
    lines = [header, f"Pairs per row: {res['pairs']} ({res['seconds']:.0f} s dances on the held-out clips' music). "
             f"Uncontrolled: FID_k {_f(base, 1)}, mean joint speed {_f(res['uncontrolled']['speed_ms'])} m/s. "
             f"FID bar: a control's FID_k within {FID_BAR}x the uncontrolled ({_f(FID_BAR * base, 1)}).", ""]
    if "energy" in res:
        e = res["energy"]
        tr, ho = e.get("fid_k_train_tercile"), e.get("fid_k_held_out_tercile")
        extra_head = " FID_k vs training takes of its energy tercile | vs held-out takes of its tercile |" if tr else ""
        lines += ["## Energy (0..1, GPT conditioning)", "",
                  "| level | mean joint speed m/s | FID_k | within bar |" + extra_head,
                  "|---|---|---|---|" + ("---|---|" if tr else "")]
        for lv, sp in zip(e["levels"], e["speed_ms"], strict=True):
            fk = e["fid_k"][str(lv)]
            extra = (f" {_f(tr[str(lv)], 1)} ({e['tercile_of_level'][str(lv)]}) | {_f(ho[str(lv)], 1)} |"
                     if tr and ho else "")
            lines.append(f"| {lv} | {_f(sp, 3)} | {_f(fk, 1)} | {_f(bool(fk <= FID_BAR * base))} |{extra}")
        if tr and ho:
            tt, ht, nz = e["train_terciles"], e["held_out_terciles"], e["held_out_noise_fid_k"]
            nt = e.get("train_noise_fid_k", {})
            lines += ["", "Last two columns (added information; the bar column is unchanged): FID_k against the real "
                      "4 s segments of the energy tercile the level asks for (speed terciles within each style, as the "
                      "energy label is a percentile within the style; levels 0 and 0.25 -> low, 0.5 -> mid, 0.75 and "
                      "1 -> high). Training takes: " + "; ".join(f"{k} {tt[k]['segments']} segments, "
                                                                 f"{_f(tt[k]['speed_ms'], 3)} m/s"
                                                                 for k in ("low", "mid", "high"))
                      + (" (two random halves of one tercile are FID_k " + " / ".join(_f(nt[k], 1) for k in
                                                                                      ("low", "mid", "high"))
                         + " apart)" if nt else "")
                      + ". Held-out takes: " + "; ".join(f"{k} {ht[k]['segments']} segments, "
                                                        f"{_f(ht[k]['speed_ms'], 3)} m/s"
                                                        for k in ("low", "mid", "high"))
                      + "; so few that two random halves of one held-out tercile are themselves FID_k "
                      + " / ".join(_f(nz[k], 1) for k in ("low", "mid", "high"))
                      + " apart (low / mid / high): that column is mostly noise. The uncontrolled dances against all "
                      f"held-out segments: FID_k {_f(e['uncontrolled_fid_k_held_out'], 1)}."]
        lines += ["", f"Monotonic: **{_f(e['monotonic'])}**; energy 1 faster than energy 0 in "
                  f"{_f(100 * e['success'], 0)} % of pairs, paired d = {_f(e['effect_d'])}. Per style (levels in "
                  "order): " + "; ".join(f"{st} " + ", ".join(_f(v, 3) for v in vs)
                                         for st, vs in e["per_style_speed_ms"].items()), ""]
        rb = e.get("real_by_energy") or {}
        if rb:
            lines += [f"Real motion at each energy (the held-out takes in {res['seconds']:.0f} s pieces, speed "
                      "terciles; FID_k against the training takes as above): "
                      + "; ".join(f"{k} {_f(v['speed_ms'], 3)} m/s, FID_k {_f(v['fid_k'], 1)} ({v['pieces']} pieces)"
                                  for k, v in rb.items())
                      + ". The fastest third of real motion is itself this far from the pooled training takes.", ""]
    for name, title in (("text", "Text, trained phrasings"), ("text_held_out", "Text, held-out paraphrases")):
        if name not in res:
            continue
        lines += [f"## {title}", "", "| attribute | prompts (low / high) | measured low | measured high | success | "
                  "paired d | FID_k | within bar |", "|---|---|---|---|---|---|---|---|"]
        for attr, v in res[name].items():
            lines.append(f"| {attr} | \"{v['prompts'][0]}\" / \"{v['prompts'][1]}\" | {_f(v['low'], 3)} | "
                         f"{_f(v['high'], 3)} | {_f(100 * v['success'], 0)} % | {_f(v['effect_d'])} | "
                         f"{_f(v['fid_k'], 1)} | {_f(bool(v['fid_k'] <= FID_BAR * base))} |")
        lines.append("")
        stalls = [(p, m) for v in res[name].values() for p, m in v.get("stall", {}).items()]
        if stalls:
            lines += [f"Does a prompt stop the dance? Per prompt against the uncontrolled dance on the same music and "
                      f"seed: mean joint speed (median ratio), the slowest {STALL_WINDOW_S:.0f} s window (mean; median "
                      f"ratio), the share of {STALL_WINDOW_S:.0f} s windows below {FREEZE_MS} m/s (frozen) and of "
                      f"dances with one; a prompt stalls the dance when it freezes more than {100 * STALL_MARGIN:.0f} "
                      "points more windows than the uncontrolled dances (a calm prompt is not judged).", "",
                      "| prompt | speed m/s (x uncontrolled) | slowest 2 s m/s (x uncontrolled) | frozen windows "
                      "(uncontrolled) | dances with a frozen window | stalls |", "|---|---|---|---|---|---|"]
            for p, m in stalls:
                verdict = "(calm: not judged)" if m["stalls"] is None else ("**yes**" if m["stalls"] else "no")
                lines.append(f"| \"{p}\" | {_f(m['speed_ms'], 3)} (x{_f(m['speed_ratio'])}) | "
                             f"{_f(m['slowest_window_ms'], 3)} (x{_f(m['slowest_window_ratio'])}) | "
                             f"{_f(100 * m['frozen_windows'], 1)} % "
                             f"({_f(100 * m['uncontrolled_frozen_windows'], 1)} %) | "
                             f"{_f(100 * m['frozen_dances'], 0)} % | {verdict} |")
            lines.append("")
    if "keyframes" in res:
        k = res["keyframes"]
        lines += [f"## Keyframes (a real pose pinned {k['target_s']:.0f} s ahead)", "",
                  "Speeds are taken within 2 s of the target. \"Newly over\": over the real p99.9 where the "
                  "slots-only dance of the pair (same music, seed and GPT keyframe slots, blend off) is not; that "
                  "dance starts on the same tokens but may part from the blended one (the staging reports where the "
                  "dancer stands, the stage term picks tokens by it). \"Blend's own\": the blend against the dance it "
                  "ran on (the same run, before the staging): joint-frames over the per-joint p99.9 / frames over the "
                  "mean-speed p99.9 where that dance is not, and the most it adds to a point's speed.", "",
                  "| joints | mechanism | error p50 cm | p90 cm | within 10 cm | peak joint speed m/s "
                  "| peak mean speed m/s | speed added vs slots-only, peak (p50) m/s | joint-frames newly over p99.9 "
                  "| frames newly over mean p99.9 | blend's own: over p99.9 / mean p99.9 / added peak m/s "
                  "| speed after / uncontrolled | longest freeze after s | FID_k |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for joints in ("all", "upper", "lower"):
            rows = k[joints]
            for mode in ("blend", "slots_only"):
                v = rows[mode]
                added = (f"{_f(v['blend_added_speed_peak_ms'])} ({_f(v['blend_added_speed_p50_ms'])})"
                         if "blend_added_speed_peak_ms" in v else "")
                newo = f"{_f(100 * v['share_new_joint_speed_over_p999'], 3)} %" if added else ""
                newm = f"{v['frames_new_mean_speed_over_p999']:.0f}" if "frames_new_mean_speed_over_p999" in v else ""
                own = (f"{v['own_joint_frames_over_p999']:.0f} / {v['own_frames_mean_over_p999']:.0f} / "
                       f"{_f(v['own_added_peak_ms'])}" if "own_added_peak_ms" in v else "")
                lines.append(f"| {joints} | {'slots + blend' if mode == 'blend' else 'GPT slots only'} | "
                             f"{_f(v['err_cm_p50'], 1)} | {_f(v['err_cm_p90'], 1)} | "
                             f"{_f(100 * v['within_10cm'], 0)} % | "
                             f"{_f(v['peak_joint_speed_ms'])} | {_f(v['peak_mean_speed_ms'])} | {added} | {newo} | "
                             f"{newm} | {own} | "
                             f"{_f(v['speed_after_vs_uncontrolled'])} | {_f(v['longest_freeze_after_s'])} | "
                             f"{_f(v['fid_k'], 1)} |")
            lines.append(f"| {joints} | no keyframe (distance anyway) | {_f(rows['no_keyframe']['err_cm_p50'], 1)} | "
                         f"{_f(rows['no_keyframe']['err_cm_p90'], 1)} | | "
                         f"{_f(rows['uncontrolled_peak_joint_speed_ms'])} | "
                         f"{_f(rows.get('uncontrolled_peak_mean_speed_ms', float('nan')))} | | | | | | | |")
        lines += ["", "Real data (as-captured training takes): per-joint speed p99.9 "
                  f"{k['real_joint_speed_p999']} m/s, mean joint speed p99.9 {k['real_mean_speed_p999']} m/s.", ""]
    if "genre_switch" in res:
        g = res["genre_switch"]
        after_key = "style_acc_after_1s" if "style_acc_after_1s" in g else "style_acc_after_2s"
        lines += ["## Genre switched live", "",
                  f"Switch at {g['switch_s']:.0f} s (salsa -> indian -> modern -> salsa); style classifier on "
                  f"{g['classifier_window_s']:.1f} s windows. Switched (>= 2/3 of later windows in the new style): "
                  f"{_f(100 * g['switched'], 0)} % of dances; time from the switch to the end of the first such "
                  "window: "
                  f"p50 {_f(g['latency_s_p50'])} s, p90 {_f(g['latency_s_p90'])} s (includes up to one window of "
                  "fill); new style begun within one beat of the switch (end of that window minus half a window <= "
                  f"the clip's beat period, median {_f(g.get('beat_s_median', float('nan')))} s): "
                  f"{_f(100 * g.get('within_one_beat', float('nan')), 0)} % of dances. Style accuracy before the "
                  f"switch {_f(100 * g['style_acc_before'], 0)} %, from {after_key[-2]} s after it "
                  f"{_f(100 * g[after_key], 0)} %. Peak mean joint speed within 1 s of the switch "
                  f"{_f(g['peak_mean_speed_ms'])} m/s (snap bar 1.2 x real p99.9 = {_f(g['snap_bar_ms'])}; the same "
                  "seconds of the same dances without a switch: "
                  f"{_f(g.get('peak_mean_speed_no_switch_ms', float('nan')))} m/s). "
                  f"The {g['classifier_window_s']:.1f} s classifier on held-out real takes: "
                  + ", ".join(f"{st} {_f(100 * a, 0)} %" for st, a in g.get("classifier_acc_real_val", {}).items())
                  + ".", ""]
        if "new_all_along" in g:
            lines += ["The same measure at the same moment of two references: the same clips and seeds danced in the "
                      "new style all along (no switch: how often this GPT's own style noise lets the measure see its "
                      "style within one beat at all, the measure's ceiling for it) and real held-out motion cut from "
                      "a take of the old style to one of the new (an instant switch: the classifier's own delay). "
                      "\"first window\": the first new-style window after the switch, whether or not the style "
                      "then holds.", "",
                      "| dances | switched | p50 s | p90 s | within one beat | first window within one beat | "
                      "style acc. before | from 1 s after |", "|---|---|---|---|---|---|---|---|"]
            named = [("switched at 8 s", g), ("new style all along", g["new_all_along"]),
                     ("real takes cut at 8 s", g["real_cut"])]
            if "switch_no_stage_pull" in g:
                named.append(("switched at 8 s, stage correction off (diagnostic)", g["switch_no_stage_pull"]))
            for name, v in named:
                lines.append(f"| {name} | {_f(100 * v['switched'], 0)} % | {_f(v['latency_s_p50'])} | "
                             f"{_f(v['latency_s_p90'])} | {_f(100 * v['within_one_beat'], 0)} % | "
                             f"{_f(100 * v['first_within_one_beat'], 0)} % | {_f(100 * v['style_acc_before'], 0)} % | "
                             f"{_f(100 * v['style_acc_after_1s'], 0)} % |")
            lines.append("")
            checked = [(name, v) for name, v in named if "style_acc_4s" in v]
            if checked:
                lines += ["Independent of the 0.5 s classifier, the 4 s right after the switch: the share read as the "
                          "new style by `eval`'s 4 s style classifier, and FID_k against the real training segments "
                          "of the new style and of the other two (per new style; lower against its own style: it looks "
                          "like that style), and FID_k of all those 4 s against all real segments (the cost in "
                          f"naturalness; bar {_f(g.get('fid_bar_4s', float('nan')), 1)} = {FID_BAR} x the "
                          "uncontrolled dances' FID_k over the same 4 s"
                          + (f", {_f(g['uncontrolled_fid_k_4s'], 1)}; over all their 4 s segments, the bar before "
                             f"session 13: {_f(g['fid_bar_4s_all_segments'], 1)}" if "fid_bar_4s_all_segments" in g
                             else "") + "):", "",
                          "| dances | 4 s classifier: new style (indian / modern / salsa) | FID_k vs own style | "
                          "FID_k vs other styles | FID_k vs all |", "|---|---|---|---|---|"]
                for name, v in checked:
                    lines.append(f"| {name} | " + " / ".join(f"{_f(100 * v['style_acc_4s'].get(st, float('nan')), 0)} %"
                                                          for st in ("indian", "modern", "salsa"))
                                 + " | " + " / ".join(_f(v["fid_k_own_style"].get(st, float("nan")), 1)
                                                      for st in ("indian", "modern", "salsa"))
                                 + " | " + " / ".join(_f(v["fid_k_other_styles"].get(st, float("nan")), 1)
                                                      for st in ("indian", "modern", "salsa"))
                                 + f" | {_f(v.get('fid_k_all', float('nan')), 1)} |")
                lines.append("")
        if "uncontrolled_style_acc_4s" in g:
            lines += ["Uncontrolled dances (each in its clip's style from the start): share of 4 s windows read as "
                      "that style by `eval`'s 4 s classifier: "
                      + ", ".join(f"{st} {_f(100 * a, 0)} %" for st, a in g["uncontrolled_style_acc_4s"].items())
                      + ".", ""]
    return "\n".join(lines)


def write_controls_report(res: dict[str, Any], out_dir: Path, header: str = "") -> None:
    """controls.json, controls.md and controls.png (energy curve, text pairs, keyframe errors)."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "controls.json").write_text(json.dumps(res, indent=2) + "\n")
    (out_dir / "controls.md").write_text(controls_markdown(res, header) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dev dependency
        return
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    if "energy" in res:
        e = res["energy"]
        ax[0].plot(e["levels"], e["speed_ms"], "o-", label="all")
        for st, vs in e["per_style_speed_ms"].items():
            ax[0].plot(e["levels"], vs, ".--", label=st)
        ax[0].axhline(res["uncontrolled"]["speed_ms"], color="grey", lw=0.8, label="no energy input")
        ax[0].set(xlabel="energy control", ylabel="mean joint speed (m/s)", title="Energy")
        ax[0].legend(fontsize=8)
    for name, mk in (("text", "o"), ("text_held_out", "s")):
        if name in res:
            attrs = list(res[name])
            ax[1].bar([i + (0.4 if mk == "s" else 0) for i in range(len(attrs))],
                      [100 * res[name][a]["success"] for a in attrs], width=0.4, label=name)
            ax[1].set_xticks(range(len(attrs)), attrs)
    ax[1].axhline(80, color="red", lw=0.8)
    ax[1].set(ylabel="% of pairs in the asked direction", title="Text (opposite prompts)")
    if ax[1].get_legend_handles_labels()[0]:
        ax[1].legend(fontsize=8)
    if "keyframes" in res:
        k = res["keyframes"]
        labels, vals = [], []
        for joints in ("all", "upper", "lower"):
            for mode in ("blend", "slots_only", "no_keyframe"):
                labels.append(f"{joints}\n{mode.replace('_', ' ')}")
                vals.append(k[joints][mode]["err_cm_p50"])
        ax[2].bar(range(len(vals)), vals)
        ax[2].set_xticks(range(len(vals)), labels, fontsize=6)
        ax[2].axhline(10, color="red", lw=0.8)
        ax[2].set(ylabel="joint position error p50 (cm)", title="Keyframe at the target frame")
    fig.tight_layout()
    fig.savefig(out_dir / "controls.png", dpi=90)
    plt.close(fig)

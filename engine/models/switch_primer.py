"""Real dance of each style to restart the GPT with at a live genre switch (the model card's
``sampling.genre_switch.primer``; ``docs/models.md``, "Session 10: the switch primes the GPT with real dance").

A GPT restarted from BOS dances its first seconds like the start of a take (a dancer finding the music, often
hunched and still); primed with a few tokens of real dance of the new style whose last pose is near the performer's
current pose, it goes on as from the middle of a dance of that style (training windows start anywhere in a take,
so a window that opens on real tokens without BOS is what the GPT learned from).

:class:`PrimerBank` holds, per style, the token sequences of the training takes (the shipped VQ-VAE's tokens, so the
bank belongs to one tokenizer) and, for every token that may end a primer, a pose feature of the real frame that
ends it (:func:`pose_feature`: joint-local 6D rotations and root height, the hips' orientation weighted), stored
projected on its main components (float16) to keep the file small. :meth:`PrimerBank.choose` returns the tokens of
the snippet whose last pose is nearest a given one (deterministic: a re-plan of the switch step remakes the same
choice). Built by ``python3 -m engine.train.primer_bank``; the file is ``primer_bank.safetensors`` in the model
folder. Pure numpy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: File of the bank in a model folder.
PRIMER_BANK_FILE = "primer_bank.safetensors"
#: Lower-body vector entries of the pose feature: root height (1) and the 6D rotations of the hips and legs (3..57);
#: the root velocities (0, 2) and the foot contacts (57..61) are left out.
LOWER_FEATURE = np.r_[1, 3:57]
#: Index range of the hips' global orientation (6D) within the feature (after the 72 upper-body entries and the
#: root height): weighted by ``hip_weight``, so a primer starts facing and leaning as the dancer does.
HIP_FEATURE = slice(73, 79)
#: Most tokens a primer may have (the card's ``primer`` is checked against it).
MAX_PRIMER_TOKENS = 32
#: Most candidates a switch decodes to choose its primer (card ``genre_switch.primer_candidates``): one batch of that
#: many snippets, decoded once per switch on the live loop.
MAX_PRIMER_CANDIDATES = 256
#: How the output eases out of a switch's decoder restart (card ``genre_switch.ease_shape``): "blend" cross-fades
#: from the last frame before the switch, held still (session 9); "offset" moves the new frames by the seam's offset
#: (last frame before minus the restarted decoder's first), fading to 0, so their own motion shows at once (session 11);
#: "turn" is "offset" with each joint's offset a rotation (the restarted decoder's first frame to the last before,
#: about one axis), fading at an even angular rate (session 14: the 6D offset, faded linearly in its numbers, turns a
#: large offset mostly in the ease's middle frames, so the hands crossed the seam at up to 4.4 m/s, 2.3 turned).
EASE_SHAPES = ("blend", "offset", "turn")


#: Joints (of :class:`engine.models.vector_fk.VectorFK`'s 23) that :func:`seam_cost` weights: the feet and the hands,
#: whose jump at a switch's seam is largest (session 12: hands 39 cm, feet 20 cm, all joints 13 cm).
EXTREMITIES = (4, 8, 16, 20)


def seam_cost(last: np.ndarray, candidates: np.ndarray, extremity_weight: float = 1.0) -> np.ndarray:
    """How far each candidate's first frame is from the last frame before a switch: root-relative joint positions
    ``last`` [J, 3] and ``candidates`` [K, J, 3] (metres; :class:`~engine.models.vector_fk.VectorFK`'s) -> [K] the
    weighted mean squared joint distance (m^2), the :data:`EXTREMITIES` weighted ``extremity_weight``, the others 1."""
    w = np.ones(last.shape[0], np.float64)
    w[[j for j in EXTREMITIES if j < len(w)]] = extremity_weight
    d2 = np.sum((np.asarray(candidates, np.float64) - np.asarray(last, np.float64)) ** 2, axis=-1)  # [K, J]
    return (d2 @ w) / w.sum()


def pose_feature(upper: np.ndarray, lower: np.ndarray, hip_weight: float = 1.0) -> np.ndarray:
    """The matching feature of model vectors ``upper`` [..., 72] and ``lower`` [..., 61] -> [..., 127]."""
    f = np.concatenate([np.asarray(upper, np.float32), np.asarray(lower, np.float32)[..., LOWER_FEATURE]], axis=-1)
    f[..., HIP_FEATURE] *= hip_weight
    return f


@dataclass
class StyleBank:
    """One style's tokens and primer ends."""

    up: np.ndarray  # [N] token ids of the style's takes, concatenated
    down: np.ndarray  # [N]
    pos: np.ndarray  # [N] each token's index within its take
    ends: np.ndarray  # [M] indices into the tokens that may end a primer (feature of the real frame ending them)
    proj: np.ndarray  # [M, C] the ends' features, centred and projected on the main components


@dataclass
class PrimerBank:
    """Per style name a :class:`StyleBank`, with the feature's mean [F], components [C, F] and hip weight."""

    styles: dict[str, StyleBank]
    mean: np.ndarray
    components: np.ndarray
    hip_weight: float

    def choose(self, style: str, upper: np.ndarray, lower: np.ndarray,
               tokens: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``tokens`` (up, down) token ids of the style's real snippet whose last frame is nearest the pose
        (``upper`` [72], ``lower`` [61] model vectors), all from one take; None when the style has none that long."""
        ends = self.nearest(style, upper, lower, tokens, 1)
        return None if len(ends) == 0 else self.snippet(style, int(ends[0]), tokens)

    def nearest(self, style: str, upper: np.ndarray, lower: np.ndarray, tokens: int, count: int) -> np.ndarray:
        """The last tokens (indices into the style's tokens) of the ``count`` snippets of ``tokens`` tokens whose
        last frames are nearest the pose by the feature, nearest first (ties by index: deterministic); empty when
        the style has none that long."""
        sb = self.styles.get(style)
        if sb is None or tokens < 1 or count < 1:
            return np.zeros(0, np.int64)
        ok = sb.pos[sb.ends] >= tokens - 1
        if not ok.any():
            return np.zeros(0, np.int64)
        q = (pose_feature(upper, lower, self.hip_weight) - self.mean) @ self.components.T
        d = np.sum((sb.proj.astype(np.float32) - q) ** 2, axis=1)
        d[~ok] = np.inf
        m = min(int(count), int(ok.sum()))
        order = np.argsort(d, kind="stable")[:m]
        return sb.ends[order].astype(np.int64)

    def snippet(self, style: str, end: int, tokens: int) -> tuple[np.ndarray, np.ndarray]:
        """The (up, down) token ids of the style's ``tokens`` tokens ending at token ``end``."""
        sb = self.styles[style]
        return sb.up[end - tokens + 1 : end + 1].copy(), sb.down[end - tokens + 1 : end + 1].copy()

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        tensors = {"mean": self.mean.astype(np.float32), "components": self.components.astype(np.float32)}
        for st, sb in self.styles.items():  # token ids fit int16 (codebooks of at most 32768 codes)
            if len(sb.up) and max(int(sb.up.max()), int(sb.down.max())) > np.iinfo(np.int16).max:
                raise ValueError(f"token ids of {st} do not fit int16")
            starts = np.flatnonzero(sb.pos == 0)
            tensors.update({f"{st}.up": sb.up.astype(np.int16), f"{st}.down": sb.down.astype(np.int16),
                            f"{st}.lengths": np.diff(np.append(starts, len(sb.pos))).astype(np.int32),
                            f"{st}.ends": sb.ends.astype(np.int32), f"{st}.proj": sb.proj.astype(np.float16)})
        meta = {"hip_weight": json.dumps(self.hip_weight), "styles": json.dumps(sorted(self.styles))}
        save_file(tensors, str(path), metadata=meta)

    @staticmethod
    def load(path: Path) -> PrimerBank:
        """Read a bank file (safetensors; no pickle). Raises ValueError on a file that is not one."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
            styles = json.loads(meta["styles"])
            hip = float(json.loads(meta["hip_weight"]))
            banks = {st: StyleBank(up=t[f"{st}.up"].astype(np.int64), down=t[f"{st}.down"].astype(np.int64),
                                   pos=_positions(t[f"{st}.lengths"]),
                                   ends=t[f"{st}.ends"].astype(np.int64), proj=t[f"{st}.proj"])
                     for st in styles}
            mean, comp = t["mean"].astype(np.float32), t["components"].astype(np.float32)
        except (KeyError, ValueError, OSError, SafetensorError) as exc:
            raise ValueError(f"{path}: not a primer bank ({exc})") from None
        if comp.ndim != 2 or comp.shape[1] != mean.shape[0]:
            raise ValueError(f"{path}: not a primer bank (components {comp.shape}, mean {mean.shape})")
        for st, sb in banks.items():
            ends_ok = len(sb.ends) == 0 or (sb.ends.min() >= 0 and sb.ends.max() < len(sb.up))
            if not (len(sb.up) == len(sb.down) == len(sb.pos) and len(sb.ends) == len(sb.proj)
                    and sb.proj.shape[1:] == (comp.shape[0],) and ends_ok):
                raise ValueError(f"{path}: not a primer bank (style {st}: inconsistent shapes)")
        return PrimerBank(styles=banks, mean=mean, components=comp, hip_weight=hip)


def _positions(lengths: np.ndarray) -> np.ndarray:
    """Each token's index within its take, from the takes' lengths."""
    return np.concatenate([np.zeros(0, np.int64), *(np.arange(int(n), dtype=np.int64) for n in lengths)])


def build_bank(takes: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]], hip_weight: float = 3.0,
               components: int = 16, max_ends: int = 12288) -> PrimerBank:
    """A bank from per style a list of takes (up tokens [n], down tokens [n], the real feature [n, F] of the last
    frame of each token, :func:`pose_feature` with ``hip_weight``): every token may end a primer, at most
    ``max_ends`` per style (evenly spaced over its tokens beyond that); the features are projected on their
    ``components`` main directions (over all styles)."""
    every = np.concatenate([f for ts in takes.values() for _, _, f in ts]).astype(np.float64)
    mean = every.mean(0)
    _, _, vt = np.linalg.svd(every - mean, full_matrices=False)
    comp = vt[:components].astype(np.float32)
    styles = {}
    for st, ts in takes.items():
        up = np.concatenate([u for u, _, _ in ts]).astype(np.int64)
        down = np.concatenate([d for _, d, _ in ts]).astype(np.int64)
        pos = np.concatenate([np.arange(len(u)) for u, _, _ in ts]).astype(np.int64)
        feat = np.concatenate([f for _, _, f in ts]).astype(np.float32)
        ends = np.arange(len(up), dtype=np.int64)
        if len(ends) > max_ends:
            ends = np.unique(np.linspace(0, len(up) - 1, max_ends).round().astype(np.int64))
        styles[st] = StyleBank(up=up, down=down, pos=pos, ends=ends,
                               proj=((feat[ends] - mean.astype(np.float32)) @ comp.T).astype(np.float16))
    return PrimerBank(styles=styles, mean=mean.astype(np.float32), components=comp, hip_weight=float(hip_weight))

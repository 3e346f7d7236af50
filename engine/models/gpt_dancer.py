"""The VQ-VAE + GPT motion-model kind: per-performer state and the generator that steps them in one batch.

Implements :class:`engine.models.protocol.MotionModel` (kind ``vqvae-gpt``). One :meth:`DanceGenerator.step`
commits one token (4 frames, 133 ms) for every performer: the GPT
step over the batch (any backend of :mod:`export`), temperature/top-k sampling per performer, then one
batched streaming VQ-VAE decode (:class:`engine.models.vqvae_stream.StreamingDecoder`: each decoder
layer keeps its own short input history, so a token costs the same whatever came before).
The result is joint-local quaternions of the full CMU skeleton, ready for the playout buffers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine.frames import MODEL_FPS
from engine.models.beat_guidance import (
    ATTRIBUTE_COLUMNS,
    OFF,
    BeatGuide,
    GuidanceConfig,
    GuideState,
    candidate_logp,
    energy_target,
    gumbel_noise,
    pack_candidates,
    steer_targets,
    text_scale_key_ok,
)
from engine.models.conditioning import (
    COND_DIM,
    FRAMES_PER_TOKEN,
    GENRES,
    control_vector,
    decoder_beat_features,
    genre_id,
    has_energy,
)
from engine.models.dance_model import GPT_KIND
from engine.models.inbetween import InBetweener, InBetweenState, PoseTarget, joint_mask
from engine.models.pose_repr import (
    LOWER_JOINTS,
    UPPER_JOINTS,
    Motion,
    lock_feet_rot,
    metric_cmu_skeleton,
    model_joint_indices,
    motion_to_vectors,
    root_track,
    vectors_rot6d,
    vectors_to_motion,
)
from engine.models.protocol import REWIND_STEPS, Capabilities, Controls, StepFrames
from engine.models.sampling import (
    block_repeats,
    genre_guidance_scale,
    guide_logits,
    guide_text_logits,
    sample_rows,
    sample_tokens,
)
from engine.models.snapshots import SnapshotRing
from engine.models.switch_primer import EASE_SHAPES, MAX_PRIMER_CANDIDATES, MAX_PRIMER_TOKENS, PrimerBank, seam_cost
from engine.models.vector_fk import VectorFK
from engine.models.vqvae import VQVAE
from engine.models.vqvae_stream import StreamingDecoder
from engine.skeleton import rotations as R

if TYPE_CHECKING:  # backends are passed in; models never import export/ at run time
    from export.base import DecodeBackend, PerformerState

#: Share of the energy input the unconditional row carries too under genre guidance: 0 amplifies the energy by the
#: guidance scale with the genre and text (levels 0.75 and 1 then move 0.67 / 0.80 m/s, FID_k 87 / 151 on runs/gpt3c),
#: 1 leaves it unguided (no longer monotonic); 0.5 keeps it monotonic at a lower cost (0.61 / 0.72 m/s, 65 / 106;
#: bench/reports/controls_gpt3c.md).
ENERGY_SHARE = 0.5
#: Newest positions a control switch rewrites (2.1 s): as effective on the genre switch as the whole 8.5 s window
#: (24 switches of the shipped model: 46 % within one beat either way; 8 tokens: 38 %) at a quarter of its cost.
REWRITE_TOKENS = 16
#: After a genre switch the genre guidance scale is multiplied by the first for the next (second) tokens. Session 5
#: (whole window kept): 2x for 8 tokens took the new style within one beat from 25 % to 46 % of 24 switches (3x no
#: better). With the window restarted (:data:`SWITCH_CONTEXT`) a short, strong pull works best (session 7,
#: ``docs/models.md``, "Genre switch").
SWITCH_BOOST = (4.0, 4)
#: At the start of a dance (the first steps from BOS after a performer is added or reset) the genre guidance scale is
#: multiplied by the first for the first (second) tokens; (1, 0): off (the default; the shipped card sets it, session
#: 10). Why: a GPT starting from BOS draws what the training takes' first seconds look like, and most sequence starts
#: in the training data are the short modern takes' (collars held as in their first frames), so without a pull the
#: first 2-4 s of salsa and Indian dances read as modern (``docs/models.md``, "Session 10").
START_BOOST = (1.0, 0)
#: Newest GPT positions a performer keeps through a genre switch (None: the whole window, as before session 7; 0: the
#: GPT starts over from BOS under the new genre). The old style lives in the window's *tokens*, which a history
#: rewrite cannot change; so the window restarts, while the decoder, foot locking, root and staging go on, so the
#: motion continues without a snap (see ``DanceGenerator.restart_window``).
SWITCH_CONTEXT: int | None = 0
#: Whether a genre switch restarts the performer's streaming decoder too (its history of old-style tokens and beat
#: guidance's frame memory; see ``DanceGenerator.restart_decoder``), as the GPT window restarts: the decoder otherwise
#: blends the first new tokens' frames with the old style's for up to its receptive field (13 tokens). Off by default
#: (the frames then continue exactly); the shipped card turns it on (``docs/models.md``, "Session 9: the decoder
#: restarts with the GPT window").
SWITCH_DECODER_RESTART = False
#: Frames over which the output eases from the last frame before a decoder restart to the restarted decoder's frames
#: (model vectors blended linearly, weight ramping to 1; 0: no ease, the staging's speed limit alone bounds the seam).
SWITCH_EASE_FRAMES = 0
#: The joints a switch's ease may snap (``switch_snap``), each with its one child among the model joints, which
#: carries the snapped joint's eased rotation so the limb below it moves as the ease moves it. The collars are why:
#: the salsa and Indian takes hold them at the identity (not captured), the modern takes twist them ~135 degrees
#: about the collar bone, so a switch between them turns a collar half round about its own bone while the shoulder
#: turns back (invisible but for the collar bone's 2.5 cm off the axis); eased, that turn spans the seam's frames, and
#: the 4 s style classifier, which reads salsa's and Indian's collars by their zero spread, reads the window after a
#: switch into salsa as modern (``docs/models.md``, "Session 13: switches into salsa").
SNAP_CHILDREN: dict[str, str] = {"rCollar": "rShldr", "lCollar": "lShldr", "neck": "head", "rShldr": "rForeArm",
                                 "lShldr": "lForeArm", "rForeArm": "rHand", "lForeArm": "lHand", "abdomen": "chest"}
#: The energy label the GPT is given for run-time levels 0 and 1 (levels between map linearly): the training label
#: was the window's speed percentile within its style (0..1), and guidance amplifies it (``ENERGY_SHARE``).
ENERGY_RANGE = (0.0, 1.0)
#: Fewest candidates per steered performer worth decoding and scoring (see ``DanceGenerator.guidance_rows``).
MIN_GUIDED_CANDIDATES = 4
#: Tokens a rewind (a re-plan) may go back by default and continue exactly from the last kept token instead of
#: restarting the decoder: the state after each of the newest ``REWIND_TOKENS + 1`` tokens is kept (decoder
#: histories, 17 KB per token for the shipped VQ-VAE, foot locking, root, guidance memory, the keyframe blend, and
#: the GPT cache entries the token's step overwrote, 8 KB per cache row for the shipped GPT). Deeper rewinds restart
#: the decoder (the playout blends over the seam). :meth:`DanceGenerator.keep_rewinds` changes it (0: nothing kept).
REWIND_TOKENS = REWIND_STEPS


def _default_classes(embedding: np.ndarray) -> Mapping[str, str]:
    """The attribute classes the bundled prompt matcher reads in a text embedding (the text term's default)."""
    from engine.models.text_prompts import default_matcher

    return default_matcher().classes(embedding)


def text_classes_for(text_prompts: str) -> Callable[[np.ndarray], Mapping[str, str]] | None:
    """The ``text_classes`` of beat guidance's text term for a model reading prompts as ``text_prompts``: the
    bundled matcher's for "attributes", none (no text term) for "sentence"."""
    return _default_classes if text_prompts == "attributes" else None


def cache_rows(performers: int, genre_guidance: float | None = None, text_guidance: float | None = None,
               attribute_text_scales: bool = False) -> int:
    """Backend cache rows ``performers`` need: two each under genre guidance (conditional + unconditional),
    three with a separate text guidance scale, for every text or for some attributes' texts
    (``attribute_text_scales``; + the genre-only row)."""
    return performers * rows_per_performer(genre_guidance, text_guidance, attribute_text_scales)


def rows_per_performer(genre_guidance: float | None, text_guidance: float | None,
                       attribute_text_scales: bool = False) -> int:
    """1 (no guidance), 2 (genre guidance) or 3 (genre guidance with a separate text scale, for every text or for
    some attributes' texts)."""
    if genre_guidance_scale(genre_guidance) is None:
        return 1
    return 2 if text_guidance is None and not attribute_text_scales else 3


def snap_joints(eased: np.ndarray, raw: np.ndarray, pairs: Sequence[tuple[slice, slice]]) -> np.ndarray:
    """Upper vectors ``eased`` [T, 72] with each pair's parent joint given ``raw``'s rotation (the new frames as
    decoded) and its child the rotation that keeps the eased composite: child' = raw_parent^T eased_parent
    eased_child, so every joint below the parent keeps its eased orientation (only the child's own point moves, by
    the parent's turn of its bone offset)."""
    out = np.array(eased, dtype=np.float64)
    for pa, ch in pairs:
        composite = R.rot6d_to_matrix(out[:, pa]) @ R.rot6d_to_matrix(out[:, ch])
        parent = R.rot6d_to_matrix(raw[:, pa].astype(np.float64))
        out[:, ch] = R.matrix_to_rot6d(np.swapaxes(parent, -1, -2) @ composite)
        out[:, pa] = raw[:, pa]
    return out.astype(eased.dtype)


def seam_turn(last_up: np.ndarray, last_down: np.ndarray, first_up: np.ndarray, first_down: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The "turn" ease's seam offset from the restarted decoder's first frame (``first_*``) to the last frame before
    the switch (``last_*``): each model joint's rotation from the first frame's to the last's, in the joint's own
    frame (first^T last), as an axis-angle [21 * 3] (lower joints, then upper), and the lower vector's offset [61]
    (its root velocity, height and contact channels are offset as numbers, as by the "offset" ease)."""
    n = len(LOWER_JOINTS)
    rl = R.rot6d_to_matrix(_six(last_up[None], last_down[None]))[0]
    rf = R.rot6d_to_matrix(_six(first_up[None], first_down[None]))[0]
    turn = R.matrix_to_axis_angle(np.swapaxes(rf, -1, -2) @ rl)
    off = np.asarray(last_down, np.float64) - np.asarray(first_down, np.float64)
    off[3 : 3 + 6 * n] = 0.0
    return turn.reshape(-1), off


def turned(upper: np.ndarray, lower: np.ndarray, turn: np.ndarray, off: np.ndarray, share: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Model vectors (upper [T, 72], lower [T, 61]) with each joint's rotation turned by ``share`` [T] (in [0, 1])
    of the seam's rotation ``turn`` (:func:`seam_turn`: about its axis, so the angle fades at an even rate) and the
    lower vector's other channels moved by ``share`` of ``off``; rows whose share is 0 are left as they are."""
    rows = share > 0
    up, down = np.array(upper), np.array(lower)
    if not np.any(rows):
        return up, down
    n = len(LOWER_JOINTS)
    s = share[rows].astype(np.float64)
    rot = R.rot6d_to_matrix(_six(upper[rows], lower[rows]))  # [t, 21, 3, 3]
    part = R.axis_angle_to_matrix(s[:, None, None] * turn.reshape(1, -1, 3))
    six = R.matrix_to_rot6d(rot @ part)  # [t, 21, 6]
    up[rows] = six[:, n:].reshape(len(s), -1).astype(up.dtype)
    d = lower[rows].astype(np.float64) + s[:, None] * off
    d[:, 3 : 3 + 6 * n] = six[:, :n].reshape(len(s), -1)
    down[rows] = d.astype(down.dtype)
    return up, down


def _six(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """:func:`vectors_rot6d` in float64."""
    return vectors_rot6d(np.asarray(upper, np.float64), np.asarray(lower, np.float64))


@dataclass(frozen=True)
class _RingUndo:
    """What one history rewrite in a step overwrote, so a rewind past that step can put it back: the keys and values
    of cache slots ``slots`` of the performer's row ``row`` (0 conditional, 1 unconditional, 2 genre-only), or
    (``row`` -1) its token/conditioning history as it was (``hist``)."""

    row: int
    slots: np.ndarray | None = None
    k: Any = None  # [T, L, H, D], the backend's array type
    v: Any = None
    hist: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class _Marks:
    """A performer's scalar and list state after one of its steps (kept in the snapshot ring for exact rewinds)."""

    pos: int
    prev: tuple[int, int]
    textless_pos: int
    textless_live: bool
    known: int
    encoded: tuple[int, np.ndarray | None] | None
    boost_until: int
    boost_factor: float
    keyframe_until: int | None
    pinned: tuple[tuple[int, int, int], ...]
    inbetween: InBetweenState
    seam: tuple[np.ndarray, np.ndarray, int, int] | None
    rewrites: tuple[_RingUndo, ...]  # the step's history rewrites (undone after its own write, newest first)


@dataclass(eq=False)
class Performer:
    """Everything one performer owns: its cache row (``state``), decoder row, recent tokens, guidance
    memory, controls, root drift and random stream. :meth:`reset` and :meth:`rewind` change all of them
    together, so no caller edits them one by one."""

    pid: int
    slot: int  # row in the streaming decoder's state
    state: PerformerState
    controls: Controls
    tok_up: np.ndarray  # [H] int64 recent tokens, most recent last (re-planning rewinds through them)
    tok_down: np.ndarray  # [H] int64
    backend: DecodeBackend
    decoder: StreamingDecoder
    snapshots: SnapshotRing  # the generator's: this performer's state after each of its newest tokens (row ``slot``)
    n_tokens: int = 0
    root_xz: np.ndarray = field(default_factory=lambda: np.zeros(2))
    rng: torch.Generator = field(default_factory=torch.Generator)  # its own: every draw of its tokens
    last_vec: tuple[np.ndarray, np.ndarray] | None = None  # previous frame (upper, lower) as decoded: foot locking
    # After a genre switch restarted the decoder: (upper, lower) of the last frame before it (from the first eased
    # frame on, the seam's offset: "offset" that frame minus the first new one, "turn" :func:`seam_turn`'s), frames
    # eased so far and frames to ease (see ``DanceGenerator.switch_ease``); None: no ease under way.
    seam: tuple[np.ndarray, np.ndarray, int, int] | None = None
    vectors: tuple[np.ndarray, np.ndarray] | None = None  # the newest step's model vectors (upper, lower) [4, D]
    seed: int = 0  # its random stream's seed (a reset starts the stream over too)
    guide: GuideState | None = None  # beat-guidance memory (None: guidance off)
    keyframe_until: int | None = None  # token position after which the pinned keyframe is cleared
    pad: int = 0  # token history filler before the first token (never decoded)
    known: int = 0  # entries of tok_up / tok_down that hold drawn tokens (the rest, at the front, are filler)
    inbetween: InBetweenState = field(default_factory=InBetweenState)  # pinned poses and their blend
    pinned: list[tuple[int, int, int]] = field(default_factory=list)  # (token pos, up, down) waiting for the slot
    uncond: PerformerState | None = None  # the genre-guidance cache row (genre "none", no text); None: off
    textless: PerformerState | None = None  # the text-guidance row (genre and energy, no text); None: off
    textless_live: bool = False  # whether ``textless`` follows the dance (stepped while a text is set)
    # The inputs fed at the last ``context`` positions (ring by position), so a control switch can rewrite
    # the cached history under the new controls (``DanceGenerator.rewrite_history``).
    hist_up: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [C]
    hist_down: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [C]
    hist_cond: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [C, cond_dim]
    encoded: tuple[int, np.ndarray | None] | None = None  # (genre, global vector) the cached history carries
    boost_until: int = -1  # genre guidance is boosted before this position (a dance's start, a genre switch)
    boost_factor: float = 1.0  # by this factor
    # For exact rewinds (only while rewinds are kept): the cache and history entries the step being made rewrote
    # before its own write, in order (see ``_RingUndo``), and the keyframes added lately (n_tokens then, target,
    # up, down), replayed after a rewind to before them.
    undo: list[_RingUndo] = field(default_factory=list)
    added: list[tuple[int, PoseTarget, int, int]] = field(default_factory=list)

    def reset(self) -> None:
        """Start the dance over (position 0, BOS, its random stream from its seed), as if just added; keeps
        where it stands. So steps timed before a show (the runtime's calibration) leave no trace."""
        self.backend.reset_state(self.state)
        if self.uncond is not None:
            self.backend.reset_state(self.uncond)
        self.rng.manual_seed(self.seed)
        self.tok_up[:] = self.pad
        self.tok_down[:] = self.pad
        self.n_tokens = 0
        self.known = 0
        self.last_vec = None
        self.seam = None
        self.keyframe_until = None
        self.inbetween.clear()
        self.pinned.clear()
        self.encoded = None
        self.textless_live = False
        self.boost_until = -1
        self.boost_factor = 1.0
        if self.guide is not None:
            self.guide.reset()
        self.decoder.reset(self.slot)
        self.snapshots.forget(self.slot)
        self.undo.clear()
        self.added.clear()

    def rows(self) -> list[PerformerState]:
        """Its backend cache rows, by row index: conditional, unconditional (genre guidance), genre-only (text
        guidance)."""
        return [st for st in (self.state, self.uncond, self.textless) if st is not None]

    def rewind(self, n: int, root_xz: np.ndarray | None = None) -> bool:
        """Discard the newest ``n`` tokens: they are regenerated at the next steps. Returns whether it was exact.

        Within the kept states (:data:`REWIND_TOKENS` by default, :meth:`DanceGenerator.keep_rewinds`; ``root_xz``
        is then not needed) everything the discarded steps changed goes back to what it was after the last kept
        token (:meth:`_rewind_exact`): the GPT's cache rows (the ring slots the discarded steps and their history
        rewrites overwrote, which past the attention window held the window's oldest positions), positions, recent
        tokens and history, the decoder's history, foot locking, root, beat-guidance memory, the keyframe blend
        and pinned keyframes, and the control bookkeeping; so the regenerated frames are exactly those of a
        performer that never made the discarded steps, given the same random stream and controls. The caller
        (:meth:`DanceGenerator.rewind`) then replays the keyframes added since and pins the GPT's keyframe slots.
        A deeper rewind restarts the decoder, foot locking and guidance memory from ``root_xz`` (playout blends over
        that seam), and the discarded tokens' ring slots stay overwritten: once the dance is longer than the
        attention window (``context``) the first regenerated tokens see them in place of the window's oldest
        positions (an approximation).
        """
        n = min(n, self.n_tokens, len(self.tok_up) - 1)
        if n <= 0:
            return False
        if self._rewind_exact(n):
            return True
        # A window restarted by a genre switch holds no positions before it: a rewind past them (never done by
        # the runtime, which rewinds only unplayed steps, all made after the switch) leaves the GPT window empty.
        back = min(n, self.state.pos)
        self.state.pos -= back
        self.n_tokens -= n
        self.known = max(0, self.known - n)
        self.tok_up[n:] = self.tok_up[:-n].copy()
        self.tok_down[n:] = self.tok_down[:-n].copy()
        self.tok_up[:n] = self.pad
        self.tok_down[:n] = self.pad
        # The next step's input: what was fed at that position before (the newest kept token; BOS at position 0 of
        # a dance or of a window a genre switch restarted), or BOS when the whole dance was discarded (as after a
        # reset; the filler in the history is never an input).
        bos = self.backend.config.bos_id
        j = self.state.pos % len(self.hist_up) if len(self.hist_up) else 0
        up, down = (int(self.hist_up[j]), int(self.hist_down[j])) if self.n_tokens and len(self.hist_up) else (bos, bos)
        self.state.feed(up, down)
        if self.uncond is not None:  # the unconditional row saw the same tokens: it rewinds with them
            self.uncond.pos -= back
            self.uncond.feed(up, down)
        self.textless_live = False  # rewritten from the history at its next use
        if root_xz is not None:
            self.root_xz = np.asarray(root_xz, dtype=np.float64)[:2].copy()
        self.decoder.reset(self.slot)
        self.last_vec = None
        self.seam = None
        if self.guide is not None:
            self.guide.reset()
        self.inbetween.restart()
        self.undo.clear()
        return False

    def _rewind_exact(self, n: int) -> bool:
        """Undo the newest ``n`` steps from the snapshot ring (see :meth:`rewind`); False (nothing changed) when the
        state after the last kept token, or what a discarded step overwrote, is not kept."""
        last = self.n_tokens - 1 - n  # the newest kept token
        if last < 0 or not self.snapshots.depth:
            return False
        snaps = [self.snapshots.load(self.slot, k) for k in range(last, self.n_tokens)]
        if any(sn is None for sn in snaps):
            return False
        rows = self.rows()
        for sn in reversed(snaps[1:]):  # newest first; within a step, the reverse of what it did
            assert sn is not None
            sel = np.flatnonzero(sn["ring_slot"] >= 0)
            if len(sel):  # the slots the step's own cache write overwrote
                self.backend.write_ring([rows[r] for r in sel], sn["ring_slot"][sel], _take(sn["ring_k"], sel),
                                        _take(sn["ring_v"], sel))
            j = int(sn["hist_at"])  # the history entry it wrote
            self.hist_up[j] = sn["hist_up"]
            self.hist_down[j] = sn["hist_down"]
            self.hist_cond[j] = sn["hist_cond"]
            for u in reversed(sn["marks"].rewrites):  # its history rewrites (a control switch), newest first
                if u.hist is not None:
                    self.hist_up[:], self.hist_down[:], self.hist_cond[:] = u.hist
                else:
                    assert u.slots is not None
                    self.backend.write_ring([rows[u.row]] * len(u.slots), u.slots, u.k, u.v)
        snap = snaps[0]
        assert snap is not None
        m: _Marks = snap["marks"]
        self.n_tokens = last + 1
        for st in rows:
            st.feed(*m.prev)
        self.state.pos = m.pos
        if self.uncond is not None:
            self.uncond.pos = m.pos
        if self.textless is not None:
            self.textless.pos = m.textless_pos
        self.textless_live = m.textless_live
        self.tok_up[:] = snap["tok_up"]
        self.tok_down[:] = snap["tok_down"]
        self.known = m.known
        self.encoded = m.encoded
        self.boost_until = m.boost_until
        self.boost_factor = m.boost_factor
        self.keyframe_until = m.keyframe_until
        self.pinned = list(m.pinned)
        self.inbetween = m.inbetween.copy()
        self.seam = m.seam
        self.decoder.set_state(self.slot, snap)
        self.last_vec = (np.array(snap["last_up"]), np.array(snap["last_down"])) if snap["has_last"] else None
        self.root_xz = np.array(snap["root_xz"], dtype=np.float64)
        if self.guide is not None:
            self.guide.set_state(snap)
        self.undo.clear()
        return True

    def kept_state(self) -> dict[str, Any]:
        """What :meth:`rewind` puts back besides the decoder's histories and the cache entries: foot locking, root,
        guidance memory, recent tokens and the performer's other state (``marks``; it takes the step's history
        rewrites, ``undo``)."""
        out: dict[str, Any] = {"root_xz": np.asarray(self.root_xz, np.float64),
                               "has_last": np.array(self.last_vec is not None),
                               "tok_up": self.tok_up.copy(), "tok_down": self.tok_down.copy()}
        if self.last_vec is not None:
            out["last_up"], out["last_down"] = self.last_vec
        if self.guide is not None:
            out.update(self.guide.state())
        out["marks"] = _Marks(
            pos=self.state.pos, prev=(self.state.prev_up, self.state.prev_down),
            textless_pos=-1 if self.textless is None else self.textless.pos, textless_live=self.textless_live,
            known=self.known, encoded=self.encoded, boost_until=self.boost_until, boost_factor=self.boost_factor,
            keyframe_until=self.keyframe_until,
            pinned=tuple(self.pinned), inbetween=self.inbetween.copy(), seam=self.seam, rewrites=tuple(self.undo))
        self.undo.clear()
        return out


def _spread(x: Any, at: list[int], n: int) -> Any:
    """[n, ...] zeros (numpy or torch, as ``x``) with ``x``'s rows at ``at``."""
    if isinstance(x, torch.Tensor):
        out = x.new_zeros((n, *x.shape[1:]))
        out[torch.tensor(at)] = x
        return out
    res = np.zeros((n, *x.shape[1:]), x.dtype)
    res[np.asarray(at)] = x
    return res


def _take(x: Any, sel: np.ndarray) -> Any:
    """Rows ``sel`` of a numpy array or torch tensor."""
    return x[torch.from_numpy(sel)] if isinstance(x, torch.Tensor) else x[sel]


#: The frames of one committed token (kept for callers of the generator: a token is one step).
TokenFrames = StepFrames


class DanceGenerator:
    """Steps a batch of performers through the GPT and the VQ-VAE decoder.

    Args:
        backend: a decode backend (its capacity bounds the number of performers).
        vqvae: the trained VQ-VAE whose codebooks the GPT predicts.
        seed: base seed; performer ``i`` draws every token from its own random stream, seeded ``seed + i`` (a reset
            starts it over), so one performer's controls and re-plans never change another's dance.
        foot_lock: keep contact feet planted through the root velocity (``pose_repr.lock_feet``), as the
            model card of the shipped model asks.
        decoder_runner: what runs the streaming VQ-VAE decoder step (None: torch; the onnxruntime backend is
            ``export.decoder_backend.create_decoder_runner("onnxruntime")``).
        guidance: beat-guided sampling (:mod:`engine.models.beat_guidance`; the model card's setting);
            off by default. Candidates are decoded from each performer's decoder state without committing.
        guidance_rows: candidate rows decoded per step, shared by the performers steered in that step
            (each gets ``min(candidates, guidance_rows // steered)``; below ``MIN_GUIDED_CANDIDATES`` the
            step samples plainly: a few candidates change little and each steered performer costs a scoring).
            Bounds the extra step time when many performers are steered on the same beat.
        rewrite_on_control: when a performer's genre, text or energy changes, rewrite its cached history (the
            conditional row's newest ``rewrite_tokens`` positions) under the new controls before the next step
            (:meth:`rewrite_history`), so the change is not diluted by history that still carries the old one.
            False: the new controls enter new positions only (the history keeps the old ones until it leaves the
            window).
        max_repeat: the repetition guard (the model card's ``sampling.max_repeat``): a token drawn for the
            last ``max_repeat`` steps in a row is masked for the next draw, plain and candidate draws alike,
            upper and lower body separately (:func:`engine.models.sampling.block_repeats`). None or 0: off.
        genre_guidance: classifier-free guidance on the genre (the model card's ``sampling.genre_guidance``):
            each performer owns a second cache row stepped with genre "none" and no text/controls in the same
            batched GPT step, and draws from ``uncond + s * (cond - uncond)``
            (:func:`engine.models.sampling.guide_logits`), before the repetition guard and beat guidance.
            None or 1.0: off. The backend needs :func:`cache_rows` rows (two per performer when on).
        text_guidance: a separate guidance scale for the text (the card's ``sampling.text_guidance``; needs
            genre guidance): a third row per performer with the genre and energy but no text, stepped only
            while the performer has a text (its history rewritten when the text is set), and the draw is
            ``uncond + s_g * (genre_only - uncond) + s_t * (cond - genre_only)``
            (:func:`engine.models.sampling.guide_text_logits`). None: the text shares the genre's scale (two rows).
        rewrite_tokens: how many of the newest positions a control switch rewrites (None: the whole window; fewer
            cost less on the engine thread, the older ones keep the old controls until they leave the window).
        switch_boost: (factor, tokens): after a performer's genre changes, its genre guidance scale is multiplied
            by ``factor`` for ``tokens`` tokens (:data:`SWITCH_BOOST`; (1, 0): off), so the new style shows sooner.
        start_boost: (factor, tokens): the genre guidance scale is multiplied by ``factor`` for a dance's first
            ``tokens`` tokens (from BOS after the performer is added or reset; :data:`START_BOOST`; (1, 0): off), so
            the dance starts in its style instead of as the training takes' starts look (mostly modern's).
        start_genres: the genre ids whose dances get ``start_boost`` (None: every genre).
        switch_context: GPT positions a performer keeps through a genre switch (:data:`SWITCH_CONTEXT`; None: the
            whole window): the older ones are forgotten (:meth:`restart_window`), so the new genre is not held back
            by tokens drawn in the old style. Its decoder, foot locking, root and staging go on (no snap).
        switch_decoder: whether a genre switch restarts the performer's streaming decoder too
            (:data:`SWITCH_DECODER_RESTART`, :meth:`restart_decoder`): its history of old-style tokens is forgotten,
            with beat guidance's frame memory, so the first new tokens decode as the new style instead of blended
            with the old; the root and staging go on, and the staging's speed limit bounds the seam.
        switch_ease: frames over which the output eases from the last frame before such a decoder restart to the new
            frames (:data:`SWITCH_EASE_FRAMES`; 0: none).
        switch_ease_shape: how (:data:`engine.models.switch_primer.EASE_SHAPES`): "blend" cross-fades from that
            frame held still; "offset" adds the seam's offset (that frame minus the restarted decoder's first) to the
            new frames, fading linearly over the ease, so the new motion shows from the first frame.
            "turn": as "offset", each joint's offset a rotation (:func:`seam_turn`) fading at an even angular rate.
        switch_primer: (tokens, bank): at a genre switch the GPT window restarts primed with ``tokens`` tokens of real
            dance of the new style from ``bank`` (:class:`engine.models.switch_primer.PrimerBank`), the snippet whose
            last pose is nearest the performer's last decoded frame, instead of BOS (:meth:`prime_switch`); with
            ``switch_decoder`` the restarted decoder decodes them first, so it goes on from that pose. (0, None):
            off. A style the bank lacks, or a performer with no frame yet, restarts as without it.
        switch_snap: joints (:data:`SNAP_CHILDREN`) that take the restarted decoder's rotation at once in the ease
            (none: every joint eased); each one's child takes the rotation that keeps the pair's eased composite
            (parent times child), so the limb below moves as the ease alone would move it.
        switch_primer_match: (candidates, extremity weight): with more than 1 candidate, the primer is chosen among
            the bank's ``candidates`` snippets nearest by the feature by decoding each (as the restarted decoder
            does, in one batch) and taking the one whose last decoded frame is nearest the performer's last frame
            in root-relative joint positions, the hands and feet weighted (:func:`engine.models.switch_primer.
            seam_cost`); (1, _): the feature's nearest, not decoded.
        energy_range: (label at level 0, label at level 1): the energy label the GPT is given for a run-time energy
            level (:data:`ENERGY_RANGE`; linear in between).
        text_share: share of the text the unconditional row carries too (1: the text is not guided, 0: guided with
            the genre; None: 1 for models that read the sentence as it is, 0 for those matched to attributes).
        energy_share: share of the energy input the unconditional row carries too under genre guidance
            (:data:`ENERGY_SHARE`; 0: the energy is amplified with the genre, 1: not guided).
        text_prompts: how the model reads a text (its ``capabilities.text_prompts``; the card's, see
            :attr:`engine.models.dance_model.DanceModel.text_prompts`); the embedding is made by the caller.
        text_classes: ``embedding [D] -> {attribute: class}``, the caption attribute classes a performer's text
            embedding names, for the text term of beat guidance (``guidance.text_weight`` > 0); None: the bundled
            matcher's (:meth:`engine.models.text_prompts.PromptMatcher.classes`) for models that read prompts as
            "attributes", nothing for "sentence" models (no text term).
        text_baseline: a sentence embedding the unconditional row carries while a performer has a text (None:
            none), or a function that makes it (called once, when a performer first has a text under guidance).
            Under genre guidance the text is then amplified as its departure from this baseline (e.g. the mean
            phrase of :data:`engine.models.text_prompts.PHRASES`, :func:`~engine.models.text_prompts.
            phrase_baseline`), not as "some text against none": what all texts share is not amplified. A
            performer without a text is stepped exactly as before.
    """

    def __init__(self, backend: DecodeBackend, vqvae: VQVAE, seed: int = 0, foot_lock: bool = True,
                 decoder_runner: Any = None, guidance: GuidanceConfig = OFF, guidance_rows: int = 64,
                 max_repeat: int | None = None, genre_guidance: float | None = None,
                 rewrite_on_control: bool = True, text_guidance: float | None = None,
                 text_prompts: str = "sentence", energy_share: float = ENERGY_SHARE,
                 switch_boost: tuple[float, int] = SWITCH_BOOST, rewrite_tokens: int | None = REWRITE_TOKENS,
                 start_boost: tuple[float, int] = START_BOOST, start_genres: Sequence[int] | None = None,
                 text_share: float | None = None, switch_context: int | None = SWITCH_CONTEXT,
                 energy_range: tuple[float, float] = ENERGY_RANGE, switch_decoder: bool = SWITCH_DECODER_RESTART,
                 switch_ease: int = SWITCH_EASE_FRAMES, switch_ease_shape: str = "blend",
                 switch_primer: tuple[int, PrimerBank | None] = (0, None),
                 switch_snap: Sequence[str] = (),
                 switch_primer_match: tuple[int, float] = (1, 1.0),
                 text_baseline: np.ndarray | Callable[[], np.ndarray] | None = None,
                 text_classes: Callable[[np.ndarray], Mapping[str, str]] | None = None,
                 text_guidance_attributes: Mapping[str, float] | None = None) -> None:
        self.text_baseline = text_baseline
        if text_classes is None:
            text_classes = text_classes_for(text_prompts)
        self._classify = text_classes  # a text embedding -> the attribute classes it names (None: none)
        self.text_classes = text_classes if guidance.enabled and guidance.text_on else None
        # text embedding -> (its steer targets, the attributes it names "low" / "high"), cached (``_read_text``)
        self._read: dict[bytes, tuple[tuple[tuple[int, float], ...], frozenset[str]]] = {}
        # A model that reads the sentence as it is (not trained on measured captions) has its text unguided: the
        # shipped GPT's text amplified 8x made its dances unnatural (FID_k 10-30x the uncontrolled's).
        self.text_share = (1.0 if text_prompts == "sentence" else 0.0) if text_share is None else text_share
        if not 0.0 <= self.text_share <= 1.0:
            raise ValueError(f"text_share must be in [0, 1], got {text_share}")
        if rewrite_tokens is not None and rewrite_tokens < 1:
            raise ValueError(f"rewrite_tokens must be >= 1 or None, got {rewrite_tokens}")
        self.rewrite_tokens = rewrite_tokens
        if not 0.0 <= energy_share <= 1.0:
            raise ValueError(f"energy_share must be in [0, 1], got {energy_share}")
        self.energy_share = energy_share
        if not (switch_boost[0] > 0 and math.isfinite(switch_boost[0]) and switch_boost[1] >= 0):
            raise ValueError(f"switch_boost must be (factor > 0, tokens >= 0), got {switch_boost}")
        self.switch_boost = (float(switch_boost[0]), int(switch_boost[1]))
        if not (start_boost[0] > 0 and math.isfinite(start_boost[0]) and start_boost[1] >= 0):
            raise ValueError(f"start_boost must be (factor > 0, tokens >= 0), got {start_boost}")
        self.start_boost = (float(start_boost[0]), int(start_boost[1]))
        self.start_genres = None if start_genres is None else frozenset(int(g) for g in start_genres)
        if switch_context is not None and switch_context < 0:
            raise ValueError(f"switch_context must be >= 0 or None, got {switch_context}")
        self.switch_context = switch_context
        if switch_ease < 0:
            raise ValueError(f"switch_ease must be >= 0 frames, got {switch_ease}")
        self.switch_decoder = bool(switch_decoder)
        self.switch_ease = int(switch_ease)
        if switch_ease_shape not in EASE_SHAPES:
            raise ValueError(f"switch_ease_shape must be one of {EASE_SHAPES}, got {switch_ease_shape!r}")
        self.switch_ease_offset = switch_ease_shape == "offset"
        self.switch_ease_turn = switch_ease_shape == "turn"
        bad = [j for j in switch_snap if j not in SNAP_CHILDREN]
        if bad:
            raise ValueError(f"switch_snap joints must be among {sorted(SNAP_CHILDREN)}, got {bad}")
        # (6D slice of the snapped joint, of its child) in the upper vector, in the order given
        six = [(UPPER_JOINTS.index(j), UPPER_JOINTS.index(SNAP_CHILDREN[j])) for j in switch_snap]
        self.switch_snap = tuple((slice(6 * a, 6 * a + 6), slice(6 * c, 6 * c + 6)) for a, c in six)
        if not 0 <= int(switch_primer[0]) <= MAX_PRIMER_TOKENS or (switch_primer[0] and switch_primer[1] is None):
            raise ValueError(f"switch_primer must be (tokens in [0, {MAX_PRIMER_TOKENS}], a bank when tokens > 0), "
                             f"got {switch_primer}")
        self.switch_primer = (int(switch_primer[0]), switch_primer[1])
        if not (1 <= int(switch_primer_match[0]) <= MAX_PRIMER_CANDIDATES and float(switch_primer_match[1]) >= 0):
            raise ValueError(f"switch_primer_match must be (candidates in [1, {MAX_PRIMER_CANDIDATES}], a weight >= "
                             f"0), got {switch_primer_match}")
        self.switch_primer_match = (int(switch_primer_match[0]), float(switch_primer_match[1]))
        self._primer_fk: VectorFK | None = None
        if self.switch_primer[0] > 1 and not (rewrite_on_control and (rewrite_tokens is None
                                                                     or rewrite_tokens >= self.switch_primer[0] - 1)):
            raise ValueError("a switch primer needs the history rewritten on a control switch, over at least its "
                             f"tokens ({self.switch_primer[0] - 1}); rewrite_tokens is {rewrite_tokens}")
        lo, hi = energy_range
        if not (0.0 <= lo <= 1.0 and 0.0 <= hi <= 1.0):
            raise ValueError(f"energy_range must lie in [0, 1], got {energy_range}")
        self.energy_range = (float(lo), float(hi))
        self.genre_guidance = genre_guidance_scale(genre_guidance)
        if text_guidance is not None and not (math.isfinite(text_guidance) and text_guidance >= 0):
            raise ValueError(f"text guidance must be a finite number >= 0, got {text_guidance!r}")
        self.text_guidance = None if self.genre_guidance is None else text_guidance
        tga = dict(text_guidance_attributes or {})
        for name, sc in tga.items():
            if not text_scale_key_ok(name) or not (math.isfinite(sc) and sc >= 0):
                raise ValueError(f"text_guidance_attributes takes attribute names of {sorted(ATTRIBUTE_COLUMNS)} "
                                 f"(or one side, e.g. 'travel:low') with a scale >= 0, got {name!r}: {sc!r}")
        # the text scale of texts naming only these attributes (``text_scale_of``); needs genre guidance
        self.text_guidance_attributes = {} if self.genre_guidance is None else {k: float(v) for k, v in tga.items()}
        self.rewrite_on_control = rewrite_on_control
        self.rewrites = 0  # histories rewritten after a control switch (statistics)
        # Unconditional-row history rewrites a window restart left for the step's one forward (performer, up [T],
        # down [T], cond [T, C], global vector or None, keyframe or None); empty between steps.
        self._uncond_todo: list[tuple[Performer, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None,
                                      tuple[int, int, int] | None]] = []
        if max_repeat is not None and max_repeat < 0:
            raise ValueError(f"max_repeat must be >= 0 or None, got {max_repeat}")
        self.max_repeat = max_repeat or 0
        self.backend = backend
        self.guidance = guidance
        self.guidance_rows = guidance_rows
        self.guidance_skipped = 0  # steered tokens sampled plainly because the row budget was spent
        self.guide = BeatGuide(guidance, foot_lock) if guidance.enabled else None
        self.guided_tokens = 0  # tokens chosen among candidates (statistics)
        self.foot_lock = foot_lock
        self.vqvae = vqvae.eval()
        self.seed = seed
        self.skeleton = metric_cmu_skeleton()
        self.n_joints = self.skeleton.num_joints
        self.model_idx = model_joint_indices(self.skeleton)
        self.ctx = max(16, self.max_repeat)  # recent tokens kept per performer
        rows = rows_per_performer(self.genre_guidance, self.text_guidance, bool(self.text_guidance_attributes))
        self.capacity = backend.capacity // rows  # performers
        if self.capacity < 1:
            raise ValueError(f"guidance needs {rows} cache rows per performer; the backend has {backend.capacity}")
        self.decoder = StreamingDecoder(vqvae, self.capacity, runner=decoder_runner)
        # each performer's state after its newest tokens, row = its decoder slot (see keep_rewinds)
        self.snapshots = SnapshotRing.for_rewinds(REWIND_TOKENS, rows=self.capacity)
        self._free_slots = list(range(self.capacity))
        self.performers: list[Performer] = []
        self._next_pid = 0
        self._pad = 0  # token history filler before a performer's first token (never decoded)
        self.steps = 0
        self.kind = GPT_KIND
        self.frames_per_step = FRAMES_PER_TOKEN
        cfg = backend.config
        self.capabilities = Capabilities(n_genres=cfg.n_genres, text=cfg.text_dim > 0,
                                         keyframes=cfg.n_keyframe_slots > 0, energy=has_energy(cfg.text_dim),
                                         text_prompts=text_prompts, step_some=True)
        self.inbetweener = InBetweener(self.skeleton, MODEL_FPS)

    # -- performers ------------------------------------------------------------------------------------

    def performer_ids(self) -> list[int]:
        return [p.pid for p in self.performers]

    def add_performer(self, controls: Controls | None = None) -> int:
        if not self._free_slots:
            raise RuntimeError(f"generator is full: capacity {self.capacity} performers")
        state = self.backend.new_state()
        uncond = None if self.genre_guidance is None else self.backend.new_state()  # the row after ``state``
        textless = (None if self.text_guidance is None and not self.text_guidance_attributes
                    else self.backend.new_state())
        slot = self._free_slots.pop(0)
        self.decoder.reset(slot)
        self.snapshots.forget(slot)
        p = Performer(
            pid=self._next_pid,
            slot=slot,
            state=state,
            controls=controls or Controls(),
            tok_up=np.full(self.ctx, self._pad, dtype=np.int64),
            tok_down=np.full(self.ctx, self._pad, dtype=np.int64),
            backend=self.backend,
            decoder=self.decoder,
            snapshots=self.snapshots,
            guide=None if self.guide is None else self.guide.new_state(
                int(self.vqvae.up_mean.numel()), int(self.vqvae.down_mean.numel())),
            pad=self._pad,
            seed=self.seed + self._next_pid,
            uncond=uncond,
            textless=textless,
            hist_up=np.zeros(self.backend.config.context, np.int64),
            hist_down=np.zeros(self.backend.config.context, np.int64),
            hist_cond=np.zeros((self.backend.config.context, self.backend.config.cond_dim), np.float32),
        )
        p.rng.manual_seed(p.seed)
        self._next_pid += 1
        self.performers.append(p)
        return p.pid

    def remove_performer(self, pid: int) -> None:
        p = self.get(pid)
        if p.textless is not None:  # released last row first: the last performer's rows then move into these
            self.backend.release(p.textless)
        if p.uncond is not None:
            self.backend.release(p.uncond)
        self.backend.release(p.state)
        self._free_slots.append(p.slot)
        self.performers.remove(p)

    def get(self, pid: int) -> Performer:
        for p in self.performers:
            if p.pid == pid:
                return p
        raise KeyError(f"no performer {pid}; have {[p.pid for p in self.performers]}")

    def controls(self, pid: int) -> Controls:
        return self.get(pid).controls

    def reset(self, pid: int, root_xz: np.ndarray | None = None) -> None:
        """Start a performer's dance over (position 0, BOS), where it stands or at ``root_xz``."""
        p = self.get(pid)
        p.reset()
        if root_xz is not None:
            p.root_xz = np.asarray(root_xz, dtype=np.float64)[:2].copy()

    def rewind(self, pid: int, n: int, root_xz: np.ndarray | None = None) -> None:
        p = self.get(pid)
        if not p.rewind(n, root_xz):
            return
        # Exact: the keyframes added since the kept token are added again (as to a performer that never made the
        # discarded steps), and the GPT's keyframe slots pinned to what is waiting then.
        kept = [a for a in p.added if a[0] < p.n_tokens]
        again = [(p.n_tokens, target, up, down) for at, target, up, down in p.added if at >= p.n_tokens]
        for _, target, up, down in again:  # added again now (a later rewind to before now replays them again)
            p.inbetween.add(target)
            self._pin_entry(p, target.frame, up, down)
        p.added = kept + again
        if p.pinned or p.state.keyframes or p.keyframe_until is not None:
            p.keyframe_until = None
            self._pin_next(p)

    def set_stage(self, pid: int, rel_xz: np.ndarray | None, theta: float = 0.0, radius: float = 1.0,
                  front: float = 0.0, away: float = 0.0) -> None:
        """Where the staging has a performer after its newest step (:class:`engine.models.staging.StagedModel`
        tells it): beat guidance's stage term steers its next tokens home while it is out on the stage, and to face
        ``front`` while it has recently faced away from it too often (``away``: that share of its frames)
        (:meth:`engine.models.beat_guidance.GuideState.set_stage`; no effect with guidance or the term off)."""
        p = self.get(pid)
        if p.guide is not None:
            p.guide.set_stage(rel_xz, theta, radius, front, away)

    def _keeping(self) -> bool:
        """Whether rewinds are kept (then every cache write of a step is kept undoable)."""
        return self.snapshots.depth > 0

    def _note_rewrite(self, p: Performer, row: int, positions: np.ndarray) -> None:
        """Keep what a history rewrite of the performer's cache row ``row`` at GPT ``positions`` overwrites (while
        rewinds are kept), for :meth:`Performer.rewind`."""
        if self._keeping() and len(positions):
            slots = self.backend.slots_for(positions)
            st = p.rows()[row]
            k, v = self.backend.read_ring([st] * len(slots), slots)
            p.undo.append(_RingUndo(row=row, slots=slots, k=k, v=v))

    def keep_rewinds(self, steps: int) -> None:
        """Keep what a rewind of up to ``steps`` tokens needs to continue exactly (0: keep nothing, and save its
        cost every step: the runtime at lookahead 0, offline renders). Drops what was kept."""
        self.snapshots.keep_rewinds(steps)

    def step_group(self, pids: Sequence[int]) -> list[int]:
        """Performers step, reset and rewind alone: ``pids`` as they are, in step order."""
        want = set(pids)
        return [p.pid for p in self.performers if p.pid in want]

    def set_genre(self, pid: int, genre: str | int) -> None:
        gid = genre if isinstance(genre, int) else genre_id(genre)
        if not 0 <= gid < self.backend.config.n_genres:
            raise ValueError(f"genre id {gid} outside [0, {self.backend.config.n_genres})")
        self.get(pid).controls.genre = gid

    def set_keyframe(self, pid: int, frames_ahead: int, root: np.ndarray, quat: np.ndarray,
                     joints: str = "all") -> None:
        """Pin a target pose ``frames_ahead`` frames after the newest generated frame.

        Two mechanisms, both per performer: the pose's tokens (VQ-VAE encoder) go into the GPT's keyframe
        slots (masked attention) at the target's token, so the GPT heads for it (trained with keyframe
        windows); and the frames are blended onto the pose, causally and speed-limited, so the masked
        joints are exactly the pose at the target frame (:mod:`engine.models.inbetween`). ``joints``:
        "all", "upper" or "lower".
        """
        p = self.get(pid)
        joint_mask(self.skeleton, joints)  # checks the name
        if int(frames_ahead) < 1:
            raise ValueError(f"frames_ahead must be >= 1, got {frames_ahead}")
        frame = p.n_tokens * FRAMES_PER_TOKEN - 1 + int(frames_ahead)
        quat = np.asarray(quat, dtype=np.float64)
        target = PoseTarget(frame=frame, root_y=float(root[1]), quat=quat, joints=joints)
        p.inbetween.add(target)
        n = 4 * FRAMES_PER_TOKEN  # the pose held still for 4 tokens, encoded like training data
        held = Motion(self.skeleton, np.tile([0.0, float(root[1]), 0.0], (n, 1)),
                      np.broadcast_to(R.quat_to_matrix(quat), (n, *quat.shape[:-1], 3, 3)).copy(), MODEL_FPS)
        upper, lower = motion_to_vectors(held)
        with torch.inference_mode():
            iu, idn = self.vqvae.encode(torch.from_numpy(upper[None]), torch.from_numpy(lower[None]))
        if self._keeping():  # replayed by a rewind to before it
            p.added = [a for a in p.added if a[0] >= p.n_tokens - self.snapshots.depth]
            p.added.append((p.n_tokens, target, int(iu[0, -1]), int(idn[0, -1])))
        self._pin_entry(p, frame, int(iu[0, -1]), int(idn[0, -1]))

    def _pin_entry(self, p: Performer, frame: int, up: int, down: int) -> None:
        """Wait for the keyframe tokens (up, down) at ``frame`` in the GPT's slots (re-pinning the earliest)."""
        pos = frame // FRAMES_PER_TOKEN - (p.n_tokens - p.state.pos)  # the GPT's numbering (see restart_window)
        p.pinned = sorted([k for k in p.pinned if k[0] != pos] + [(pos, up, down)])
        p.keyframe_until = None  # re-pin: the earliest waiting keyframe may have changed
        self._pin_next(p)

    def _pin_next(self, p: Performer) -> None:
        """Put the earliest keyframe not yet passed into the GPT's slots (clear them when none is left)."""
        p.pinned = [k for k in p.pinned if k[0] >= p.state.pos]
        if not p.pinned:
            self.backend.clear_keyframes(p.state)
            if p.uncond is not None:
                self.backend.clear_keyframes(p.uncond)
            p.keyframe_until = None
            return
        pos, up, down = p.pinned[0]
        if p.keyframe_until != pos:
            self.backend.set_keyframes(p.state, [up], [down], [pos], p.controls.genre, self._global(p))
            if p.uncond is not None:  # the unconditional row sees the same keyframe, without genre and controls
                self.backend.set_keyframes(p.uncond, [up], [down], [pos], 0, None)
            if p.textless is not None:
                self.backend.set_keyframes(p.textless, [up], [down], [pos], p.controls.genre, self._energy_only(p))
            p.keyframe_until = pos

    def rewrite_history(self, todo: list[tuple[Performer, np.ndarray | None]]) -> None:
        """Rewrite the conditional cache rows' newest positions (``rewrite_tokens``, at most the window) of the
        given performers under their current genre and global vector (one batched forward per history length;
        the unconditional rows carry no controls and stay). Keyframe slots, encoded with the controls too, are
        pinned again. The unconditional rows a genre switch's window restart left to rewrite (:meth:`restart_window`)
        join the forward of their length (so a primed switch costs one forward, not two; :meth:`flush_uncond`
        makes the rest)."""
        cfg = self.backend.config
        groups: dict[int, list[tuple[Performer, np.ndarray | None]]] = {}
        for p, g in todo:
            groups.setdefault(min(p.state.pos, cfg.context, self.rewrite_tokens or cfg.context), []).append((p, g))
        for n, grp in groups.items():
            if n > 0:
                for p, _ in grp:
                    self._note_rewrite(p, 0, np.arange(p.state.pos - n, p.state.pos))
                idx = [np.arange(p.state.pos - n, p.state.pos) % cfg.context for p, _ in grp]
                rows = [(p.state, p.hist_up[i], p.hist_down[i], p.hist_cond[i], p.controls.genre, g,
                         p.pinned[0] if p.keyframe_until is not None and p.pinned else None)
                        for (p, g), i in zip(grp, idx, strict=True)]
                self._rewrite_rows(rows + self._take_uncond(n))
                self.rewrites += len(grp)
            for p, _ in grp:
                if p.keyframe_until is not None:
                    p.keyframe_until = None
                    self._pin_next(p)
        self.flush_uncond()

    def _take_uncond(self, n: int) -> list[tuple[Any, ...]]:
        """The waiting unconditional-row rewrites of ``n`` positions as rows of :meth:`_rewrite_rows` (their
        overwritten cache entries kept first for exact rewinds); they leave the waiting list."""
        mine = [u for u in self._uncond_todo if len(u[1]) == n]
        self._uncond_todo = [u for u in self._uncond_todo if len(u[1]) != n]
        for p, *_ in mine:
            self._note_rewrite(p, 1, np.arange(0, n))
        return [(p.uncond, up, down, cond, 0, g, kf) for p, up, down, cond, g, kf in mine]

    def flush_uncond(self) -> None:
        """Make the waiting unconditional-row rewrites of :meth:`restart_window` (one forward per length)."""
        while self._uncond_todo:
            self._rewrite_rows(self._take_uncond(len(self._uncond_todo[0][1])))

    def _rewrite_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """One batched history rewrite of cache rows (state, up [T], down [T], cond [T, C], genre, global vector or
        None, keyframe or None), all of the same length ``T`` > 0."""
        if not rows:
            return
        globs = [r[5] for r in rows]
        text = None
        if any(g is not None for g in globs):  # a zero vector adds nothing (the text projections have no bias)
            width = self.backend.config.text_dim
            text = np.stack([g if g is not None else np.zeros(width, np.float32) for g in globs])
        self.backend.rewrite_history([r[0] for r in rows], np.stack([r[1] for r in rows]),
                                     np.stack([r[2] for r in rows]), np.stack([r[3] for r in rows]),
                                     [r[4] for r in rows], text, [r[6] for r in rows])

    def _sync_textless(self, p: Performer) -> None:
        """Bring the genre-only row to the performer's position with its history written under the genre and
        energy (no text): from then on it is stepped with the others while the text is set."""
        t = p.textless
        assert t is not None
        cfg = self.backend.config
        t.pos = p.state.pos
        t.feed(p.state.prev_up, p.state.prev_down)
        n = min(p.state.pos, cfg.context)  # all of it: the row's older entries are stale
        if n > 0:
            idx = np.arange(p.state.pos - n, p.state.pos) % cfg.context
            kf = p.pinned[0] if p.keyframe_until is not None and p.pinned else None
            e = self._energy_only(p)
            self._note_rewrite(p, len(p.rows()) - 1, np.arange(p.state.pos - n, p.state.pos))
            self.backend.rewrite_history([t], p.hist_up[idx][None], p.hist_down[idx][None], p.hist_cond[idx][None],
                                         [p.controls.genre], None if e is None else e[None], [kf])
            self.rewrites += 1
        if p.keyframe_until is not None and p.pinned:
            pos, up, down = p.pinned[0]
            self.backend.set_keyframes(t, [up], [down], [pos], p.controls.genre, self._energy_only(p))
        else:
            self.backend.clear_keyframes(t)
        p.textless_live = True

    def energy_label(self, level: float) -> float:
        """The energy label the GPT is given for a run-time level 0..1 (:data:`ENERGY_RANGE`)."""
        lo, hi = self.energy_range
        return lo + (hi - lo) * min(1.0, max(0.0, float(level)))

    def _energy_only(self, p: Performer) -> np.ndarray | None:
        """The global vector of the genre-only row: the energy without the text (None when no energy)."""
        e = p.controls.energy
        return None if e is None else control_vector(None, self.energy_label(e), self.backend.config.text_dim)

    def _global(self, p: Performer) -> np.ndarray | None:
        """The performer's global control vector (text embedding, energy), None when neither is set."""
        c = p.controls
        if c.text is None and c.energy is None:
            return None
        e = None if c.energy is None else self.energy_label(c.energy)
        return control_vector(c.text, e, self.backend.config.text_dim)

    def _uncond_global(self, p: Performer) -> np.ndarray | None:
        """The unconditional row's global vector: the energy and the text at their shares, and the text baseline
        while the performer has a text (None: nothing)."""
        width = self.backend.config.text_dim
        e = self._energy_only(p) if self.energy_share > 0 else None
        out = None if e is None else self.energy_share * e
        if p.controls.text is not None and self.text_share > 0:
            t = self.text_share * control_vector(p.controls.text, None, width)
            out = t if out is None else out + t
        if p.controls.text is not None and self.text_baseline is not None and self.text_share < 1:
            t = (1.0 - self.text_share) * control_vector(self._baseline(), None, width)
            out = t if out is None else out + t
        return out

    def restart_window(self, p: Performer, keep: int,
                       primer: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Forget all but the newest ``keep`` positions of the performer's GPT rows (a genre switch, see
        ``switch_context``): they are renumbered from 0 (the GPT is relative in position), the conditional
        and unconditional rows keep those positions' keys and values (the conditional row's are rewritten under
        the new controls by the caller, the unconditional row's here), and pinned keyframes move with them. The
        next step feeds the last drawn token as ever (a training window's first positions look the same), except
        with ``keep`` 0, where the GPT starts over from BOS under the new genre, as a dance starts. The decoder,
        foot locking, root and staging are untouched: the frames continue.

        ``primer`` (up, down) [keep + 1] token ids replace the kept positions' tokens (their music rows stay) and the
        next input: the window then holds real dance that leads into the next step (:meth:`prime_switch`)."""
        cfg = self.backend.config
        old = p.state.pos
        k = min(keep, old, cfg.context)
        if old == k and primer is None:
            return
        idx = np.arange(old - k, old) % cfg.context
        up, down, cond = p.hist_up[idx].copy(), p.hist_down[idx].copy(), p.hist_cond[idx].copy()
        if primer is not None:
            if len(primer[0]) != k + 1 or len(primer[1]) != k + 1:
                raise ValueError(f"a primer of {k + 1} tokens is needed here, got {len(primer[0])}")
            up, down = np.asarray(primer[0][:k], np.int64), np.asarray(primer[1][:k], np.int64)
        if self._keeping() and k > 0:
            p.undo.append(_RingUndo(row=-1, hist=(p.hist_up.copy(), p.hist_down.copy(), p.hist_cond.copy())))
        p.hist_up[:k], p.hist_down[:k], p.hist_cond[:k] = up, down, cond
        shift = k - old
        p.state.pos = k
        if primer is not None:  # the next input is the primer's last token
            nu, nd = int(primer[0][k]), int(primer[1][k])
            p.state.feed(nu, nd)
            if p.uncond is not None:
                p.uncond.feed(nu, nd)
        elif k == 0:  # the GPT starts over under the new genre, as at the start of a dance
            bos = cfg.bos_id
            p.state.feed(bos, bos)
            if p.uncond is not None:
                p.uncond.feed(bos, bos)
        p.pinned = [(pos + shift, u, d) for pos, u, d in p.pinned]
        kf = None
        if p.keyframe_until is not None:
            p.keyframe_until += shift
            kf = p.pinned[0] if p.pinned else None
        if p.boost_until >= 0:
            p.boost_until = max(-1, p.boost_until + shift)
        if p.uncond is not None:
            p.uncond.pos = k
            if k > 0:  # rewritten with the conditional row's history in the switch step's one forward
                self._uncond_todo.append((p, up, down, cond, self._uncond_global(p), kf))
        p.textless_live = False  # rewritten from the history at its next use
        if p.keyframe_until is not None:  # the slots are encoded at their position: pinned again, renumbered
            p.keyframe_until = None
            self._pin_next(p)

    def restart_decoder(self, p: Performer, primer: tuple[np.ndarray, np.ndarray] | None = None,
                        music: np.ndarray | None = None) -> None:
        """Forget the performer's decoder history (its next token decodes as the first of a sequence) and beat
        guidance's frame memory (a genre switch, see ``switch_decoder``); the output eases from its last frame over
        ``switch_ease`` frames (foot locking then goes on through the eased frames; without an ease it starts over).
        Its root, GPT rows and staging go on. ``primer`` (up, down) [n]: tokens the restarted decoder decodes first
        (their frames are not output), with ``music`` [n, cond_dim] their conditioning rows (a beat-conditioned
        decoder reads the beat phase from them)."""
        if self.switch_ease > 0 and p.last_vec is not None:  # the last frame as decoded (kept by exact rewinds)
            p.seam = (p.last_vec[0].copy(), p.last_vec[1].copy(), 0, self.switch_ease)
        else:  # foot locking starts over: its previous frame does not lead into the restarted decoder's first one
            p.last_vec = None
        self.decoder.reset(p.slot)
        if primer is not None:  # all at once (as that many steps)
            self.decoder.feed(p.slot, torch.as_tensor(np.asarray(primer[0], np.int64)),
                              torch.as_tensor(np.asarray(primer[1], np.int64)),
                              None if music is None else self._beat_features(music))
        if p.guide is not None:
            p.guide.forget_frames()

    def prime_switch(self, p: Performer) -> bool:
        """At a genre switch, with a primer (``switch_primer``): restart the GPT window holding the real snippet of the
        new style whose last pose is nearest the performer's last decoded frame (its tokens as the inputs of the
        window's positions, their music the rows the performer danced to; rewritten under the new genre by the
        caller, the unconditional row here), and, with ``switch_decoder``, restart the decoder with the snippet
        decoded first. Returns False (nothing done) without a primer, a frame, or the style in the bank."""
        n, bank = self.switch_primer
        if n <= 0 or bank is None or p.last_vec is None:
            return False
        genre = GENRES[p.controls.genre] if 0 <= p.controls.genre < len(GENRES) else ""
        k, old, ctx = n - 1, p.state.pos, self.backend.config.context
        # The music the snippet's tokens are decoded under: token j stands for the one drawn k - j steps before the
        # last, under that step's row (the steps before the history's oldest use its oldest row).
        steps = np.clip(old - 1 - k + np.arange(n), max(0, old - min(old, ctx)), max(0, old - 1))
        music = p.hist_cond[steps % ctx].copy() if self.decoder.beat_dim and len(p.hist_cond) else None
        got = self._choose_primer(p, bank, genre, n, music)
        if got is None:
            return False
        # A dance younger than the primer (a switch within its first n - 1 tokens) keeps as many positions as it
        # has made: the window holds the snippet's newest tokens, ending on the pose the snippet was chosen by.
        kept = min(k, old, ctx)
        self.restart_window(p, kept, primer=(got[0][k - kept:], got[1][k - kept:]))
        if self.switch_decoder:
            self.restart_decoder(p, got, music)
        return True

    def _choose_primer(self, p: Performer, bank: PrimerBank, genre: str, n: int,
                       music: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The switch primer (up, down) [n] for the performer's last frame (``switch_primer_match``): the bank's
        nearest by the feature, or among its nearest candidates the one whose last frame, decoded as the restarted
        decoder decodes it (under ``music``, the rows :meth:`prime_switch` gives it), is nearest in joint positions."""
        assert p.last_vec is not None
        ends = bank.nearest(genre, p.last_vec[0], p.last_vec[1], n, self.switch_primer_match[0])
        if len(ends) == 0:
            return None
        if len(ends) > 1:
            snips = [bank.snippet(genre, int(t), n) for t in ends]
            beat = None if music is None or not self.decoder.beat_dim else self._beat_features(music)
            up, down = self.decoder.decode_fresh(torch.as_tensor(np.stack([u for u, _ in snips])),
                                                 torch.as_tensor(np.stack([d for _, d in snips])), beat)
            if self._primer_fk is None:
                self._primer_fk = VectorFK()
            with torch.inference_mode():
                last = self._primer_fk(torch.as_tensor(p.last_vec[0], dtype=torch.float32)[None],
                                       torch.as_tensor(p.last_vec[1], dtype=torch.float32)[None])[0]
                cand = self._primer_fk(up[:, -1].float(), down[:, -1].float())
            cost = seam_cost(last.numpy(), cand.numpy(), self.switch_primer_match[1])
            return snips[int(np.argmin(cost))]
        return bank.snippet(genre, int(ends[0]), n)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "backend": self.backend.name, "steps": self.steps,
                "guided_tokens": self.guided_tokens, "guidance_skipped": self.guidance_skipped,
                "guidance": f"{self.guidance.candidates} candidates" if self.guidance.enabled else "off",
                "genre_guidance": self.genre_guidance or "off",
                "text_guidance": self.text_guidance if self.text_guidance is not None else "genre's"}

    # -- the step ----------------------------------------------------------------------------------------

    def step(self, cond: np.ndarray, pids: Sequence[int] | None = None) -> list[StepFrames]:
        """Commit the next token of every given performer (default: all), all conditioned on ``cond``.

        Args:
            cond: [cond_dim] the music conditioning of this token (shared by all performers), or
                [B, cond_dim] one row per performer.
            pids: the performers to step (a re-plan of some; in the generator's order), None: all.
        """
        want = None if pids is None else set(pids)
        ps = self.performers if want is None else [p for p in self.performers if p.pid in want]
        if not ps:
            return []
        for p in ps:
            if p.keyframe_until is not None and p.state.pos > p.keyframe_until:
                self._pin_next(p)
        b = len(ps)
        cfg = self.backend.config
        cond_b = np.array(np.broadcast_to(np.asarray(cond, dtype=np.float32), (b, cfg.cond_dim)))
        genre = np.fromiter((p.controls.genre for p in ps), dtype=np.int64, count=b)
        text = None
        globs = [self._global(p) for p in ps]
        ctx = cfg.context
        switched = [(p, g) for p, g in zip(ps, globs, strict=True) if self._note_controls(p, g)]
        if switched and self.rewrite_on_control:
            self.rewrite_history(switched)
        self.flush_uncond()
        keep = self._keeping()
        hist_old = self.hist_before_step(ps) if keep else None
        for i, p in enumerate(ps):
            j = p.state.pos % ctx
            p.hist_up[j] = p.state.prev_up
            p.hist_down[j] = p.state.prev_down
            p.hist_cond[j] = cond_b[i]
        if any(g is not None for g in globs):
            text = np.zeros((b, cfg.text_dim), dtype=np.float32)
            for i, g in enumerate(globs):
                if g is not None:
                    text[i] = g
        ring = self.ring_before_step(ps) if keep else None
        if self.genre_guidance is None:
            res = self.backend.step([p.state for p in ps], cond_b, genre, text)
            logits_up, logits_down = res.logits_up, res.logits_down
        else:
            logits_up, logits_down = self._guided_step(ps, cond_b, genre, text, self.genre_guidance)
        if self.max_repeat:
            rec_up, rec_down = self._recent(ps)
            logits_up = block_repeats(logits_up, rec_up, self.max_repeat)
            logits_down = block_repeats(logits_down, rec_down, self.max_repeat)
        # Sampling: each performer draws from its own random stream (upper, then lower), so one performer's draws
        # (a re-plan's remade steps, say) never move another's.
        ctl = [(p.controls.temperature, p.controls.top_k or None) for p in ps]
        ups, downs = sample_rows(logits_up, logits_down, ctl, [p.rng for p in ps])
        beat = self._beat_features(cond_b)  # [b, 4, F] for a beat-conditioned decoder, else None
        peeked: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self.guide is not None:
            peeked = self._guide(ps, cond_b, logits_up, logits_down, ups, downs, beat)
        for i, p in enumerate(ps):
            p.state.feed(ups[i], downs[i])
            if p.uncond is not None:
                p.uncond.feed(ups[i], downs[i])
            if p.textless is not None and p.textless_live:
                p.textless.feed(ups[i], downs[i])
            p.tok_up[:-1] = p.tok_up[1:]
            p.tok_up[-1] = ups[i]
            p.tok_down[:-1] = p.tok_down[1:]
            p.tok_down[-1] = downs[i]
            p.n_tokens += 1
            p.known = min(len(p.tok_up), p.known + 1)
        # One batched streaming decode of the new tokens: [B, 4, Du], [B, 4, Dl]. Steered performers' tokens
        # were decoded (and their decoder state committed) by the guidance peek: not decoded again.
        if peeked:
            rest = [i for i in range(b) if i not in peeked]
            up_np = np.empty((b, *next(iter(peeked.values()))[0].shape), np.float32)
            down_np = np.empty((b, *next(iter(peeked.values()))[1].shape), np.float32)
            for i, (u_i, d_i) in peeked.items():
                up_np[i] = u_i
                down_np[i] = d_i
            if rest:
                todo = np.array(rest, dtype=np.int64)
                slots = np.fromiter((ps[i].slot for i in rest), dtype=np.int64, count=len(rest))
                up, down = self.decoder.step(torch.from_numpy(ups[todo]), torch.from_numpy(downs[todo]),
                                             torch.from_numpy(slots), None if beat is None else beat[todo])
                up_np[todo] = up.numpy()
                down_np[todo] = down.numpy()
        else:
            slots = np.fromiter((p.slot for p in ps), dtype=np.int64, count=b)
            all_rows = b == self.capacity and bool(np.array_equal(slots, np.arange(b)))
            up, down = self.decoder.step(
                torch.from_numpy(ups), torch.from_numpy(downs), None if all_rows else torch.from_numpy(slots), beat
            )
            up_np = up.numpy()
            down_np = down.numpy()
        for i, p in enumerate(ps):
            if p.guide is not None:
                p.guide.commit(up_np[i], down_np[i])
        self.steps += 1
        out = [self._frames(p, up_np[i], down_np[i]) for i, p in enumerate(ps)]
        for p, sf in zip(ps, out, strict=True):
            if p.inbetween.active:
                prev = p.inbetween.prev
                gen = (sf.root.copy(), sf.quat.copy())
                legs = self.inbetweener.apply(p.inbetween, sf.step * FRAMES_PER_TOKEN, sf.root, sf.quat)
                if legs.any():
                    sf.pin_legs = legs.astype(np.float32)
                if prev is not None:  # the dance under the blend, for the staging's speed bound
                    sf.under = (np.concatenate([prev[0][None], gen[0]]).astype(np.float32),
                                np.concatenate([prev[1][None], gen[1]]).astype(np.float32))
        if ring is not None and hist_old is not None:
            self.save_state(ps, ring, hist_old)
        return out

    def hist_before_step(self, ps: Sequence[Performer]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The history entries the coming step writes, as they are (for exact rewinds): index [b], token up [b],
        down [b], conditioning row [b, cond_dim]."""
        at = np.fromiter((p.state.pos % self.backend.config.context for p in ps), dtype=np.int64, count=len(ps))
        return (at, np.array([p.hist_up[j] for p, j in zip(ps, at, strict=True)]),
                np.array([p.hist_down[j] for p, j in zip(ps, at, strict=True)]),
                np.stack([p.hist_cond[j] for p, j in zip(ps, at, strict=True)]))

    def ring_before_step(self, ps: Sequence[Performer]) -> tuple[np.ndarray, Any, Any]:
        """The cache entries the coming step overwrites (for exact rewinds), per performer and row (conditional,
        unconditional, genre-only while it is stepped): slots [b, R] (-1: row not stepped) and keys/values
        [b, R, L, H, D] in the backend's array type."""
        per = len(ps[0].rows()) if ps else 1
        states: list[PerformerState] = []
        flat: list[int] = []  # index into [b * R] of each read row
        for i, p in enumerate(ps):
            for r, st in enumerate(p.rows()):
                if r == 2 and not p.textless_live:  # the genre-only row is stepped only while a text is set
                    continue
                states.append(st)
                flat.append(i * per + r)
        slots = self.backend.ring_slots_of(states)
        k, v = self.backend.read_ring(states, slots)
        b = len(ps)
        slot_b = np.full(b * per, -1, np.int64)
        slot_b[flat] = slots
        if len(flat) != b * per:  # some genre-only rows were not stepped: zeros there
            k, v = _spread(k, flat, b * per), _spread(v, flat, b * per)
        return slot_b.reshape(b, per), k.reshape(b, per, *k.shape[1:]), v.reshape(b, per, *v.shape[1:])

    def save_state(self, ps: Sequence[Performer], ring: tuple[np.ndarray, Any, Any],
                   hist: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Keep the performers' state after their newest token, for exact rewinds (nothing when none are kept), with
        what their step overwrote: ``ring`` (:meth:`ring_before_step`) and ``hist`` (:meth:`hist_before_step`)."""
        if not self.snapshots.depth or not ps:
            return
        slots = np.fromiter((p.slot for p in ps), dtype=np.int64, count=len(ps))
        values: dict[str, Any] = self.decoder.state(torch.from_numpy(slots))
        per = [p.kept_state() for p in ps]
        if len(per) == 1:  # one performer (a re-plan's steps): a view with a leading axis, no stacking
            values.update({k: np.asarray(x)[None] for k, x in per[0].items() if k != "marks"})
        else:
            values.update({k: np.stack([d[k] for d in per]) for k in per[0] if k != "marks"})
        values["marks"] = [d["marks"] for d in per]
        values["ring_slot"], values["ring_k"], values["ring_v"] = ring
        values["hist_at"], values["hist_up"], values["hist_down"], values["hist_cond"] = hist
        self.snapshots.save(slots, [p.n_tokens - 1 for p in ps], values)

    def _baseline(self) -> np.ndarray:
        """The text baseline's embedding (made on first use when given as a function)."""
        b = self.text_baseline
        if callable(b):
            b = self.text_baseline = np.asarray(b(), np.float32).reshape(-1)
        assert b is not None
        return np.asarray(b, np.float32)

    def _note_controls(self, p: Performer, glob: np.ndarray | None) -> bool:
        """Before a step: whether the controls changed since the last step (then the caller rewrites the history,
        see ``rewrite_on_control``); starts the start or switch boost and the text-guidance row."""
        e = p.encoded
        changed = e is not None and (e[0] != p.controls.genre or (e[1] is None) != (glob is None)
                                     or (glob is not None and e[1] is not None and not np.array_equal(e[1], glob)))
        if (e is None and self.start_boost[1] > 0 and p.n_tokens == 0  # the dance's first step, from BOS
                and (self.start_genres is None or p.controls.genre in self.start_genres)):
            p.boost_until = p.state.pos + self.start_boost[1]
            p.boost_factor = self.start_boost[0]
        if e is not None and e[0] != p.controls.genre:
            if not self.prime_switch(p):
                if self.switch_context is not None:
                    self.restart_window(p, self.switch_context)
                if self.switch_decoder:
                    self.restart_decoder(p)
            if self.switch_boost[1] > 0:
                p.boost_until = p.state.pos + self.switch_boost[1]
                p.boost_factor = self.switch_boost[0]
        if p.textless is not None:
            if self.text_scale_of(p) is None:  # no text, or one that shares the genre's scale
                p.textless_live = False
            elif changed or not p.textless_live:  # (re)started, or its genre/energy may have changed
                self._sync_textless(p)
        p.encoded = (p.controls.genre, glob)
        return changed

    def _guided_step(self, ps: list[Performer], cond_b: np.ndarray, genre: np.ndarray, text: np.ndarray | None,
                     scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One batched GPT step over each performer's conditional and unconditional row, and its genre-only row
        while it has a text under text guidance, interleaved per performer (so the rows of performers added in
        order stay contiguous in the backend); combined by genre (and text) guidance."""
        states: list[PerformerState] = []
        ci: list[int] = []  # index of each performer's conditional row in the step
        ti: list[int] = []  # index of the genre-only row of performers with one
        live: list[int] = []
        for i, p in enumerate(ps):
            assert p.uncond is not None
            ci.append(len(states))
            states += [p.state, p.uncond]
            if p.textless is not None and p.textless_live:
                live.append(i)
                ti.append(len(states))
                states.append(p.textless)
        n = len(states)
        c_idx = np.asarray(ci)
        genre2 = np.zeros(n, dtype=np.int64)
        genre2[c_idx] = genre
        cond2 = np.empty((n, cond_b.shape[1]), dtype=np.float32)
        cond2[c_idx] = cond_b
        cond2[c_idx + 1] = cond_b
        text2 = None
        if text is not None:
            text2 = np.zeros((n, text.shape[1]), dtype=np.float32)
            text2[c_idx] = text
            if self.energy_share > 0 or self.text_share > 0 or self.text_baseline is not None:
                # the unconditional rows carry those shares (linear) and the text baseline
                for i, p in enumerate(ps):
                    ug = self._uncond_global(p)
                    if ug is not None:
                        text2[ci[i] + 1] = ug
        for i, j in zip(live, ti, strict=True):
            genre2[j] = genre[i]
            cond2[j] = cond_b[i]
            e = self._energy_only(ps[i])
            if e is not None and text2 is not None:
                text2[j] = e
        scale_t: float | torch.Tensor = scale
        if any(p.state.pos < p.boost_until for p in ps):  # a dance's start, a genre switch: a stronger pull a while
            scale_t = torch.tensor([[scale * (p.boost_factor if p.state.pos < p.boost_until else 1.0)] for p in ps])
        res = self.backend.step(states, cond2, genre2, text2)
        c_t = torch.from_numpy(c_idx)
        ts = [float(t) for i in live if (t := self.text_scale_of(ps[i])) is not None]
        assert len(ts) == len(live)  # a live genre-only row belongs to a text with its own scale (_note_controls)
        # one scale for every live row (``text_guidance``) as before; per row when some attribute has its own
        text_scales: float | torch.Tensor = (ts[0] if len(set(ts)) <= 1 else
                                             torch.tensor([[t] for t in ts], dtype=torch.float32)) if ts else 0.0
        out = []
        for logits in (res.logits_up, res.logits_down):
            lc, lu = logits[c_t], logits[c_t + 1]
            g = guide_logits(lc, lu, scale_t)
            if live:
                rows = torch.tensor(live)
                sr = scale_t if isinstance(scale_t, float) else scale_t[rows]
                g[rows] = guide_text_logits(lc[rows], lu[rows], logits[torch.tensor(ti)], sr, text_scales)
            out.append(g)
        return out[0], out[1]

    def _recent(self, ps: list[Performer]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each performer's last ``max_repeat`` upper and lower tokens [B, m] (-1: not drawn yet)."""
        m = self.max_repeat
        up = np.stack([p.tok_up[-m:] for p in ps])
        down = np.stack([p.tok_down[-m:] for p in ps])
        for i, p in enumerate(ps):
            missing = m - min(m, p.known)  # history filler before the first token or after a rewind
            up[i, :missing] = -1
            down[i, :missing] = -1
        return torch.from_numpy(up), torch.from_numpy(down)

    def _beat_features(self, cond_b: np.ndarray) -> torch.Tensor | None:
        """The per-frame beat features a beat-conditioned decoder reads, from the predicted-phase entries of each
        performer's conditioning row (``conditioning.decoder_beat_features``): [b, 4, F]; None for a plain decoder."""
        if not self.decoder.beat_dim:
            return None
        if cond_b.shape[1] != COND_DIM:
            raise ValueError(f"a beat-conditioned decoder needs {COND_DIM}-wide conditioning rows, "
                             f"got {cond_b.shape[1]}")
        return torch.from_numpy(decoder_beat_features(cond_b[:, COND_DIM - 2 * FRAMES_PER_TOKEN :]))

    def _guide(self, ps: list[Performer], cond_b: np.ndarray, logits_up: torch.Tensor, logits_down: torch.Tensor,
               ups: np.ndarray, downs: np.ndarray,
               beat: torch.Tensor | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Beat-guided choice for the performers whose token is near a predicted beat (in place on ups/downs).

        Each such performer draws its share of candidate pairs (see ``guidance_rows``) from its own random
        stream; all candidates of all of them are decoded in one batched peek of the streaming decoder. The
        winners' decoder states are committed from that peek (the same computation as decoding them again),
        and their frames returned: {batch index: (upper [4, Du], lower [4, Dl])}.
        """
        assert self.guide is not None
        steered: list[tuple[int, list[int]]] = []
        targets: dict[int, tuple[tuple[int, float], ...]] = {}
        for i, p in enumerate(ps):
            if p.guide is not None:
                near = p.guide.observe(cond_b[i])
                tg = self._steer_targets(p) + energy_target(p.controls.energy, self.guidance)
                # the energy feedback's target speed for this performer's level and genre (0: none)
                g_ = p.controls.genre
                p.guide.energy_speed = self.guidance.energy_speed(
                    p.controls.energy, GENRES[g_] if 0 <= g_ < len(GENRES) else None)
                p.guide.speed_ceiling = self.guidance.speed_ceiling(GENRES[g_] if 0 <= g_ < len(GENRES) else None)
                if tg:
                    targets[i] = tg
                # a text attribute (or the stage term, while the performer is out on the stage) steers every token,
                # the beats only the tokens near one
                if near or tg or p.guide.stage_on:
                    steered.append((i, near))
        if not steered:
            return {}
        n_cand = min(self.guidance.candidates, self.guidance_rows // len(steered))
        if n_cand < MIN_GUIDED_CANDIDATES:
            self.guidance_skipped += len(steered)
            return {}
        todo: list[tuple[int, list[int], torch.Tensor, torch.Tensor]] = []
        for i, near in steered:
            p = ps[i]
            c = p.controls
            lu = logits_up[i : i + 1].expand(n_cand, -1)
            ld = logits_down[i : i + 1].expand(n_cand, -1)
            todo.append((i, near, sample_tokens(lu, c.temperature, c.top_k or None, p.rng),
                         sample_tokens(ld, c.temperature, c.top_k or None, p.rng)))
        packed = [pack_candidates(cu, cd) for _, _, cu, cd in todo]  # distinct tokens only (see there)
        slots = [ps[i].slot for i, _, _, _ in todo]
        rows_up = torch.cat([torch.full((len(pk[0]),), sl) for sl, pk in zip(slots, packed, strict=True)])
        rows_down = torch.cat([torch.full((len(pk[1]),), sl) for sl, pk in zip(slots, packed, strict=True)])
        beat_up = beat_down = None
        if beat is not None:  # each candidate decodes with its performer's beat features
            beat_up = torch.cat([beat[i].expand(len(pk[0]), -1, -1)
                                 for (i, _, _, _), pk in zip(todo, packed, strict=True)])
            beat_down = torch.cat([beat[i].expand(len(pk[1]), -1, -1)
                                   for (i, _, _, _), pk in zip(todo, packed, strict=True)])
        peeked = self.decoder.peek_state(torch.cat([pk[0] for pk in packed]), torch.cat([pk[1] for pk in packed]),
                                         rows_up, rows_down, beat_up, beat_down)
        u_np, d_np = peeked[0].numpy(), peeked[1].numpy()
        starts: list[tuple[int, int]] = []  # first upper / lower entry of each steered performer
        at_u = at_d = 0
        cand_u, cand_d, logp = [], [], []
        gumbel: list[np.ndarray] | None = [] if self.guidance.select == "sample" else None
        states: list[GuideState] = []
        for (i, _, cu, cd), (ru, rd, iu, idn) in zip(todo, packed, strict=True):
            cand_u.append(u_np[at_u + iu])
            cand_d.append(d_np[at_d + idn])
            starts.append((at_u, at_d))
            at_u += len(ru)
            at_d += len(rd)
            logp.append(candidate_logp(logits_up[i], logits_down[i], cu, cd, ps[i].controls.temperature))
            if gumbel is not None:  # from the performer's own stream, after its candidates
                gumbel.append(gumbel_noise(len(cu), ps[i].rng))
            g = ps[i].guide
            assert g is not None
            states.append(g)
        # a texted performer on a token no beat steers resamples its draws by the text term (BeatGuide.choose_batch)
        # and so does one steered by the stage term alone
        noise = [gumbel_noise(n_cand, ps[i].rng) if not near and (
            self.guide.resamples(targets[i]) if i in targets else states[j].stage_on)
                 else None for j, (i, near, _, _) in enumerate(todo)]
        best = self.guide.choose_batch(states, [near for _, near, _, _ in todo], np.stack(cand_u), np.stack(cand_d),
                                       np.stack(logp), [targets.get(i, ()) for i, _, _, _ in todo],
                                       None if gumbel is None else np.stack(gumbel), noise)
        won_up = np.empty(len(todo), np.int64)  # peek entry holding each winner's upper / lower decode
        won_down = np.empty(len(todo), np.int64)
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j, ((i, _, cu, cd), (_, _, iu, idn), k) in enumerate(zip(todo, packed, best, strict=True)):
            ups[i] = int(cu[k])
            downs[i] = int(cd[k])
            won_up[j] = starts[j][0] + iu[k]
            won_down[j] = starts[j][1] + idn[k]
            out[i] = (u_np[won_up[j]], d_np[won_down[j]])
        self.decoder.commit_peeked(peeked, torch.tensor(slots),
                                   torch.from_numpy(won_up), torch.from_numpy(won_down))
        self.guided_tokens += len(todo)
        return out

    def text_scale_of(self, p: Performer) -> float | None:
        """The guidance scale of the performer's text in the three-row guidance (:func:`engine.models.sampling.
        guide_text_logits`), None when its text shares the genre's scale (two rows) or it has none: a text whose
        every named attribute (class "low" or "high", as the text term reads it) has a scale in
        ``text_guidance_attributes`` takes the least of theirs (a side's own key, "travel:low", before the
        attribute's); any other text ``text_guidance``."""
        text = p.controls.text
        if text is None:
            return None
        tga = self.text_guidance_attributes
        if tga:
            named = self._read_text(text)[1]
            scales = [tga.get(side, tga.get(side.split(":")[0])) for side in named]
            if scales and all(s is not None for s in scales):
                return min(s for s in scales if s is not None)
        return self.text_guidance

    def _read_text(self, text: np.ndarray) -> tuple[tuple[tuple[int, float], ...], frozenset[str]]:
        """What a text embedding names: its steer targets (:func:`engine.models.beat_guidance.steer_targets`) and
        the sides it names ("arm:high": an attribute it names "low" or "high"); both empty when the model reads
        sentences as they are. Matched once per embedding and cached: the same text always reads the same way."""
        key = np.asarray(text, np.float32).tobytes()
        got = self._read.get(key)
        if got is None:
            if len(self._read) >= 256:
                self._read.clear()
            classes = {} if self._classify is None else self._classify(np.asarray(text, np.float32))
            got = self._read[key] = (steer_targets(classes),
                                     frozenset(f"{a}:{c}" for a, c in classes.items() if c in ("low", "high")))
        return got

    def _steer_targets(self, p: Performer) -> tuple[tuple[int, float], ...]:
        """The text attribute targets of a performer's text (:func:`engine.models.beat_guidance.steer_targets`;
        empty without a text or text term). Cached per embedding: the same text always steers the same way."""
        text = p.controls.text
        if self.text_classes is None or text is None:
            return ()
        return self._read_text(text)[0]

    def _frames(self, p: Performer, upper: np.ndarray, lower: np.ndarray) -> StepFrames:
        """Model vectors of one token (upper [4, 72], lower [4, 61]) -> root + full-skeleton quaternions.

        Foot locking (when on) sees the performer's previous frame too, so it is exactly the offline
        ``lock_feet`` over the whole sequence, computed one token at a time.
        """
        if p.seam is not None:  # easing out of a decoder restart (``restart_decoder``)
            su, sd, done, total = p.seam
            raw = upper  # the restarted decoder's frames as decoded
            w = np.minimum(np.arange(done + 1, done + 1 + len(upper)) / (total + 1.0), 1.0)[:, None]
            if self.switch_ease_turn:  # the new frames turned by the seam's rotation offset, fading evenly
                if done == 0:  # (the rotation from the restarted decoder's first frame to the last one before it)
                    su, sd = seam_turn(su, sd, upper[0], lower[0])
                upper, lower = turned(upper, lower, su, sd, 1.0 - w[:, 0])
            elif self.switch_ease_offset:  # the new frames moved by the seam's offset, fading (their motion kept)
                if done == 0:  # the offset from the restarted decoder's first frame to the last one before it
                    su, sd = su - upper[0], sd - lower[0]
                upper = (upper + (1.0 - w) * su).astype(upper.dtype)
                lower = (lower + (1.0 - w) * sd).astype(lower.dtype)
            else:  # a cross-fade from the last frame before it, held
                upper = ((1.0 - w) * su + w * upper).astype(upper.dtype)
                lower = ((1.0 - w) * sd + w * lower).astype(lower.dtype)
            if self.switch_snap:  # (the frames still in the ease; the rest are the decoder's own)
                rows = w[:, 0] < 1.0
                upper = upper.copy()
                upper[rows] = snap_joints(upper[rows], raw[rows], self.switch_snap)
            done += len(upper)
            p.seam = None if done >= total else (su, sd, done, total)
        rot = None  # the joint rotations, when foot locking computed them (locking leaves them as they are)
        last = p.last_vec
        p.last_vec = (upper[-1].copy(), lower[-1].copy())  # (kept without foot locking too: a switch's ease reads it)
        if self.foot_lock:
            if last is not None:
                lu, ll = last
                locked, rot = lock_feet_rot(np.concatenate([lu[None], upper]), np.concatenate([ll[None], lower]),
                                            skel=self.skeleton)
                locked = locked[1:]
                rot = None if rot is None else rot[1:]
            else:
                locked, rot = lock_feet_rot(upper, lower, skel=self.skeleton)
            lower = locked
        p.vectors = (upper, lower)
        start = (float(p.root_xz[0]), float(p.root_xz[1]))
        if rot is None:
            motion = vectors_to_motion(upper, lower, self.skeleton, start_xz=start)
            rot, root64 = motion.rot, motion.root_pos
        else:
            root64 = root_track(lower, MODEL_FPS, start)
        root = root64.astype(np.float32)
        p.root_xz = np.array([root[-1, 0], root[-1, 2]])
        # the joints the model leaves out are at rest: their quaternion is the identity, as converted
        quat = np.zeros((*rot.shape[:2], 4), np.float32)
        quat[..., 0] = 1.0
        quat[:, self.model_idx] = R.matrix_to_quat(rot[:, self.model_idx])
        return StepFrames(pid=p.pid, step=p.n_tokens - 1, root=root, quat=quat)

    def idle_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """A natural standing pose: the training-data mean of each model joint's rotation, at mean height.

        Returns (root [3] with x = z = 0, quats [J, 4]).
        """
        up = self.vqvae.up_mean.detach().cpu().numpy()[None]
        down = self.vqvae.down_mean.detach().cpu().numpy()[None].copy()
        down[:, [0, 2]] = 0.0  # standing still
        motion = vectors_to_motion(up, down, self.skeleton)
        return motion.root_pos[0].astype(np.float32), R.matrix_to_quat(motion.rot[0]).astype(np.float32)

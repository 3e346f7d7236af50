"""Music-to-dance retrieval (kind ``retrieval``): motion matching over real capture, cutting only at beats.

A cheap motion-model kind for many performers on a CPU, stepped through the same protocol as the GPT
(:class:`engine.models.protocol.MotionModel`), from the same music conditioning row.

* **Database** (:class:`MotionIndex`): the real capture of every style (:mod:`engine.models.capture`: the
  training takes of salsa, Indian and modern dance, each read at its true frame rate from
  :mod:`engine.models.capture_sources`, modern retargeted, resampled to 30 fps) with, per frame, joint
  rotations, root position, heading, a pose feature (heading-aligned root-relative positions of feet, hands
  and head, foot velocities, root height), the take's style, and the take's *motion beats* (local minima
  of mean joint speed, Bailando's definition). Built on first use and cached as a plain ``.npz`` (no
  pickle) under the cache folder; capture data never enters the repository.
* **Key**: the recent music window of the conditioning row: the predicted beat phase of the step's
  frames (where the beats fall, and the tempo from the phase increments), and the current pose.
* **Playback**: each performer plays its take forward, time-warped so that its next motion beat lands on
  the next predicted music beat (one or two motion beats per music beat, whichever fits the tempo).
* **Cuts**: only on a music beat, every few beats (or at the end of a take), to the database beat frame
  of the performer's genre (its ``Controls.genre``; a genre without capture draws from every style) that
  best matches the current pose and the tempo (plus a per-performer random term, ``temperature``),
  continuing the dancer's heading and position, blended over ``blend_frames`` frames. A genre change
  takes effect at the next cut.

Everything is vectorised over performers (numpy); one step for 1,000 performers costs milliseconds.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from engine.frames import MODEL_FPS
from engine.models.capture import CaptureTake, capture_files, load_take
from engine.models.capture_sources import SOURCES, STYLES, resolve_folders
from engine.models.conditioning import COND_DIM, FRAMES_PER_TOKEN, GENRES, MUSIC_DIM
from engine.models.pose_repr import metric_cmu_skeleton
from engine.models.protocol import REWIND_STEPS, Capabilities, Controls, StepFrames
from engine.models.snapshots import SnapshotRing
from engine.skeleton import rotations as R
from engine.skeleton.skeleton import forward_kinematics

log = logging.getLogger(__name__)

RETRIEVAL_KIND = "retrieval"
#: Bump when the index layout or its features change (invalidates cached indexes).
INDEX_VERSION = 3
#: Joints whose heading-aligned, root-relative positions make the pose feature.
FEATURE_JOINTS = ("lFoot", "rFoot", "lHand", "rHand", "head")
#: Motion-beat intervals a segment may have (frames at 30 fps: 0.2 .. 1.2 s).
MIN_BEAT_FRAMES, MAX_BEAT_FRAMES = 6, 36
#: Playback speed range of the beat time-warp (index frames per output frame).
MIN_RATE, MAX_RATE = 0.7, 1.4


def _yaw_quat(yaw: np.ndarray) -> np.ndarray:
    """Rotation about +Y by ``yaw`` radians: [...] -> [..., 4] (w, x, y, z)."""
    h = 0.5 * yaw
    z = np.zeros_like(h)
    return np.stack([np.cos(h), z, np.sin(h), z], axis=-1)


def _rotate_xz(xz: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate [..., 2] (x, z) vectors about +Y by ``yaw`` (same convention as :func:`_yaw_quat`)."""
    c, s = np.cos(yaw), np.sin(yaw)
    x, z = xz[..., 0], xz[..., 1]
    return np.stack([c * x + s * z, -s * x + c * z], axis=-1)


def _nlerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Normalised linear quaternion blend (a cheap slerp for small angles). The caller keeps ``q0`` and
    ``q1`` in the same hemisphere (the index is sign-continuous in time; blend deltas have w >= 0)."""
    q = q0 + (q1 - q0) * w
    q /= np.sqrt(np.einsum("...i,...i->...", q, q))[..., None]
    return q


def _continuous(q: np.ndarray, starts: set[int]) -> np.ndarray:
    """Flip quaternion signs so consecutive frames of a take lie in the same hemisphere. [T, J, 4]."""
    q = q.copy()
    for t in range(1, len(q)):
        if t in starts:
            continue
        flip = np.einsum("ji,ji->j", q[t], q[t - 1]) < 0
        q[t, flip] *= -1.0
    return q


def motion_beats(positions: np.ndarray, fps: float = MODEL_FPS) -> np.ndarray:
    """Motion-beat frames: prominent local minima of the smoothed mean joint speed. [T, J, 3] -> [B]."""
    v = np.linalg.norm(np.diff(positions, axis=0), axis=-1).mean(axis=-1) * fps
    s = gaussian_filter1d(np.concatenate([v[:1], v]), sigma=1.0)
    idx, _ = find_peaks(-s, prominence=0.05 * float(np.median(s) or 1.0), distance=MIN_BEAT_FRAMES)
    return idx.astype(np.int64)


@dataclass
class MotionIndex:
    """The motion database, all takes concatenated (see the module doc). Arrays only: saved as ``.npz``."""

    quat: np.ndarray  # [T, J, 4] float32 joint-local rotations
    root: np.ndarray  # [T, 3] float32 metres
    yaw: np.ndarray  # [T] heading of the root, radians
    feature: np.ndarray  # [T, F] float32 pose feature
    take: np.ndarray  # [T] int32 take id
    next_beat: np.ndarray  # [T] int64 the next motion beat after frame t in its take (-1: none)
    beats: np.ndarray  # [B] int64 motion-beat frames with a valid next beat (cut targets)
    styles: np.ndarray  # [n_takes] genre id of each take
    idle: int  # frame of the calmest standing pose

    @staticmethod
    def build(takes: Sequence[CaptureTake]) -> MotionIndex:
        skel = metric_cmu_skeleton()
        fj = np.array([skel.index(n) for n in FEATURE_JOINTS])
        quats, roots, yaws, feats, take_ids, nxt, beats, styles = [], [], [], [], [], [], [], []
        speeds = []
        offset = 0
        for k, tk in enumerate(takes):
            m = tk.motion
            pos = forward_kinematics(skel, m.root_pos, m.rot)  # [T, J, 3]
            fwd = m.rot[:, 0, :, 2]  # the hip's local +Z in world space
            yaw = np.arctan2(fwd[:, 0], fwd[:, 2])
            rel = pos[:, fj] - pos[:, :1] * np.array([1.0, 0.0, 1.0])  # root-relative in xz, height kept
            rel_xz = _rotate_xz(rel[..., [0, 2]], -yaw[:, None])  # heading-aligned
            rel = np.concatenate([rel_xz[..., :1], rel[..., 1:2], rel_xz[..., 1:]], axis=-1)
            vel = np.diff(rel[:, :2], axis=0, prepend=rel[:1, :2]) * MODEL_FPS  # feet velocities
            feat = np.concatenate([rel.reshape(len(rel), -1), 0.1 * vel.reshape(len(vel), -1),
                                   m.root_pos[:, 1:2]], axis=1)
            b = motion_beats(pos)
            n = len(pos)
            nb = np.full(n, -1, dtype=np.int64)
            j = np.searchsorted(b, np.arange(n), side="right")  # index of the first beat after t
            ok = j < len(b)
            nb[ok] = b[j[ok]] + offset
            # A segment ends at the next beat; only beats whose next beat is near enough are cut targets.
            for i0, i1 in itertools.pairwise(b):
                if MIN_BEAT_FRAMES <= i1 - i0 <= MAX_BEAT_FRAMES and i1 < n - 1:
                    beats.append(i0 + offset)
            quats.append(R.matrix_to_quat(m.rot).astype(np.float32))
            roots.append(m.root_pos.astype(np.float32))
            yaws.append(yaw)
            feats.append(feat.astype(np.float32))
            take_ids.append(np.full(n, k, dtype=np.int32))
            nxt.append(nb)
            styles.append(GENRES.index(tk.style) if tk.style in GENRES else 0)
            sp = np.linalg.norm(np.diff(pos, axis=0), axis=-1).mean(axis=-1)
            speeds.append(np.concatenate([sp[:1], sp]))
            offset += n
        speed = gaussian_filter1d(np.concatenate(speeds), 3.0)
        starts = set(np.cumsum([0] + [len(q) for q in quats])[:-1].tolist())
        return MotionIndex(
            quat=_continuous(np.concatenate(quats), starts), root=np.concatenate(roots), yaw=np.concatenate(yaws),
            feature=np.concatenate(feats), take=np.concatenate(take_ids), next_beat=np.concatenate(nxt),
            beats=np.asarray(beats, dtype=np.int64), styles=np.asarray(styles, dtype=np.int64),
            idle=int(np.argmin(speed)))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        arrays: dict[str, Any] = {k: np.asarray(getattr(self, k)) for k in self.__dataclass_fields__}
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> MotionIndex:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        d["idle"] = int(d["idle"])
        return MotionIndex(**d)


def index_for(data_dir: Path, cache_dir: Path, styles: tuple[str, ...] = STYLES,
              takes: dict[str, tuple[str, ...]] | None = None) -> MotionIndex:
    """The index of every style of ``styles`` found in ``data_dir`` (each style's training takes, or ``takes``
    per style), built on first use and cached under ``cache_dir`` (keyed by the source table and the files)."""
    if takes is not None:
        styles = tuple(takes)
    found = resolve_folders(data_dir, styles)
    files = {st: capture_files(data_dir, st, takes=None if takes is None else takes[st]) for st in styles
             if st in found}
    h = hashlib.sha256(f"v{INDEX_VERSION}".encode())
    for st, fs in files.items():
        src = SOURCES[st]
        h.update(f"{st}:{src.fps}:{src.units_per_cmu_unit}:{src.drop_leading}".encode())
        for f in fs:
            stat = f.stat()
            h.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    path = cache_dir / f"{'-'.join(files)}-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        try:
            return MotionIndex.load(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("retrieval index %s unreadable (%s); rebuilding", path, exc)
    log.info("building the retrieval index from %s in %s (once; cached in %s)",
             ", ".join(f"{len(fs)} {st} files" for st, fs in files.items()), data_dir, cache_dir)
    idx = MotionIndex.build([load_take(f, st) for st, fs in files.items() for f in fs])
    idx.save(path)
    return idx


@dataclass(frozen=True)
class _Candidates:
    """Cut candidates (beat frames) of one genre and what the cut cost needs of them, gathered once."""

    frames: np.ndarray  # [C] index frames
    feat: np.ndarray  # [C, F] float32 pose features
    norm: np.ndarray  # [C] |feat|^2
    take: np.ndarray  # [C] take ids
    interval: np.ndarray  # [C] frames to the next motion beat


class RetrievalDancer:
    """The retrieval motion model for up to ``capacity`` performers (see the module doc).

    Args:
        index: the motion database.
        capacity: most performers at once (state arrays are allocated once).
        seed: base seed; performer ``i`` draws its segment lengths and its cut choices' random term from its own
            streams, seeded ``seed + i``, so one performer's controls and re-plans never change another's dance.
        segment_beats: music beats between cuts (each performer picks from these at each cut).
        blend_frames: frames a cut blends over.
        tempo_weight: weight of the tempo mismatch (squared log ratio) in the cut cost.
    """

    def __init__(self, index: MotionIndex, capacity: int = 1, seed: int = 0, segment_beats: Sequence[int] = (4, 8),
                 blend_frames: int = 4, tempo_weight: float = 20.0) -> None:
        if len(index.beats) == 0:
            raise ValueError("the motion index has no usable beat segments")
        self.index = index
        self.kind = RETRIEVAL_KIND
        self.skeleton = metric_cmu_skeleton()
        self.n_joints = self.skeleton.num_joints
        self.frames_per_step = FRAMES_PER_TOKEN
        self.capabilities = Capabilities(n_genres=len(GENRES), text=False, keyframes=False, step_some=True)
        self.capacity = capacity
        self.seed = seed
        self.segment_beats = np.asarray(segment_beats, dtype=np.int64)
        self.blend_frames = blend_frames
        self.tempo_weight = tempo_weight
        self.steps = 0
        self.cuts = 0
        n, j = capacity, self.n_joints
        self._pids: list[int] = []  # pid of each active row, in row order
        self._controls: list[Controls] = []
        self._rng: list[np.random.Generator] = []  # per row: segment lengths and start frames
        self._noise: list[np.random.Generator] = []  # per row: the random term of its cut choices
        self._next_pid = 0
        # per-row state (rows [0, len(pids)) active)
        self.cur = np.zeros(n)  # playback position in the index (fractional frame)
        self.rate = np.ones(n)  # index frames per output frame
        self.target = np.full(n, -1, dtype=np.int64)  # index frame due at the next music beat
        self.beats_left = np.zeros(n, dtype=np.int64)  # music beats until the next cut
        self.yaw_off = np.zeros(n)  # heading rotation applied to the index motion
        self.xz_off = np.zeros((n, 2))  # position offset after that rotation
        self.blend_w = np.zeros(n)  # remaining blend weight toward the pre-cut pose
        self.blend_q = np.zeros((n, j, 4), dtype=np.float32)  # delta rotations (pre-cut * inverse(post-cut))
        self.blend_q[..., 0] = 1.0
        self.blend_y = np.zeros(n)  # root height delta
        self.last_root = np.zeros((n, 3))
        self.last_quat = np.zeros((n, j, 4), dtype=np.float32)
        self.n_steps = np.zeros(n, dtype=np.int64)
        self.last_phase = np.full(n, np.nan)  # predicted beat phase of the row's last frame (nan: none yet)
        self._fields = ("cur", "rate", "target", "beats_left", "yaw_off", "xz_off", "blend_w", "blend_q", "blend_y",
                        "last_root", "last_quat", "n_steps", "last_phase")
        # each row's state after its newest steps (saved before each step as the state after the one before)
        self.snapshots = SnapshotRing.for_rewinds(REWIND_STEPS, rows=n)
        self._phase_now = np.nan  # the newest step's last phase (a performer added later starts from it)
        # cut candidates: beat frames and their features, norms precomputed for the distance matmul
        self._cand = index.beats
        self._cand_feat = index.feature[self._cand].astype(np.float32)
        self._cand_norm = np.sum(self._cand_feat**2, axis=1)
        self._cand_take = index.take[self._cand]
        self._cand_interval = (index.next_beat[self._cand] - self._cand).astype(np.float64)
        # cut candidates of each genre the capture holds (a genre without capture uses them all), gathered once
        cand_genre = index.styles[self._cand_take]
        self._by_genre = {int(g): self._gather(np.nonzero(cand_genre == g)[0]) for g in np.unique(cand_genre)}
        self._all = self._gather(np.arange(len(self._cand)))

    # -- performers ------------------------------------------------------------------------------------

    def performer_ids(self) -> list[int]:
        return list(self._pids)

    def _row(self, pid: int) -> int:
        try:
            return self._pids.index(pid)
        except ValueError:
            raise KeyError(f"no performer {pid}; have {self._pids}") from None

    def add_performer(self, controls: Controls | None = None) -> int:
        if len(self._pids) >= self.capacity:
            raise RuntimeError(f"retrieval model is full: capacity {self.capacity} performers")
        pid = self._next_pid
        self._next_pid += 1
        self._pids.append(pid)
        self._controls.append(controls or Controls())
        self._rng.append(np.random.default_rng(self.seed + pid))
        self._noise.append(np.random.default_rng(self.seed + pid))
        r = len(self._pids) - 1
        self.last_phase[r] = self._phase_now
        self._start(r)
        return pid

    def remove_performer(self, pid: int) -> None:
        r = self._row(pid)
        last = len(self._pids) - 1
        if r != last:  # the last active row moves into the freed one
            for f in self._fields:
                getattr(self, f)[r] = getattr(self, f)[last]
            self.snapshots.move_row(last, r)
        lists: tuple[list[Any], ...] = (self._pids, self._controls, self._rng, self._noise)
        for lst in lists:
            lst[r] = lst[last]
            lst.pop()

    def controls(self, pid: int) -> Controls:
        return self._controls[self._row(pid)]

    def _gather(self, at: np.ndarray) -> _Candidates:
        return _Candidates(frames=self._cand[at], feat=self._cand_feat[at], norm=self._cand_norm[at],
                           take=self._cand_take[at], interval=self._cand_interval[at])

    def _candidates(self, genre: int) -> _Candidates:
        """The cut candidates of ``genre``'s capture (every candidate if it has none)."""
        return self._by_genre.get(int(genre), self._all)

    def genres(self) -> list[str]:
        """Genre names the capture holds."""
        return [GENRES[g] for g in self._by_genre]

    def _start(self, r: int) -> None:
        """A fresh sequence for row ``r``: a random beat of its style, where it stands (or at the origin)."""
        ix = self.index
        frame = int(self._rng[r].choice(self._candidates(self._controls[r].genre).frames))
        self.cur[r] = frame
        self.rate[r] = 1.0
        self.target[r] = -1
        # the first cut anywhere within the longest segment, so performers' cuts spread over the beats
        self.beats_left[r] = int(self._rng[r].integers(1, int(self.segment_beats.max()) + 1))
        self.yaw_off[r] = -ix.yaw[frame]
        self.xz_off[r] = -_rotate_xz(ix.root[frame, [0, 2]].astype(np.float64), self.yaw_off[r])
        self.blend_w[r] = 0.0
        self.n_steps[r] = 0
        self.snapshots.forget(r)  # its steps are numbered from 0 again

    def reset(self, pid: int, root_xz: np.ndarray | None = None) -> None:
        r = self._row(pid)
        if root_xz is not None:
            xz = np.asarray(root_xz, dtype=np.float64)[:2]
        else:
            xz = self.last_root[r, [0, 2]].copy() if self.n_steps[r] else np.zeros(2)
        self._start(r)
        self.xz_off[r] += xz

    def rewind(self, pid: int, n: int, root_xz: np.ndarray | None = None) -> None:
        """Back to the state after the performer's last kept step (kept: the next steps are exactly those of a
        performer that never made the discarded ones, given the same random streams); deeper than what is kept,
        it plays on from where it is (the playout blends the seam)."""
        r = self._row(pid)
        n = min(n, int(self.n_steps[r]))
        if n <= 0:
            return
        snap = self.snapshots.load(r, int(self.n_steps[r]) - n - 1)
        if snap is None:
            self.n_steps[r] -= n
            self.snapshots.forget(r)
            return
        for f in self._fields:
            getattr(self, f)[r] = snap[f]

    def keep_rewinds(self, steps: int) -> None:
        self.snapshots.keep_rewinds(steps)

    def step_group(self, pids: Sequence[int]) -> list[int]:
        """Performers step and rewind alone: ``pids`` in step order."""
        want = set(pids)
        return [p for p in self._pids if p in want]

    def set_keyframe(self, pid: int, frames_ahead: int, root: np.ndarray, quat: np.ndarray,
                     joints: str = "all") -> None:
        raise ValueError("the retrieval model has no keyframe control")

    def idle_pose(self) -> tuple[np.ndarray, np.ndarray]:
        ix = self.index
        root = np.array([0.0, float(ix.root[ix.idle, 1]), 0.0], dtype=np.float32)
        quat = ix.quat[ix.idle].copy()
        yaw = _yaw_quat(np.array(-ix.yaw[ix.idle]))
        quat[0] = R.quat_multiply(yaw, quat[0])
        return root, quat.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "frames": len(self.index.quat), "beats": len(self.index.beats), "steps": self.steps,
                "cuts": self.cuts, "genres": self.genres()}

    # -- the step ----------------------------------------------------------------------------------------

    def save_state(self, rows: np.ndarray) -> None:
        """Keep ``rows``' state before their next step (= after the one before; step -1: none yet), for exact
        rewinds (nothing when none are kept)."""
        if self.snapshots.depth:
            self.snapshots.save(rows, self.n_steps[rows] - 1, {f: getattr(self, f)[rows] for f in self._fields})

    @staticmethod
    def _phases(cond: np.ndarray) -> np.ndarray:
        """Predicted beat phase of the step's frames from the conditioning row. [COND_DIM] -> [4] in [0, 1)."""
        sc = np.asarray(cond, dtype=np.float64)[FRAMES_PER_TOKEN * MUSIC_DIM : COND_DIM].reshape(FRAMES_PER_TOKEN, 2)
        return (np.arctan2(sc[:, 0], sc[:, 1]) / (2 * np.pi)) % 1.0

    def step(self, cond: np.ndarray, pids: Sequence[int] | None = None) -> list[StepFrames]:
        """Commit the next 4 frames of every performer (or of ``pids``: a re-plan of some) from one music row (see
        the module doc)."""
        b = len(self._pids)
        if pids is None:
            rows = np.arange(b)
        else:
            want = set(pids)
            rows = np.array([r for r, p in enumerate(self._pids) if p in want], dtype=np.int64)
        if len(rows) == 0:
            return []
        self.save_state(rows)
        phases = self._phases(cond)
        prev = self.last_phase[rows]
        first = np.where(np.isnan(prev), phases[0], prev)
        d = np.diff(phases) % 1.0
        dphase = float(np.median(d)) if len(d) else 0.0
        period = 1.0 / dphase if 0.02 < dphase < 0.5 else 0.0  # model frames per beat (0: no belief)
        m = len(rows)
        roots = np.empty((m, FRAMES_PER_TOKEN, 3), dtype=np.float32)
        quats = np.empty((m, FRAMES_PER_TOKEN, self.n_joints, 4), dtype=np.float32)
        for k in range(FRAMES_PER_TOKEN):
            if period <= 0:
                self._free_run(rows)
            else:  # the predicted phase wraps: a music beat (on the first frame, per row: after its own last one)
                p_prev = first if k == 0 else np.full(m, phases[k - 1])
                beat = phases[k] < p_prev - 0.5
                if beat.any():
                    self._on_beat(rows[beat], period, phases[k] * period)  # the beat fell this long before frame k
            roots[:, k], quats[:, k] = self._frame(rows)
            self.cur[rows] += self.rate[rows]
        self.last_phase[rows] = phases[-1]
        if pids is None:
            self._phase_now = float(phases[-1])
        self.n_steps[rows] += 1
        self.steps += 1
        self.last_root[rows] = roots[:, -1]
        self.last_quat[rows] = quats[:, -1]
        return [StepFrames(pid=self._pids[r], step=int(self.n_steps[r] - 1), root=roots[i], quat=quats[i])
                for i, r in enumerate(rows)]

    def _free_run(self, rows: np.ndarray) -> None:
        """No tempo belief: play at natural speed; cut where a take's usable motion ends."""
        ix = self.index
        self.rate[rows] = 1.0
        nb = ix.next_beat[np.minimum(self.cur[rows].astype(np.int64), len(ix.next_beat) - 1)]
        ends = rows[nb < 0]
        if len(ends):
            self._cut(ends, 0.0)

    def _on_beat(self, rows: np.ndarray, period: float, since: float = 0.0) -> None:
        """A music beat ``since`` frames ago for ``rows``: continue to the next motion beat(s) or cut; re-time to land
        on the next music beat."""
        ix = self.index
        # The motion beat due now counts as reached when the warp brought it within 1.5 frames (playback is not
        # moved: a jump of a frame or two during a fast spin reads as a snap); then count down the segment.
        due = (self.target[rows] >= 0) & (np.abs(self.target[rows] - self.cur[rows]) < 1.5)
        base = np.where(due, self.target[rows], self.cur[rows])
        self.beats_left[rows] -= 1
        here = np.minimum(base.astype(np.int64), len(ix.next_beat) - 1)
        n1 = ix.next_beat[here]
        n2 = np.where(n1 >= 0, ix.next_beat[np.maximum(n1, 0)], -1)
        cut = (self.beats_left[rows] <= 0) | (n1 < 0) | (n1 - here > MAX_BEAT_FRAMES)
        if cut.any():
            self._cut(rows[cut], period, since)
        keep = ~cut
        if keep.any():
            kr = rows[keep]
            h = here[keep]
            a, c = n1[keep], n2[keep]
            # one or two motion beats per music beat, whichever interval is nearer the music's period
            err1 = np.abs(np.log(np.maximum(a - h, 1) / period))
            err2 = np.where(c >= 0, np.abs(np.log(np.maximum(c - h, 1) / period)), np.inf)
            tgt = np.where(err2 < err1, c, a)
            self.target[kr] = tgt
            # reach it at the next music beat, ``period - since`` frames from now (the warp absorbs any error)
            self.rate[kr] = np.clip((tgt - self.cur[kr]) / max(period - since, 1.0), MIN_RATE, MAX_RATE)

    def _cut(self, rows: np.ndarray, period: float, since: float = 0.0) -> None:
        """Cut ``rows`` to the best-matching beat frames of their genres; continue heading and position; blend."""
        ix = self.index
        here = np.minimum(self.cur[rows].astype(np.int64), len(ix.feature) - 1)
        genre = np.fromiter((self._controls[r].genre for r in rows), np.int64, len(rows))
        new = np.empty(len(rows), dtype=np.int64)
        for g in np.unique(genre):
            sel = np.nonzero(genre == g)[0]
            new[sel] = self._best(rows[sel], here[sel], self._candidates(int(g)), period)
        # Where it stands and faces now (the pose just shown), continued by the new segment.
        old_root, old_quat = self._pose(rows, self.cur[rows])
        cur_yaw = ix.yaw[here] + self.yaw_off[rows]
        self.yaw_off[rows] = cur_yaw - ix.yaw[new]
        self.xz_off[rows] = old_root[:, [0, 2]] - _rotate_xz(ix.root[new][:, [0, 2]].astype(np.float64),
                                                              self.yaw_off[rows])
        self.cur[rows] = new
        new_root, new_quat = self._pose(rows, self.cur[rows])
        delta = R.quat_multiply(old_quat, R.quat_conjugate(new_quat))
        self.blend_q[rows] = np.where(delta[..., :1] < 0, -delta, delta)  # w >= 0: blend from identity
        self.blend_y[rows] = old_root[:, 1] - new_root[:, 1]
        self.blend_w[rows] = 1.0
        self.beats_left[rows] = np.fromiter((self._rng[r].choice(self.segment_beats) for r in rows), np.int64,
                                            len(rows))
        nb = ix.next_beat[new]
        if period > 0:
            self.target[rows] = nb
            self.rate[rows] = np.clip((nb - new) / period, MIN_RATE, MAX_RATE)
            self.cur[rows] += since * self.rate[rows]
        else:
            self.target[rows] = -1
            self.rate[rows] = 1.0
        self.cuts += len(rows)

    def _best(self, rows: np.ndarray, here: np.ndarray, c: _Candidates, period: float) -> np.ndarray:
        """The best cut target (index frame) among the candidates ``c`` for each of ``rows``."""
        ix = self.index
        q = ix.feature[here]  # [M, F]
        cost = c.norm[None, :] - 2.0 * (q @ c.feat.T)  # + |q|^2, the same for every candidate
        if period > 0:
            r1 = np.abs(np.log(c.interval / period))
            r2 = np.abs(np.log(2.0 * c.interval / period))
            cost += (self.tempo_weight * np.minimum(r1, r2) ** 2).astype(np.float32)[None, :]
        frames = c.frames
        same_take = c.take[None, :] == ix.take[here][:, None]
        near = same_take & (np.abs(frames[None, :] - here[:, None]) < 2 * MODEL_FPS)
        cost += 10.0 * near  # prefer somewhere new over replaying what was just danced
        temp = np.fromiter((max(self._controls[r].temperature, 1e-3) for r in rows), np.float32, len(rows))
        noise = np.stack([self._noise[r].random(cost.shape[1], dtype=np.float32) for r in rows])
        cost += (0.2 * temp[:, None]) * noise
        return frames[np.argmin(cost, axis=1)]

    def _pose(self, rows: np.ndarray | slice, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index pose at fractional frames ``cur`` with each row's heading and position offsets.

        Returns root [M, 3] and joint rotations [M, J, 4]."""
        ix = self.index
        i0 = np.clip(np.floor(cur).astype(np.int64), 0, len(ix.quat) - 1)
        i1 = np.minimum(i0 + 1, len(ix.quat) - 1)
        i1 = np.where(ix.take[i1] == ix.take[i0], i1, i0)  # never interpolate across takes
        w = (cur - np.floor(cur))[:, None]
        root = ix.root[i0] * (1 - w) + ix.root[i1] * w
        quat = _nlerp(ix.quat[i0], ix.quat[i1], w[:, :, None].astype(np.float32))  # float32 throughout
        yaw = self.yaw_off[rows]
        root_xz = _rotate_xz(root[:, [0, 2]], yaw) + self.xz_off[rows]
        root = np.stack([root_xz[:, 0], root[:, 1], root_xz[:, 1]], axis=1)
        quat[:, 0] = R.quat_multiply(_yaw_quat(yaw).astype(np.float32), quat[:, 0])
        return root, quat.astype(np.float32)

    def _frame(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The current frame of ``rows``, with any cut blend applied."""
        root, quat = self._pose(rows, self.cur[rows])
        blending = np.nonzero(self.blend_w[rows] > 0)[0]  # positions in ``rows``
        if len(blending):
            br = rows[blending]
            w = self.blend_w[br]
            ident = np.zeros_like(self.blend_q[br])
            ident[..., 0] = 1.0
            delta = _nlerp(ident, self.blend_q[br], w[:, None, None].astype(np.float32))
            quat[blending] = R.quat_multiply(delta, quat[blending]).astype(np.float32)
            root[blending, 1] += self.blend_y[br] * w
            self.blend_w[br] = np.maximum(0.0, w - 1.0 / self.blend_frames)
        return root.astype(np.float32), quat

"""The dance runtime: audio blocks in, beat-locked poses out to any number of sinks.

Threads (inference never runs in an audio callback):

* the **engine thread** (:meth:`DanceRuntime.run`) pulls audio blocks from a source, runs the causal
  analyzer, and commits tokens: token ``t`` (frames ``4t .. 4t+3``) is generated as soon as feature
  frame ``4(t - L) - 1`` exists, ``L`` being the lookahead in tokens (0 by default: a token is
  generated when its first frame is due, from the music heard so far plus the tracker's *predicted*
  beat phase for its frames, exactly as in training);
* the **playout thread** emits poses on the audio clock at 30 or 60 fps through the playheads of
  :mod:`engine.runtime.playout` (phase-lock warp, hold-and-blend on late steps, idle blend) and hands
  each pose to the sinks. With ``realtime=False`` (``--fast``) the engine thread drives the same
  playout synchronously instead, as fast as it can.

Timing: output frame ``f`` shows the music at ``f / 30`` s and is due when that audio became available
(minus ``output_offset_ms``, which makes up for a renderer's display latency and requires lookahead).
Every pose carries the ``sample_index`` and ``capture_ns`` (``src_monotonic_ns`` on the wire) of the
newest audio used by the step that produced it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.clock import SYSTEM_CLOCK, Clock
from engine.frames import (
    ENGINE_SAMPLE_RATE,
    MODEL_FPS,
    SAMPLES_PER_FRAME,
    AudioBlock,
    ControlMessage,
    EndOfStream,
    FeatureFrame,
    Frame,
    PoseFrame,
)
from engine.models.conditioning import FRAMES_PER_TOKEN, genre_id, token_condition
from engine.runtime.generator import DanceGenerator, Performer
from engine.runtime.playout import MotionBuffer, Playhead
from engine.runtime.text_embedder import TextEmbedder, coalesce_keyframes

log = logging.getLogger(__name__)

Sink = Callable[[PoseFrame], None]

#: Index of the RMS feature (dBFS mapped from [-80, 0] to [0, 1]) in engine.analysis.features.
_RMS_INDEX = 33
_RMS_FLOOR_DB = -80.0


@dataclass
class RuntimeConfig:
    """Scheduling knobs (all have live-friendly defaults)."""

    lookahead_tokens: int = 0  # tokens generated ahead of playback (0: just in time, lowest latency)
    output_fps: int = 30  # 30 or 60 (60 interpolates: linear root, slerp rotations)
    # Send poses this much earlier to cover a renderer's display latency (needs lookahead, added as needed);
    # negative: this much later, which evens out frame pacing at the cost of latency.
    output_offset_ms: float = 0.0
    silence_db: float = -50.0  # below this RMS (dBFS) the music counts as silent
    silence_hold_s: float = 0.5  # silence this long settles the performers into the idle pose
    restart_after_s: float = 2.0  # after silence this long, music restarts the dance from scratch
    tempo_jump_ratio: float = 0.08  # a tempo change beyond this between tokens re-plans unplayed tokens
    max_warp_rate: float = 0.05  # phase-lock time-warp: most playback speed change (0 disables)
    # A frame whose token is still being generated is waited for (one audio block + the recent step time,
    # p95 of the last 64 steps, + this margin) rather than missed: beat-guided steps take longer.
    late_wait_ms: float = 8.0
    stall_ms: float = 150.0  # no audio for this long: input lost, hold the pose until it returns
    realtime: bool = True

    def __post_init__(self) -> None:
        if self.output_fps not in (30, 60):
            raise ValueError(f"output_fps must be 30 or 60, got {self.output_fps}")
        if self.lookahead_tokens < 0:
            raise ValueError("lookahead_tokens must be >= 0")
        need = math.ceil(max(0.0, self.output_offset_ms) / (1000.0 * FRAMES_PER_TOKEN / MODEL_FPS))
        self.lookahead_tokens = max(self.lookahead_tokens, need)


@dataclass
class RuntimeStats:
    tokens: int = 0
    step_ms: deque = field(default_factory=lambda: deque(maxlen=4096))  # GPT step + decode per token
    frames_out: int = 0
    missed: int = 0
    replans: int = 0
    stalled_frames: int = 0  # output frames held because the input stopped delivering audio
    token_bpm: deque = field(default_factory=lambda: deque(maxlen=4096))  # (token, tempo belief it was made with)
    idle: bool = True
    controls_applied: int = 0
    control_errors: list[str] = field(default_factory=list)
    source_errors: list[str] = field(default_factory=list)


@dataclass
class _Slot:
    """Where the audio clock was at one feature frame: maps audio time to monotonic time."""

    sample_index: int
    capture_ns: int


class DanceRuntime:
    """Drives analysis, the batched generator and playout; thread-safe controls; never dies on bad input.

    Args:
        generator: the batched dance generator (backend + VQ-VAE), with its performers added.
        analyzer: a :class:`~engine.pipeline.Stage` turning AudioBlocks into FeatureFrames and BeatEvents.
        sinks: callables receiving every output PoseFrame (OSC sender, WebSocket publish, recorders).
        config: scheduling knobs.
        clock: the engine's clock.
    """

    def __init__(
        self,
        generator: DanceGenerator,
        analyzer: object,
        sinks: Sequence[Sink] = (),
        config: RuntimeConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
        text_embedder: TextEmbedder | None = None,
    ) -> None:
        self.gen = generator
        self.texts = text_embedder or TextEmbedder()  # embeds prompts off the caller's thread and the step
        self.analyzer = analyzer
        self.sinks = list(sinks)
        self.cfg = config or RuntimeConfig()
        self.clock = clock
        self.stats = RuntimeStats()
        idle_root, idle_quat = generator.idle_pose()
        self.buffers: dict[int, MotionBuffer] = {}
        self.playheads: dict[int, Playhead] = {}
        for p in generator.performers:
            self._attach(p, idle_root, idle_quat)
        # Music window: the last 4 feature frames and the tempo belief at each (for token conditioning).
        self._feat = np.zeros((FRAMES_PER_TOKEN, 40), dtype=np.float32)
        self._period = np.zeros(FRAMES_PER_TOKEN)
        self._next_beat = np.zeros(FRAMES_PER_TOKEN)
        self._n_frames = 0  # feature frames seen
        self._next_token = 0  # next token to generate
        self._last_bpm = 0.0
        self._belief = (0.0, 0.0, 0.0)  # (period_s, next_beat_s, bpm) of the newest frame
        self._energy = 0.0
        self._silent_frames = 0
        self._idle_since_frame: int | None = 0
        self._last_phase: float | None = None  # tracker phase at the previous output tick
        self._src: dict[int, tuple[int, int]] = {}  # token -> (sample_index, capture_ns) of the step
        self._anchor: _Slot | None = None
        self._controls: deque[ControlMessage] = deque(maxlen=256)
        self._keyframe_until: dict[int, int] = {}
        # playout state
        self._lock = threading.Condition()
        self._tick = 0  # next output tick
        self._stall_frames = 0.0  # audio frames the output timeline lags behind ticks (input stalls)
        self._block_ns = 0  # duration of the newest audio block
        self._recent_step_ns: deque[int] = deque(maxlen=64)
        self._step_wait_ns = 0  # p95 of the recent step times: how long the playout waits for a token
        self._origin = 0  # source sample index of the analyzer's time zero
        self._offsets: deque[int] = deque(maxlen=96)  # capture_ns - sample time of recent blocks (about 2 s)
        self._clock_offset_ns = 0
        self._input_lost = False
        self._running = False
        self._ended = False

    def _attach(self, p: Performer, idle_root: np.ndarray, idle_quat: np.ndarray) -> None:
        buf = MotionBuffer(self.gen.n_joints, capacity=max(64, 8 * (self.cfg.lookahead_tokens + 4)))
        self.buffers[p.pid] = buf
        self.playheads[p.pid] = Playhead(buf, idle_root, idle_quat, max_warp_rate=self.cfg.max_warp_rate)

    # ---------------------------------------------------------------------------------------- controls

    def submit_control(self, msg: ControlMessage) -> None:
        """Accept a validated control from any thread; raises ValueError with the reason if it cannot apply.

        Semantic checks (known genre, existing performer) happen here so the sender gets the reason at
        once; the change itself is applied by the engine thread before its next step.
        """
        pids = [p.pid for p in self.gen.performers]
        if msg.performer != -1 and msg.performer not in pids:
            raise ValueError(f"no performer {msg.performer}; performers are {pids}")
        if msg.kind == "genre":
            gid = genre_id(str(msg.value))
            if gid >= self.gen.backend.config.n_genres:
                raise ValueError(
                    f"genre {msg.value!r} is not in this model (it has {self.gen.backend.config.n_genres})"
                )
        elif msg.kind == "text":
            if self.gen.backend.config.text_dim <= 0:
                raise ValueError("this model has no text control")
            if msg.value:  # embedded on the embedder's thread; applied before the first step after that
                m = msg
                self.texts.request(str(msg.value), lambda emb: self._controls.append(
                    ControlMessage(m.sample_index, m.capture_ns, "text", m.performer, emb)))
                return
        elif msg.kind == "keyframe":
            if self.gen.backend.config.n_keyframe_slots < 1:
                raise ValueError("this model has no keyframe slots")
            n_rot = len(msg.value.get("rotations", ())) if isinstance(msg.value, dict) else 0
            if n_rot and n_rot != self.gen.n_joints:
                raise ValueError(f"keyframe has {n_rot} rotations; the skeleton has {self.gen.n_joints} joints")
        elif msg.kind not in ("intensity", "energy", "reset"):
            raise ValueError(f"unknown control kind {msg.kind!r}")
        self._controls.append(msg)

    def _apply_controls(self) -> None:
        queued = []
        while self._controls:
            queued.append(self._controls.popleft())
        for msg in coalesce_keyframes(queued):  # a keyframe flood costs one encode per performer per step
            targets = self.gen.performers if msg.performer == -1 else [self.gen.get(msg.performer)]
            try:
                for p in targets:
                    self._apply(p, msg)
                self.stats.controls_applied += 1
            except Exception as exc:  # one bad control never stops the engine
                self.stats.control_errors.append(f"{msg.kind}: {exc}")
                log.warning("control %s rejected: %s", msg.kind, exc)

    def _apply(self, p: Performer, msg: ControlMessage) -> None:
        if msg.kind == "genre":
            self.gen.set_genre(p, str(msg.value))
        elif msg.kind == "text":
            p.controls.text = None if msg.value is None or isinstance(msg.value, str) else np.asarray(
                msg.value, dtype=np.float32)
        elif msg.kind in ("intensity", "energy"):
            p.controls.intensity = float(msg.value)
            self.playheads[p.pid].intensity = float(msg.value)
        elif msg.kind == "reset":
            self.gen.reset(p)
            self.backend_keyframes_clear(p)
        elif msg.kind == "keyframe":
            self._set_keyframe(p, dict(msg.value))

    def backend_keyframes_clear(self, p: Performer) -> None:
        self.gen.backend.clear_keyframes(p.state)
        self._keyframe_until.pop(p.pid, None)

    def _set_keyframe(self, p: Performer, kf: dict) -> None:
        """Pin a target pose ``frames_ahead`` frames from now (tokens from the VQ-VAE encoder)."""
        from engine.models.pose_repr import Motion, motion_to_vectors
        from engine.skeleton import rotations as R

        buf = self.buffers[p.pid]
        newest = max(buf.newest, 0)
        base = buf.sample(float(newest))
        quat = base[1].copy() if base is not None else self.playheads[p.pid].idle_quat.copy()
        height = float(base[0][1]) if base is not None else float(self.playheads[p.pid].idle_root[1])
        if "rotations" in kf:
            rots = np.asarray(kf["rotations"], dtype=np.float32)
            if len(rots) != self.gen.n_joints:
                raise ValueError(f"keyframe has {len(rots)} rotations; the skeleton has {self.gen.n_joints} joints")
            quat = rots
        if "root" in kf:
            height = float(kf["root"][1])
        n = 4 * FRAMES_PER_TOKEN  # the pose held still for 4 tokens, encoded like training data
        held = Motion(self.gen.skeleton, np.tile([0.0, height, 0.0], (n, 1)),
                      np.broadcast_to(R.quat_to_matrix(quat), (n, *quat.shape[:-1], 3, 3)).copy(), MODEL_FPS)
        upper, lower = motion_to_vectors(held)
        with torch.inference_mode():
            iu, idn = self.gen.vqvae.encode(torch.from_numpy(upper[None]), torch.from_numpy(lower[None]))
        target = p.state.pos + max(1, math.ceil(int(kf["frames_ahead"]) / FRAMES_PER_TOKEN))
        self.gen.backend.set_keyframes(
            p.state, [int(iu[0, -1])], [int(idn[0, -1])], [target], p.controls.genre, p.controls.text
        )
        self._keyframe_until[p.pid] = target

    # ---------------------------------------------------------------------------------------- engine side

    def process(self, frame: Frame) -> None:
        """Feed one message from the analyzer (FeatureFrames; beat and onset events are not needed here)."""
        if isinstance(frame, FeatureFrame):
            self._on_feature(frame)

    def _on_feature(self, ff: FeatureFrame) -> None:
        i = ff.frame_index
        k = i % FRAMES_PER_TOKEN
        self._feat[k] = ff.features
        self._period[k] = ff.period_s
        self._next_beat[k] = ff.next_beat_s
        self._n_frames = i + 1
        self._belief = (ff.period_s, ff.next_beat_s, ff.bpm)
        # Silence and energy (RMS feature is dBFS mapped onto [0, 1]).
        db = float(ff.features[_RMS_INDEX]) * -_RMS_FLOOR_DB + _RMS_FLOOR_DB
        self._energy = float(np.clip((db + 60.0) / 60.0, 0.0, 1.0))
        if db < self.cfg.silence_db:
            self._silent_frames += 1
            if self._silent_frames >= self.cfg.silence_hold_s * MODEL_FPS and not self.stats.idle:
                self.stats.idle = True
                self._idle_since_frame = i
                for ph in self.playheads.values():
                    ph.set_idle(True)
        else:
            self._silent_frames = 0
            if self.stats.idle:
                self.stats.idle = False
                restart = (
                    self._idle_since_frame is not None
                    and (i - self._idle_since_frame) >= self.cfg.restart_after_s * MODEL_FPS
                )
                self._idle_since_frame = None
                for ph in self.playheads.values():
                    ph.set_idle(False)
                if restart:
                    for p in self.gen.performers:
                        self.gen.reset(p)
        period_frames = ff.period_s * MODEL_FPS
        for ph in self.playheads.values():
            ph.set_period_frames(period_frames)
        # Tempo jump: re-plan tokens generated ahead but not yet played.
        if (
            self._last_bpm > 0
            and ff.bpm > 0
            and abs(ff.bpm - self._last_bpm) / self._last_bpm > self.cfg.tempo_jump_ratio
        ):
            self._replan()
        if ff.bpm > 0:
            self._last_bpm = ff.bpm
        # Token schedule: token t is due once frame 4(t - L) - 1 exists (token 0 at the first frame).
        while True:
            t = self._next_token
            need = FRAMES_PER_TOKEN * (t - self.cfg.lookahead_tokens) - 1
            if need > i:
                break
            self._generate(t, ff)
        if not self.cfg.realtime:
            self._drain(final=False)

    def _cond(self, t: int) -> np.ndarray:
        """Conditioning of token ``t`` from the newest 4 frames (exactly training's layout when L = 0)."""
        n = self._n_frames
        if n < FRAMES_PER_TOKEN or t == 0:
            return token_condition(np.zeros((0, 40), np.float32), np.zeros(0), np.zeros(0), 0)
        order = (np.arange(n - FRAMES_PER_TOKEN, n)) % FRAMES_PER_TOKEN  # oldest first
        feats = self._feat[order]
        period = self._period[order]
        nxt = self._next_beat[order]
        # token_condition reads frames before 4*token: present the window as frames 0..3 of token 1 and
        # shift the beat predictions by the same amount (phase arithmetic is shift-invariant).
        shift = (FRAMES_PER_TOKEN * t - FRAMES_PER_TOKEN) / MODEL_FPS
        return token_condition(feats, period, nxt - shift, 1)

    def _generate(self, t: int, ff: FeatureFrame) -> None:
        self._apply_controls()
        for pid, until in list(self._keyframe_until.items()):
            p = self.gen.get(pid)
            if p.state.pos > until:
                self.backend_keyframes_clear(p)
        t0 = self.clock.monotonic_ns()
        cond = self._cond(t)
        try:
            out = self.gen.step(cond)
        except Exception as exc:  # a failing step must not kill the engine: playout holds and blends
            log.exception("generator step failed")
            self.stats.source_errors.append(f"step {t}: {exc}")
            out = []
        period_s, next_beat_s, _ = self._belief
        f0 = FRAMES_PER_TOKEN * t
        phases = [
            float(((f0 + j) / MODEL_FPS - next_beat_s) / period_s % 1.0) if period_s > 0 else float("nan")
            for j in range(FRAMES_PER_TOKEN)
        ]
        with self._lock:
            for tf in out:
                buf = self.buffers[tf.pid]
                for j in range(FRAMES_PER_TOKEN):
                    buf.put(f0 + j, tf.root[j], tf.quat[j], phases[j])
            self._src[t] = (ff.sample_index, ff.capture_ns)
            self._src.pop(t - 64, None)
            self._next_token = t + 1
            self._lock.notify_all()
        self.stats.tokens += 1
        self.stats.token_bpm.append((t, self._belief[2]))
        step_ns = self.clock.monotonic_ns() - t0
        self.stats.step_ms.append(step_ns / 1e6)
        self._recent_step_ns.append(step_ns)
        if len(self._recent_step_ns) >= 8:
            self._step_wait_ns = int(np.percentile(self._recent_step_ns, 95))

    def _replan(self) -> None:
        """Discard generated-but-unplayed tokens so they are regenerated with the new tempo belief."""
        played_frame = math.ceil(self._pos(self._tick))
        first_unplayed = max(self._next_token - self.cfg.lookahead_tokens, -(-played_frame // FRAMES_PER_TOKEN))
        n = self._next_token - first_unplayed
        if n <= 0:
            return
        with self._lock:
            for p in self.gen.performers:
                # Rewind position and fed tokens; the n newest ring entries are overwritten on regeneration.
                p.state.pos -= n
                p.n_tokens -= n
                p.tok_up[n:] = p.tok_up[:-n].copy()
                p.tok_down[n:] = p.tok_down[:-n].copy()
                p.state.feed(int(p.tok_up[-1]), int(p.tok_down[-1]))
                buf = self.buffers[p.pid]
                last = FRAMES_PER_TOKEN * first_unplayed - 1
                kept = buf.sample(float(last)) if last >= 0 else None
                if kept is not None:
                    p.root_xz = np.array([kept[0][0], kept[0][2]])
                buf.discard_after(last)
                # The decoder's history cannot be rewound: restart it (the playhead blends over the seam).
                self.gen.decoder.reset(p.slot)
                if p.guide is not None:
                    p.guide.reset()  # its frame count and history followed the discarded tokens
                self.playheads[p.pid].recover = 1.0
            self._next_token = first_unplayed
        self.stats.replans += 1

    # ---------------------------------------------------------------------------------------- playout side

    def _pos(self, tick: int) -> float:
        """Audio-timeline frame position shown by output tick ``tick`` (input stalls shift it back)."""
        return tick * MODEL_FPS / self.cfg.output_fps - self._stall_frames

    def _due_ns(self, pos: float) -> int | None:
        """Monotonic time at which frame position ``pos`` is due (None before the first block).

        The audio clock maps sample ``s`` to ``offset + s / rate``, with ``offset`` the smallest
        ``capture_ns - sample_index / rate`` over the last blocks: a block is never available before its
        last sample was captured, so the minimum is the least-delayed delivery, free of block-size jitter
        and following slow drift between the device clock and the monotonic clock.
        """
        if self._anchor is None:
            return None
        sample = pos * SAMPLES_PER_FRAME + self._origin
        return int(self._clock_offset_ns + sample * 1e9 / ENGINE_SAMPLE_RATE - self.cfg.output_offset_ms * 1e6)

    def _on_block(self, blk: AudioBlock) -> None:
        """Audio clock bookkeeping for one source block (engine thread)."""
        if self._anchor is None:
            self._origin = blk.start_index
        self._block_ns = len(blk.samples) * 1_000_000_000 // ENGINE_SAMPLE_RATE
        offset = blk.capture_ns - int(blk.sample_index * 1e9 / ENGINE_SAMPLE_RATE)
        if self._offsets and offset - min(self._offsets) > self.cfg.stall_ms * 1e6:
            self._offsets.clear()  # the source paused (input lost): re-anchor the audio clock on the new blocks
        self._offsets.append(offset)
        with self._lock:
            self._clock_offset_ns = min(self._offsets)
            self._anchor = _Slot(blk.sample_index, blk.capture_ns)

    def _emit_tick(self, tick: int, held: bool = False) -> None:
        step = MODEL_FPS / self.cfg.output_fps
        pos = self._pos(tick)
        token = int(pos) // FRAMES_PER_TOKEN
        src = self._src.get(token) or (0, 0)
        period_s, next_beat_s, bpm = self._belief
        t_s = pos / MODEL_FPS
        tracker_phase = ((t_s - next_beat_s) / period_s) % 1.0 if period_s > 0 else None
        # A beat pulse on the tick where the tracker's *predicted* phase wraps past 0: beat events are
        # committed a little after the beat, too late for the frame that shows it.
        beat = tracker_phase is not None and self._last_phase is not None and tracker_phase < self._last_phase - 0.5
        self._last_phase = tracker_phase
        for p in self.gen.performers:
            ph = self.playheads[p.pid]
            if held:
                root, quat = ph.last_root, ph.last_quat
            else:
                missed = ph.stats.missed
                root, quat = ph.tick(pos, tracker_phase, step)
                if ph.stats.missed > missed and not self.stats.idle:
                    self.stats.missed += 1
            frame = PoseFrame(
                sample_index=src[0],
                capture_ns=src[1],
                frame_index=tick,
                performer=p.pid,
                skeleton=self.gen.skeleton.name,
                root_position=root,
                rotations=quat,
                time_s=t_s,
                bpm=bpm,
                beat_phase=0.0 if tracker_phase is None else float(tracker_phase),
                beat=beat and not held,
                energy=0.0 if held else self._energy,
                fps=float(self.cfg.output_fps),
            )
            for sink in self.sinks:
                try:
                    sink(frame)
                except Exception as exc:  # a failing sink (closed socket, full disk) must not stop the dance
                    log.warning("sink %r failed: %s", sink, exc)
        self.stats.frames_out += 1

    def _drain(self, final: bool) -> None:
        """Fast mode: emit every tick whose frames exist (all remaining ticks when ``final``)."""
        limit = self._n_frames if final else min(self._n_frames, FRAMES_PER_TOKEN * self._next_token)
        while self._pos(self._tick) < limit:
            self._emit_tick(self._tick)
            self._tick += 1

    def _playout_loop(self) -> None:
        """Emit ticks on the audio clock; wait briefly for a token in progress; hold through input stalls."""
        wait_ns = int(self.cfg.late_wait_ms * 1e6)
        stall_ns = int(self.cfg.stall_ms * 1e6)
        step = MODEL_FPS / self.cfg.output_fps
        period_ns = 1_000_000_000 // self.cfg.output_fps
        last_due: int | None = None
        while True:
            with self._lock:
                while self._running and self._anchor is None:
                    self._lock.wait(0.05)
                if not self._running:
                    return
                due = self._due_ns(self._pos(self._tick))
            assert due is not None
            if last_due is not None and self._input_lost:
                due = max(due, last_due + period_ns)  # while held (input lost) keep the frame rate
            last_due = due
            self.clock.sleep_until_ns(due)
            pos = self._pos(self._tick)
            token = int(pos) // FRAMES_PER_TOKEN
            held = False
            with self._lock:
                # Its audio arrives with the block holding it, then its token is generated: wait for that
                # (a block plus the allowed step time) rather than miss the frame.
                deadline = due + self._block_ns + self._step_wait_ns + wait_ns
                while self._running and token >= self._next_token and self.clock.monotonic_ns() < deadline:
                    self._lock.wait(max(0.0, (deadline - self.clock.monotonic_ns()) / 1e9))
                if self._ended and pos >= self._n_frames:
                    return
                a = self._anchor
                # No audio for this frame yet and none for the stall limit: the input is lost. Hold the
                # pose and stop the audio timeline, so playback resumes where it was when input returns.
                if (
                    token >= self._next_token
                    and a is not None
                    and pos * SAMPLES_PER_FRAME + self._origin > a.sample_index
                    and self.clock.monotonic_ns() - a.capture_ns > stall_ns
                ):
                    held = True
                    self._stall_frames += step
                    self.stats.stalled_frames += 1
            if held != self._input_lost:
                self._input_lost = held
                if held:
                    log.warning("input lost: no audio for %.0f ms; holding the last pose until it returns",
                                (self.clock.monotonic_ns() - a.capture_ns) / 1e6 if a is not None else 0.0)
                    self.stats.source_errors.append("input lost (no audio); held the last pose")
                else:
                    log.warning("input is back; dancing again")
            self._emit_tick(self._tick, held=held)
            self._tick += 1

    # ---------------------------------------------------------------------------------------- run

    def run(self, blocks: Iterable[Frame], seconds: float | None = None) -> RuntimeStats:
        """Run until the source ends (or ``seconds`` of audio): the engine thread; starts playout."""
        self._running = True
        player: threading.Thread | None = None
        if self.cfg.realtime:
            player = threading.Thread(target=self._playout_loop, name="groovecast-playout", daemon=True)
            player.start()
        limit = None if seconds is None else int(seconds * ENGINE_SAMPLE_RATE)
        try:
            for blk in blocks:
                if not self._running:
                    break
                if isinstance(blk, EndOfStream):
                    if blk.reason:
                        self.stats.source_errors.append(blk.reason)
                    break
                if not isinstance(blk, AudioBlock):
                    continue
                self._on_block(blk)
                for out in self.analyzer.process(blk):  # type: ignore[attr-defined]
                    self.process(out)
                if limit is not None and self._n_frames * SAMPLES_PER_FRAME >= limit:
                    break
        finally:
            self._ended = True
            if player is not None:
                # Let the playout finish what was generated (it returns at the last frame), then stop it.
                if self._running:
                    behind_s = max(0.0, self._n_frames - self._pos(self._tick)) / MODEL_FPS
                    player.join(timeout=behind_s + 1.0)
                with self._lock:
                    self._running = False
                    self._lock.notify_all()
                player.join(timeout=2.0)
            else:
                self._drain(final=True)
                self._running = False
        return self.stats

    def stop(self) -> None:
        with self._lock:
            self._running = False
            self._lock.notify_all()


"""The runtime: audio blocks in, steadily paced poses out, for any motion model of the protocol.

It only wires the pieces, each in its own module: the audio clock (:mod:`.audio_clock`), the music window
and its events (:mod:`.music_window`), the step scheduler (:mod:`.scheduler`), controls (:mod:`.controls`),
the motion buffers and playheads (:mod:`.playout`), the playout delay (:mod:`.pacing`) and the sinks
(:mod:`.sinks`). It drives a :class:`~engine.models.protocol.MotionModel` and knows no model kind.

Threads (inference never runs in an audio callback):

* the **engine thread** (:meth:`DanceRuntime.run`) feeds each audio block to the analyzer and steps the
  model when the scheduler says a step is due;
* the **playout thread** emits output tick ``k`` at ``audio_time(k) + D`` on a fixed 30/60 fps grid,
  ``D`` being the constant delay of :mod:`.pacing` (measured at start or set); a frame whose step is not
  ready at its slot is held and counted, never sent late. With ``realtime=False`` (``--fast``) the engine
  thread emits every tick as soon as its frames exist instead.

Every pose carries the ``sample_index`` and ``capture_ns`` of the newest audio used by the step that made it.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
from engine.models.conditioning import FRAMES_PER_TOKEN, MUSIC_DIM, token_condition
from engine.models.protocol import REWIND_STEPS, MotionModel
from engine.models.staging import PointFK, speed_limits
from engine.models.text_prompts import prompt_embedder
from engine.runtime.audio_clock import AudioClock
from engine.runtime.beat_pulse import BeatPulse, BeatPulser
from engine.runtime.controls import ControlDesk
from engine.runtime.music_window import MusicWindow
from engine.runtime.pacing import PlayoutDelay, choose_delay
from engine.runtime.playout import FrameRing, PlayheadBank
from engine.runtime.rt_priority import request_realtime
from engine.runtime.scheduler import StepScheduler
from engine.runtime.sinks import Sink, SinkFanout
from engine.runtime.text_embedder import TextEmbedder

log = logging.getLogger(__name__)


@dataclass
class RuntimeConfig:
    """Scheduling knobs (all have live-friendly defaults)."""

    lookahead_tokens: int = 0  # steps generated ahead of playback (0: just in time, lowest latency)
    output_fps: int = 30  # 30 or 60 (60 interpolates: linear root, slerp rotations)
    # Send poses this much earlier to cover a renderer's display latency (needs lookahead, added as needed).
    output_offset_ms: float = 0.0
    delay_ms: float | None = None  # playout delay D (None: step p99 + block period + margin, measured at start)
    delay_margin_ms: float = 4.0  # margin added to the measured D
    calibration_steps: int = 24  # steps timed at start to choose D (the first 4 are warm-up, not counted)
    late_tolerance_ms: float = 2.0  # a frame leaving later than this after its slot counts as late
    gil_switch_ms: float = 0.5  # interpreter switch interval while running in real time (process-wide)
    rt_priority: int = 0  # > 0: ask for SCHED_FIFO at this priority for the playout thread (see rt_priority.py)
    silence_db: float = -50.0  # below this RMS (dBFS) the music counts as silent
    silence_hold_s: float = 0.5  # silence this long settles the performers into the idle pose
    restart_after_s: float = 2.0  # after silence this long, music restarts the dance from scratch
    tempo_jump_ratio: float = 0.08  # a tempo change beyond this between frames re-plans unplayed steps
    max_warp_rate: float = 0.05  # phase-lock time-warp: most playback speed change (0 disables)
    stall_ms: float = 150.0  # no audio for this long: input lost, hold the pose until it returns
    # Beat pulses (to pulse sinks, realtime only) leave at the predicted beat's audio time + this offset
    # (negative: earlier, for a display's latency; positive: later, e.g. an audio output's latency).
    beat_offset_ms: float = 0.0
    pulse_poll_ms: float = 4.0  # with pulse sinks, the playout thread re-reads the beat prediction this often
    realtime: bool = True

    def __post_init__(self) -> None:
        if self.output_fps not in (30, 60):
            raise ValueError(f"output_fps must be 30 or 60, got {self.output_fps}")
        if self.lookahead_tokens < 0:
            raise ValueError("lookahead_tokens must be >= 0")
        if self.delay_ms is not None and not (0.0 <= self.delay_ms <= 2000.0):
            raise ValueError(f"delay_ms must be in [0, 2000], got {self.delay_ms}")
        if not 0 <= self.rt_priority <= 99:
            raise ValueError(f"rt_priority must be in [0, 99], got {self.rt_priority}")
        if not (math.isfinite(self.beat_offset_ms) and abs(self.beat_offset_ms) <= 1000.0):
            raise ValueError(f"beat_offset_ms must be in [-1000, 1000], got {self.beat_offset_ms}")
        need = math.ceil(max(0.0, self.output_offset_ms) / (1000.0 * FRAMES_PER_TOKEN / MODEL_FPS))
        self.lookahead_tokens = max(self.lookahead_tokens, need)


@dataclass
class RuntimeStats:
    tokens: int = 0  # steps (a step commits one token's frames for every performer)
    step_ms: deque = field(default_factory=lambda: deque(maxlen=4096))  # model step per token, ms
    frames_out: int = 0  # output ticks (one pose per performer each)
    missed: int = 0  # ticks whose step was not ready at the slot (held pose), while dancing
    late: int = 0  # ticks that left more than late_tolerance_ms after their slot
    send_lag_ns: deque = field(default_factory=lambda: deque(maxlen=1 << 16))  # actual - scheduled send time
    replans: int = 0  # tempo re-plans (every performer's unplayed steps)
    control_replans: int = 0  # control re-plans (the addressed performers' unplayed steps, remade at once)
    replanned_steps: int = 0  # steps remade by control re-plans (one per performer and step)
    control_replan_ms: deque = field(default_factory=lambda: deque(maxlen=4096))  # rewind + remake, ms each
    pulses: int = 0  # beat pulses sent to the pulse sinks
    pulses_dropped: int = 0  # beats more than a quarter period past when due (not sent)
    pulse_lag_ns: deque = field(default_factory=lambda: deque(maxlen=4096))  # pulse sent - pulse due
    stalled_frames: int = 0  # output frames held because the input stopped delivering audio
    token_bpm: deque = field(default_factory=lambda: deque(maxlen=4096))  # (step, tempo belief it was made with)
    idle: bool = True
    delay: PlayoutDelay | None = None  # the playout delay D in use
    calibration_ms: list[float] = field(default_factory=list)  # step times measured to choose D
    controls_applied: int = 0
    control_errors: list[str] = field(default_factory=list)
    source_errors: list[str] = field(default_factory=list)
    rt_priority: bool = False  # the playout thread got real-time scheduling


def _transition_limits(model: MotionModel, pids: list[int]) -> dict[str, Any]:
    """Joint speed limits for the playout's own transitions (the staged model's per performer; for a model
    without them, the loosest style's), or none for a skeleton the staging points do not fit."""
    try:
        fk = PointFK(model.skeleton)
    except KeyError:
        return {}
    per = getattr(model, "speed_limits", None)
    limits = np.stack([per(pid) if per is not None else speed_limits(None) for pid in pids]) if pids else None
    return {"limits": limits, "fk": fk}


class DanceRuntime:
    """Drives analysis, a motion model and steady playout; thread-safe controls; never dies on bad input.

    Args:
        model: a motion model (:class:`~engine.models.protocol.MotionModel`) with its performers added.
        analyzer: a :class:`~engine.pipeline.Stage` turning AudioBlocks into FeatureFrames and BeatEvents.
        sinks: callables receiving every output PoseFrame (OSC sender, WebSocket publish, recorders).
        config: scheduling knobs.
        clock: the engine's clock.
        text_embedder: embeds text controls on its own thread (default: the bundled sentence model).
    """

    def __init__(
        self,
        model: MotionModel,
        analyzer: object,
        sinks: Sequence[Sink] = (),
        config: RuntimeConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
        text_embedder: TextEmbedder | None = None,
    ) -> None:
        self.model = model
        # Embeds prompts off the caller's thread and the step, as the model reads them.
        self.texts = text_embedder or TextEmbedder(prompt_embedder(getattr(model.capabilities, "text_prompts",
                                                                           "sentence")))
        self.analyzer = analyzer
        self.sinks = SinkFanout(sinks)
        self.cfg = config or RuntimeConfig()
        self.clock = clock
        self.stats = RuntimeStats()
        self.music = MusicWindow(self.cfg.silence_db, self.cfg.silence_hold_s, self.cfg.restart_after_s,
                                 self.cfg.tempo_jump_ratio)
        self.sched = StepScheduler(model.frames_per_step, self.cfg.lookahead_tokens)
        # Only steps generated ahead are ever discarded (a re-plan), so the model keeps the state for exact rewinds
        # that deep, and none at lookahead 0 (saving its cost every step).
        model.keep_rewinds(min(self.cfg.lookahead_tokens, REWIND_STEPS))
        self.audio = AudioClock(stall_ns=int(self.cfg.stall_ms * 1e6))
        idle_root, idle_quat = model.idle_pose()
        cap = max(64, 2 * model.frames_per_step * (self.cfg.lookahead_tokens + 4))
        pids = model.performer_ids()
        self._row = {pid: i for i, pid in enumerate(pids)}  # performer -> row of the playout arrays
        self.ring = FrameRing(len(pids), model.n_joints, capacity=cap)
        self.playheads = PlayheadBank(self.ring, idle_root, idle_quat, max_warp_rate=self.cfg.max_warp_rate,
                                      **_transition_limits(model, pids))
        self.controls = ControlDesk(model, self._set_intensity, self._current_pose, self.texts)
        self._lock = threading.Condition()
        self._tick = 0  # next output tick
        self._stall_frames = 0.0  # audio frames the output timeline lags behind ticks (input stalls)
        self._last_phase: float | None = None  # tracker phase at the previous output tick
        self._last_slot: int | None = None
        self._input_lost = False
        self._running = False
        self._ended = False
        self._fixed_ns = None if self.cfg.delay_ms is None else int(self.cfg.delay_ms * 1e6)
        self._delay_ns: int | None = None
        self.pulser = BeatPulser()  # beat pulses at the predicted beat, as heard (see beat_pulse.py)
        self.pulse_sinks: list[Callable[[BeatPulse], None]] = []  # e.g. the VJ OSC profile's beat

    # ---------------------------------------------------------------------------------------- controls

    def submit_control(self, msg: ControlMessage) -> None:
        """Accept a validated control from any thread; raises ValueError with the reason if it cannot apply."""
        self.controls.submit(msg)

    def _set_intensity(self, pid: int, value: float) -> None:
        self.playheads.intensity[self._row[pid]] = value

    def _current_pose(self, pid: int) -> tuple[np.ndarray, np.ndarray]:
        r = self._row[pid]
        newest = int(self.ring.newest[r])
        if newest >= 0:
            pos = self.ring.newest.astype(np.float64)
            ok, root, quat, _ = self.ring.sample_rows(pos)
            if ok[r]:
                return root[r], quat[r]
        return self.playheads.idle_root.copy(), self.playheads.idle_quat.copy()

    # ---------------------------------------------------------------------------------------- start

    def calibrate(self) -> list[float]:
        """Time ``calibration_steps`` model steps on beat-bearing conditioning, then start every performer over.

        The steps carry a predicted beat inside every step, so beat-guided sampling (the costly case) is
        measured. Returns the step times in ms (warm-up excluded); D is chosen from them at the first block.
        """
        n = self.cfg.calibration_steps
        if n <= 0:
            return []
        times: list[float] = []
        feats = np.zeros((FRAMES_PER_TOKEN, MUSIC_DIM), np.float32)
        period = np.full(FRAMES_PER_TOKEN, 0.5)
        for k in range(n):
            nxt = np.full(FRAMES_PER_TOKEN, (FRAMES_PER_TOKEN + k % FRAMES_PER_TOKEN) / MODEL_FPS)
            cond = token_condition(feats, period, nxt, 1)
            t0 = self.clock.monotonic_ns()
            self.model.step(cond)
            if k >= min(4, n - 1):
                times.append((self.clock.monotonic_ns() - t0) / 1e6)
        for pid in self.model.performer_ids():
            self.model.reset(pid, np.zeros(2))  # start over at the origin, as if never stepped
        self.stats.calibration_ms = times
        return times

    def _choose_delay(self) -> None:
        d = choose_delay([int(t * 1e6) for t in self.stats.calibration_ms], self.audio.block_ns,
                         int(self.cfg.delay_margin_ms * 1e6), self.cfg.lookahead_tokens, self.model.frames_per_step,
                         self._fixed_ns, self.cfg.output_fps)
        self.stats.delay = d
        self._delay_ns = d.delay_ns
        log.info("%s", d.describe())

    # ---------------------------------------------------------------------------------------- engine side

    def feed(self, blk: AudioBlock) -> None:
        """One source block (engine thread): audio clock, analysis, and the steps that became due."""
        with self._lock:
            self.audio.on_block(blk)
            if self._delay_ns is None and self.cfg.realtime:
                self._choose_delay()
            self._lock.notify_all()
        for out in self.analyzer.process(blk):  # type: ignore[attr-defined]
            self.process(out)

    def process(self, frame: Frame) -> None:
        """Feed one message from the analyzer (FeatureFrames; beat and onset events are not needed here)."""
        if isinstance(frame, FeatureFrame):
            self._on_feature(frame)

    def _on_feature(self, ff: FeatureFrame) -> None:
        ev = self.music.push(ff)
        self.stats.idle = self.music.idle
        with self._lock:
            self.pulser.predict(ff.pulse_next_s, ff.pulse_period_s, not self.music.idle and ff.pulse_active)
            self._lock.notify_all()
        if ev.went_idle or ev.woke:
            self.playheads.set_idle(ev.went_idle)
        if ev.restart:
            for pid in self.model.performer_ids():
                self.model.reset(pid)
        self.playheads.set_period_frames(ff.period_s * MODEL_FPS)
        if ev.tempo_jump:
            self._replan()
        while self.sched.due(ff.frame_index):
            self._generate(self.sched.next_step, ff)
        if not self.cfg.realtime:
            self._drain(final=False)

    def _generate(self, t: int, ff: FeatureFrame) -> None:
        redo: list[tuple[int, list[int]]] = []  # (first step to remake, performers) of a control re-plan

        def replan(pids: list[int]) -> None:
            pids = self.model.step_group(pids)  # a couple's partners are re-planned together
            first = self._rewind_unplayed(pids)
            if first is not None:
                redo.append((first, pids))

        t0 = self.clock.monotonic_ns()
        # A control that changes the dance first discards its performers' generated-but-unplayed steps, so it
        # takes effect at the next step that plays, whatever the lookahead (models that step some performers).
        self.controls.apply(replan if self.model.capabilities.step_some else None)
        self.stats.controls_applied = self.controls.applied
        self.stats.control_errors = self.controls.errors
        for first, pids in redo:
            for s in range(first, t):  # remade in play order: the first is due soonest
                self._step(s, ff, pids)
            self.stats.control_replans += 1
            self.stats.replanned_steps += (t - first) * len(pids)
            self.stats.control_replan_ms.append((self.clock.monotonic_ns() - t0) / 1e6)
        self._step(t, ff, None)

    def _step(self, t: int, ff: FeatureFrame, pids: list[int] | None) -> None:
        """Generate step ``t`` of every performer (``pids`` None: the schedule's next step) or remake it for
        ``pids`` (a control re-plan), and hand its frames to the playout."""
        n = self.model.frames_per_step
        t0 = self.clock.monotonic_ns()
        try:
            out = self.model.step(self.music.condition(t)) if pids is None else self.model.step(
                self.music.condition(t), pids)
        except Exception as exc:  # a failing step must not kill the engine: playout holds and blends
            log.exception("model step failed")
            self.stats.source_errors.append(f"step {t}: {exc}")
            out = []
        step_ns = self.clock.monotonic_ns() - t0
        f0 = n * t
        phases = [self.music.phase_at(f0 + j) for j in range(n)]
        phase = np.array([np.nan if ph is None else ph for ph in phases])
        rows = np.fromiter((self._row[sf.pid] for sf in out), np.int64, len(out))
        roots = np.stack([sf.root for sf in out]) if out else None
        quats = np.stack([sf.quat for sf in out]) if out else None
        with self._lock:
            if roots is not None and quats is not None:
                self.ring.put(rows, f0, roots, quats, phase)
            if pids is None:
                self.sched.committed(t, ff.sample_index, ff.capture_ns)
            else:
                self.sched.remade(t, ff.sample_index, ff.capture_ns)
            self._lock.notify_all()
        if pids is None:
            self.stats.tokens += 1
            self.stats.token_bpm.append((t, self.music.bpm))
            self.stats.step_ms.append(step_ns / 1e6)

    def _replan(self) -> None:
        """Discard every performer's generated-but-unplayed steps so they are regenerated with the new tempo
        belief (the schedule goes back; the steps become due again)."""
        if self._rewind_unplayed(None) is not None:
            self.stats.replans += 1

    def _rewind_unplayed(self, pids: list[int] | None) -> int | None:
        """Discard the generated-but-unplayed steps of ``pids`` (None: every performer, and the schedule goes back
        to the first of them): their frames leave the ring and the model rewinds them. Returns the first discarded
        step, None when nothing was ahead.

        A tempo re-plan (None) blends the playout over the seam; a control re-plan of a model that keeps its state
        for the rewind (``REWIND_STEPS``) continues the kept frames exactly and needs no blend. A control re-plan
        also keeps a step that begins to play before it could be remade (within two step times, in real time):
        remaking it would hold the pose instead."""
        with self._lock:
            first = self.sched.first_unplayed(self._pos(self._tick))
            if pids is not None and self.cfg.realtime and self.audio.started and self._delay_ns is not None:
                ready = self.clock.monotonic_ns() + self._remake_ns()
                lead = self._delay_ns - int(self.cfg.output_offset_ms * 1e6)
                n = self.model.frames_per_step
                while first < self.sched.next_step and self.audio.time_ns(float(n * first)) + lead < ready:
                    first += 1
            k = self.sched.next_step - first
            if k <= 0:
                return None
            if pids is None:
                self.sched.replan(self._pos(self._tick))
            last = self.model.frames_per_step * first - 1
            ok, root, _, _ = self.ring.sample_rows(np.full(self.ring.rows, float(max(last, 0))))
            which = self.model.performer_ids() if pids is None else pids
            rows = np.array([self._row[pid] for pid in which], dtype=np.int64)
            self.ring.discard_after(last, rows)
            if pids is None or k > REWIND_STEPS:
                self.playheads.recover[rows] = 1.0
        for pid in which:
            r = self._row[pid]
            kept = last >= 0 and bool(ok[r])
            self.model.rewind(pid, k, np.array([root[r, 0], root[r, 2]]) if kept else None)
        return first

    def _remake_ns(self) -> int:
        """Time to allow before a remade step is needed: two step times (the history rewrite and the step), from
        the p99 of the newest steps (or of the calibration)."""
        recent = list(self.stats.step_ms)[-64:] or self.stats.calibration_ms
        return int(2e6 * float(np.percentile(recent, 99))) if recent else 0

    # ---------------------------------------------------------------------------------------- playout side

    def _pos(self, tick: int) -> float:
        """Audio-timeline frame position shown by output tick ``tick`` (input stalls shift it back)."""
        return tick * MODEL_FPS / self.cfg.output_fps - self._stall_frames

    def next_slot_ns(self) -> int | None:
        """When the next output tick leaves: its audio time + D - offset (None before the first block)."""
        if not self.audio.started or self._delay_ns is None:
            return None
        slot = self.audio.time_ns(self._pos(self._tick)) + self._delay_ns - int(self.cfg.output_offset_ms * 1e6)
        if self._last_slot is not None and self._input_lost:
            slot = max(slot, self._last_slot + 1_000_000_000 // self.cfg.output_fps)  # held: keep the rate
        return slot

    def next_pulse_ns(self) -> int | None:
        """When the next beat pulse leaves: the predicted beat's audio time + the beat offset (None: none)."""
        if not self.cfg.realtime or not self.audio.started or self.pulser.pending_s is None or self._input_lost:
            return None
        return self.audio.time_ns(self.pulser.pending_s * MODEL_FPS) + int(self.cfg.beat_offset_ms * 1e6)

    def next_wake_ns(self) -> int | None:
        """The earliest of the next output tick and the next beat pulse (what the playout thread sleeps to)."""
        times = [t for t in (self.next_slot_ns(), self.next_pulse_ns() if self.pulse_sinks else None)
                 if t is not None]
        return min(times) if times else None

    def _emit_pulse(self, now: int) -> None:
        """Send the beat pulse due at ``now``, if any (only while a pulse sink listens)."""
        if not self.pulse_sinks:
            return
        with self._lock:
            due = self.next_pulse_ns()
            if due is None or due > now:
                return
            # the audio-timeline time it is now, as the pulse clock sees it (beat + how late we are)
            pulse = self.pulser.take((self.pulser.pending_s or 0.0) + (now - due) / 1e9, due_ns=due)
            self.stats.pulses_dropped = self.pulser.dropped
        if pulse is None:
            return
        for sink in self.pulse_sinks:
            try:
                sink(pulse)
            except Exception as exc:  # a failing receiver must not stop the show
                log.warning("beat pulse sink %r failed: %s", sink, exc)
        self.stats.pulses += 1
        self.stats.pulse_lag_ns.append(self.clock.monotonic_ns() - due)

    def emit_due(self, now_ns: int | None = None) -> int:
        """Emit the beat pulse and every tick whose time has come (normally one tick); returns how many ticks.
        Used by the playout thread, and by tests that drive a fake clock from one thread."""
        count = 0
        self._emit_pulse(self.clock.monotonic_ns() if now_ns is None else now_ns)
        while True:
            with self._lock:
                slot = self.next_slot_ns()
                now = self.clock.monotonic_ns() if now_ns is None else now_ns
                if slot is None or slot > now:
                    return count
            if not self._emit_slot(slot):
                return count
            count += 1

    def _emit_slot(self, slot: int) -> bool:
        """Emit the next tick for ``slot``; False once the input has ended and everything was played."""
        step = MODEL_FPS / self.cfg.output_fps
        with self._lock:
            pos = self._pos(self._tick)
            if self._ended and pos >= self.music.n_frames:
                return False
            now = self.clock.monotonic_ns()
            # No audio for this frame and none for the stall limit: the input is lost. Hold the pose and
            # stop the audio timeline, so playback resumes where it was when input returns.
            held = (not self.sched.ready(pos) and not self.audio.has_audio(pos)
                    and self.audio.silent_for_ns(now) > self.audio.stall_ns)
            if held:
                self._stall_frames += step
                self.stats.stalled_frames += 1
            frames = self._poses(self._tick, pos, held, slot)
            self._tick += 1
            self._last_slot = slot
        if held != self._input_lost:
            self._input_lost = held
            if held:
                log.warning("input lost: no audio for %.0f ms; holding the last pose until it returns",
                            self.audio.silent_for_ns(now) / 1e6)
                self.stats.source_errors.append("input lost (no audio); held the last pose")
            else:
                log.warning("input is back; dancing again")
        lag = self.clock.monotonic_ns() - slot
        self.stats.send_lag_ns.append(lag)
        if self.cfg.realtime and lag > self.cfg.late_tolerance_ms * 1e6:
            self.stats.late += 1
        for f in frames:
            self.sinks(f)
        self.stats.frames_out += 1
        return True

    def _poses(self, tick: int, pos: float, held: bool, due_ns: int = 0) -> list[PoseFrame]:
        """The pose of every performer for one tick, due at ``due_ns`` (0: fast mode), under the lock."""
        step = MODEL_FPS / self.cfg.output_fps
        src = self.sched.source(pos)
        tracker_phase = self.music.phase_at(pos)
        # A beat pulse on the tick where the tracker's *predicted* phase wraps past 0: beat events are
        # committed a little after the beat, too late for the frame that shows it.
        beat = tracker_phase is not None and self._last_phase is not None and tracker_phase < self._last_phase - 0.5
        self._last_phase = tracker_phase
        ph = self.playheads
        if held:
            roots, quats, missed = ph.last_root, ph.last_quat, False
        else:
            roots, quats, miss = ph.tick(pos, tracker_phase, step)
            missed = bool(miss.any())
        if missed and not self.music.idle:
            self.stats.missed += 1
        name = self.model.skeleton.name
        bpm, energy = self.music.bpm, 0.0 if held else self.music.energy
        phase = 0.0 if tracker_phase is None else float(tracker_phase)
        return [PoseFrame(sample_index=src[0], capture_ns=src[1], frame_index=tick, performer=pid, skeleton=name,
                          root_position=roots[r], rotations=quats[r], time_s=pos / MODEL_FPS, bpm=bpm,
                          beat_phase=phase, beat=beat and not held, energy=energy, fps=float(self.cfg.output_fps),
                          due_ns=due_ns)
                for pid, r in self._row.items()]

    def _drain(self, final: bool) -> None:
        """Fast mode: emit every tick whose frames exist (all remaining ticks when ``final``)."""
        limit = self.music.n_frames
        if not final:
            limit = min(limit, self.model.frames_per_step * self.sched.next_step)
        while self._pos(self._tick) < limit:
            with self._lock:
                frames = self._poses(self._tick, self._pos(self._tick), False)
                self._tick += 1
            for f in frames:
                self.sinks(f)
            self.stats.frames_out += 1

    def _playout_loop(self) -> None:
        """Emit ticks at their slots on the fixed grid; hold through input stalls."""
        self.stats.rt_priority = request_realtime(self.cfg.rt_priority)
        while True:
            with self._lock:
                while self._running and self.next_slot_ns() is None:
                    self._lock.wait(0.05)
                if not self._running:
                    return
                slot = self.next_slot_ns()
                wake = self.next_wake_ns()
            assert slot is not None
            target = slot if wake is None else min(slot, wake)
            if self.pulse_sinks:
                # A newer beat prediction may move the pulse before this slot: look again every few ms.
                target = min(target, self.clock.monotonic_ns() + int(self.cfg.pulse_poll_ms * 1e6))
            if target < slot:
                # A beat pulse (maybe) due before the next tick: send it at its own time; the tick is not delayed.
                self.clock.sleep_until_ns(target)
                self._emit_pulse(self.clock.monotonic_ns())
                continue
            self.clock.sleep_until_ns(slot)
            if not self._running or not self._emit_slot(slot):
                return

    # ---------------------------------------------------------------------------------------- run

    def run(self, blocks: Iterable[Frame], seconds: float | None = None) -> RuntimeStats:
        """Run until the source ends (or ``seconds`` of audio): the engine thread; starts playout."""
        self._running = True
        if self.cfg.realtime and self._fixed_ns is None and not self.stats.calibration_ms:
            self.calibrate()
        player: threading.Thread | None = None
        if self.cfg.realtime:
            # The playout thread must get the interpreter within a fraction of a millisecond of its slot while
            # the engine thread runs Python in a step: shorten the GIL switch interval (default 5 ms).
            sys.setswitchinterval(min(sys.getswitchinterval(), self.cfg.gil_switch_ms / 1000.0))
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
                self.feed(blk)
                if limit is not None and self.music.n_frames * SAMPLES_PER_FRAME >= limit:
                    break
        finally:
            self._ended = True
            if player is not None:
                # Let the playout finish what was generated (it returns at the last frame), then stop it.
                if self._running:
                    behind_s = max(0.0, self.music.n_frames - self._pos(self._tick)) / MODEL_FPS
                    wait = behind_s + (self._delay_ns or 0) / 1e9 + 1.0
                    player.join(timeout=wait)
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

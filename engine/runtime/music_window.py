"""The recent music as the motion models see it: the newest feature frames, the tempo belief, and events.

Holds the last ``FRAMES_PER_TOKEN`` feature frames and the tracker's belief at each; builds the
conditioning row of a step (:func:`engine.models.conditioning.token_condition`, the layout training uses:
music up to the step plus the *predicted* beat phase of its frames); and reports what the runtime acts on:
silence (settle into the idle pose), music after long silence (restart the dance), tempo jumps (re-plan).
Feature indices come from the analysis module that defines them. No threads, no model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.analysis.features import MUSIC_FEATURE_DIM, RMS, RMS_FLOOR_DB
from engine.frames import MODEL_FPS, FeatureFrame
from engine.models.conditioning import FRAMES_PER_TOKEN, token_condition


@dataclass(frozen=True)
class MusicEvents:
    """What one feature frame changed (all False most of the time)."""

    went_idle: bool = False  # silent for the hold time: settle into the idle pose
    woke: bool = False  # music after silence
    restart: bool = False  # ... after silence long enough to start the dance over
    tempo_jump: bool = False  # the tempo belief moved beyond the re-plan ratio


class MusicWindow:
    """Feature window, tempo belief, energy and silence state of the live music (see the module doc).

    Args:
        silence_db: below this RMS (dBFS) the music counts as silent.
        silence_hold_s: silence this long settles the performers.
        restart_after_s: silence this long makes the next music restart the dance.
        tempo_jump_ratio: a tempo change beyond this between frames is a jump.
    """

    def __init__(self, silence_db: float = -50.0, silence_hold_s: float = 0.5, restart_after_s: float = 2.0,
                 tempo_jump_ratio: float = 0.08) -> None:
        self.silence_db = silence_db
        self.silence_hold_frames = silence_hold_s * MODEL_FPS
        self.restart_after_frames = restart_after_s * MODEL_FPS
        self.tempo_jump_ratio = tempo_jump_ratio
        self._feat = np.zeros((FRAMES_PER_TOKEN, MUSIC_FEATURE_DIM), dtype=np.float32)
        self._period = np.zeros(FRAMES_PER_TOKEN)
        self._next_beat = np.zeros(FRAMES_PER_TOKEN)
        self.n_frames = 0  # feature frames seen
        self.period_s = 0.0  # belief of the newest frame
        self.next_beat_s = 0.0
        self.bpm = 0.0
        self.energy = 0.0  # 0..1 loudness of the newest frame
        self.idle = True
        self._silent = 0
        self._idle_since: int | None = 0
        self._last_bpm = 0.0

    def push(self, ff: FeatureFrame) -> MusicEvents:
        i = ff.frame_index
        k = i % FRAMES_PER_TOKEN
        self._feat[k] = ff.features
        self._period[k] = ff.period_s
        self._next_beat[k] = ff.next_beat_s
        self.n_frames = i + 1
        self.period_s, self.next_beat_s, self.bpm = ff.period_s, ff.next_beat_s, ff.bpm
        db = float(ff.features[RMS]) * -RMS_FLOOR_DB + RMS_FLOOR_DB  # the feature is dBFS mapped onto [0, 1]
        self.energy = float(np.clip((db + 60.0) / 60.0, 0.0, 1.0))
        went_idle = woke = restart = False
        if db < self.silence_db:
            self._silent += 1
            if self._silent >= self.silence_hold_frames and not self.idle:
                self.idle = went_idle = True
                self._idle_since = i
        else:
            self._silent = 0
            if self.idle:
                self.idle = False
                woke = True
                restart = self._idle_since is not None and (i - self._idle_since) >= self.restart_after_frames
                self._idle_since = None
        jump = (self._last_bpm > 0 and ff.bpm > 0
                and abs(ff.bpm - self._last_bpm) / self._last_bpm > self.tempo_jump_ratio)
        if ff.bpm > 0:
            self._last_bpm = ff.bpm
        return MusicEvents(went_idle, woke, restart, jump)

    def condition(self, step: int) -> np.ndarray:
        """Conditioning row of step ``step`` from the newest 4 frames (training's layout at lookahead 0)."""
        n = self.n_frames
        if n < FRAMES_PER_TOKEN or step == 0:
            return token_condition(np.zeros((0, MUSIC_FEATURE_DIM), np.float32), np.zeros(0), np.zeros(0), 0)
        order = np.arange(n - FRAMES_PER_TOKEN, n) % FRAMES_PER_TOKEN  # oldest first
        # token_condition reads frames before 4*token: present the window as frames 0..3 of token 1 and
        # shift the beat predictions by the same amount (phase arithmetic is shift-invariant).
        shift = (FRAMES_PER_TOKEN * step - FRAMES_PER_TOKEN) / MODEL_FPS
        return token_condition(self._feat[order], self._period[order], self._next_beat[order] - shift, 1)

    def phase_at(self, pos: float) -> float | None:
        """The tracker's predicted beat phase at frame position ``pos`` (None without a belief)."""
        if self.period_s <= 0:
            return None
        return float(((pos / MODEL_FPS - self.next_beat_s) / self.period_s) % 1.0)

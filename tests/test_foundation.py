"""Frames, the injectable clock, the pipeline and the CLI entry point."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable

import numpy as np
import pytest

from engine.clock import FakeClock, SystemClock
from engine.frames import ENGINE_SAMPLE_RATE, MODEL_FPS, SAMPLES_PER_FRAME, AudioBlock, FeatureFrame, Frame
from engine.pipeline import Pipeline, Stage


def test_frame_rate_constants_agree() -> None:
    assert SAMPLES_PER_FRAME * MODEL_FPS == ENGINE_SAMPLE_RATE


def test_audio_block_start_index() -> None:
    blk = AudioBlock(sample_index=1024, capture_ns=5, samples=np.zeros(256, np.float32))
    assert blk.start_index == 768


def test_feature_frame_predicts_phase() -> None:
    f = FeatureFrame(0, 0, frame_index=0, features=np.zeros(1, np.float32), bpm=120.0, period_s=0.5,
                     next_beat_s=2.0, confidence=1.0)
    assert f.phase_at(2.0) == pytest.approx(0.0)
    assert f.phase_at(2.25) == pytest.approx(0.5)
    assert f.phase_at(1.875) == pytest.approx(0.75)


def test_fake_clock_only_moves_when_told() -> None:
    c = FakeClock(start_ns=100)
    assert c.monotonic_ns() == 100
    c.sleep_until_ns(50)  # in the past: no-op
    assert c.monotonic_ns() == 100
    c.sleep_until_ns(1_000)
    assert c.monotonic_ns() == 1_000
    c.advance_ns(5)
    assert c.monotonic_ns() == 1_005
    with pytest.raises(ValueError):
        c.advance_ns(-1)


def test_system_clock_sleep_reaches_deadline() -> None:
    c = SystemClock()
    deadline = c.monotonic_ns() + 2_000_000
    c.sleep_until_ns(deadline)
    assert c.monotonic_ns() >= deadline


class _Doubler(Stage):
    latency_samples = 3

    def process(self, frame: Frame) -> Iterable[Frame]:
        return [frame, frame]


class _Batcher(Stage):
    """Emits one frame per three inputs; flushes the remainder on close."""

    latency_samples = 7

    def __init__(self) -> None:
        self.pending: list[Frame] = []

    def process(self, frame: Frame) -> Iterable[Frame]:
        self.pending.append(frame)
        if len(self.pending) == 3:
            self.pending.clear()
            return [Frame(frame.sample_index, frame.capture_ns)]
        return []

    def close(self) -> Iterable[Frame]:
        out = [Frame(-1, -1)] if self.pending else []
        self.pending.clear()
        return out


def test_pipeline_links_stages_and_observers_see_outputs() -> None:
    seen: list[tuple[str, int]] = []
    p = Pipeline([_Doubler(), _Batcher()], observers=[lambda name, f: seen.append((name, f.sample_index))])
    assert p.latency_samples == 10
    assert p.push(Frame(1, 0)) == []  # 2 pending in the batcher
    assert p.push(Frame(2, 0)) == [Frame(2, 0)]  # 4th input releases one
    assert p.close() == [Frame(-1, -1)]  # the remainder is flushed
    assert ("_Doubler", 1) in seen and ("_Batcher", 2) in seen
    with pytest.raises(ValueError):
        Pipeline([])


def test_cli_help_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "engine", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("groovecast ")
    rc = subprocess.run([sys.executable, "-m", "engine"], capture_output=True, text=True).returncode
    assert rc == 2  # no command: help and a usage error code

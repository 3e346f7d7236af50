"""Beat pulses: sent at the tracker's predicted beat (fake clock), one per beat, never a double."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis.music import MusicAnalyzer
from engine.clock import FakeClock
from engine.frames import ENGINE_SAMPLE_RATE, AudioBlock, FeatureFrame
from engine.runtime.beat_pulse import BeatPulse, BeatPulser
from engine.runtime.runtime import DanceRuntime, RuntimeConfig
from tests.runtime.test_runtime import _generator, _music

SR = ENGINE_SAMPLE_RATE


def _drive(pulser: BeatPulser, predictions: list[tuple[float, float, float]]) -> list[BeatPulse]:
    """(time now, predicted next beat, period) in time order -> the pulses taken."""
    out = []
    for now, nxt, period in predictions:
        if (p := pulser.take(now)) is not None:
            out.append(p)
        pulser.predict(nxt, period, True)
    return out


def test_a_beat_the_tracker_still_names_after_its_pulse_is_not_pulsed_again() -> None:
    # The tracker keeps naming beat 1.0 for a while after it was pulsed (it commits late), then moves it
    # 60 ms later (a re-phase): one pulse at 1.0, the next at 1.5 + 0.06, never two within half a period.
    period = 0.5
    preds = [(t, 1.0, period) for t in np.arange(0.80, 1.08, 0.01)]
    preds += [(t, 1.06, period) for t in np.arange(1.08, 1.3, 0.01)]  # "the beat was at 1.06": same beat
    preds += [(t, 1.56, period) for t in np.arange(1.3, 1.8, 0.01)]
    pulses = _drive(BeatPulser(window=1), preds)
    assert [round(p.beat_s, 3) for p in pulses] == [1.0, 1.56]


def test_pulses_are_never_closer_than_half_a_period_while_the_prediction_jumps() -> None:
    rng = np.random.default_rng(0)
    period, t, preds = 0.5, 0.0, []
    nxt = 0.3
    while t < 20.0:
        if t > nxt:
            nxt += period
        jump = rng.uniform(-0.3, 0.3) * period if rng.random() < 0.05 else 0.0  # an unsettled tracker
        preds.append((t, nxt + jump, period))
        t += 0.0116
    pulses = _drive(BeatPulser(), preds)
    gaps = np.diff([p.beat_s for p in pulses])
    assert len(pulses) >= 35 and gaps.min() >= 0.5 * period


def test_steady_jittered_predictions_are_smoothed_onto_the_grid() -> None:
    # Predictions quantised to the tracker's 11.6 ms hops around a 0.5 s grid: smoothed pulses land closer.
    rng = np.random.default_rng(1)
    period, hop = 0.5, 256 / SR
    truth = 0.5 + period * np.arange(40)
    raw_pred = np.floor((truth + rng.uniform(0, hop, truth.size)) / hop) * hop  # one value per beat
    preds = []
    for k, b in enumerate(truth):
        for t in np.arange(b - 0.2, b + 0.2, 0.0116):
            preds.append((float(t), float(raw_pred[k]), period))
    raw = _drive(BeatPulser(window=1), preds)
    smooth = _drive(BeatPulser(window=8), preds)
    assert len(raw) == len(smooth) == truth.size  # every beat once
    err_raw = np.array([p.beat_s for p in raw]) - truth[: len(raw)]
    err_smooth = np.array([p.beat_s for p in smooth]) - truth[: len(smooth)]
    assert np.std(err_smooth[8:]) < 0.75 * np.std(err_raw[8:])


def test_a_stale_beat_is_dropped_not_sent_late() -> None:
    p = BeatPulser()
    p.predict(1.0, 0.5, True)
    assert p.take(1.2) is None and p.dropped == 1  # 0.2 s = 0.4 period late
    p.predict(1.5, 0.5, True)
    pulse = p.take(1.5)
    assert pulse is not None and pulse.beat_s == 1.5 and pulse.bpm == pytest.approx(120.0)


def _run_runtime(offset_ms: float) -> tuple[DanceRuntime, list[tuple[int, BeatPulse]], list[tuple[int, float]], int]:
    """The real analyzer and generator on the fake clock; the playout woken exactly at each next_wake_ns."""
    clock = FakeClock(start_ns=10_000_000_000)
    rt = DanceRuntime(_generator(performers=1), MusicAnalyzer(), sinks=[lambda f: None],
                      config=RuntimeConfig(realtime=True, delay_ms=40.0, beat_offset_ms=offset_ms), clock=clock)
    pulses: list[tuple[int, BeatPulse]] = []
    rt.pulse_sinks.append(lambda p: pulses.append((clock.monotonic_ns(), p)))
    predictions: list[tuple[int, float]] = []  # (when, the pulser's pending beat after each feature frame)
    process = rt.process

    def spy(frame: object) -> None:
        process(frame)  # type: ignore[arg-type]
        if isinstance(frame, FeatureFrame) and rt.pulser.pending_s is not None:
            predictions.append((clock.monotonic_ns(), rt.pulser.pending_s))

    rt.process = spy  # type: ignore[method-assign]
    x = _music(8.0, silence_s=0.0)  # clicks every 0.5 s from 0.5 s
    t0 = clock.monotonic_ns() + 1_000_000_000
    for s in range(0, len(x) - 511, 512):
        end = s + 512
        arrival = t0 + int(end * 1e9 / SR)
        while (wake := rt.next_wake_ns()) is not None and wake <= arrival:
            clock.sleep_until_ns(wake)
            rt.emit_due()
        clock.sleep_until_ns(arrival)
        rt.feed(AudioBlock(end, clock.monotonic_ns(), x[s:end].copy()))
    return rt, pulses, predictions, t0


@pytest.mark.parametrize("offset_ms", [0.0, -30.0])
def test_the_pulse_leaves_at_the_predicted_beat_as_heard(offset_ms: float) -> None:
    rt, pulses, predictions, t0 = _run_runtime(offset_ms)
    assert len(pulses) >= 12 and rt.stats.pulses == len(pulses) and max(rt.stats.pulse_lag_ns) == 0
    for sent, p in pulses:
        # sent exactly at the beat's audio time (the clip start t0 + beat) plus the offset, to 1 us
        assert sent - (t0 + p.beat_s * 1e9 + offset_ms * 1e6) == pytest.approx(0, abs=1_000)
        # and that beat was the pulser's prediction from the newest feature frame before the pulse
        before = [b for when, b in predictions if when <= sent]
        assert before and before[-1] == p.beat_s
    # the clicks are on a 0.5 s grid from 0.5 s: once locked, every pulse is within 15 ms of a click
    settled = np.array([p.beat_s for _, p in pulses if p.beat_s > 3.0])
    assert np.all(np.abs(settled - np.round(settled * 2) / 2) < 0.015)


def test_one_pulse_per_beat_after_the_tracker_settles() -> None:
    _, pulses, _, _ = _run_runtime(0.0)
    beats = np.array([p.beat_s for _, p in pulses])
    assert np.diff(beats).min() >= 0.25  # never a double (half the 0.5 s period)
    # the clicks stop at 7.5 s and the clip at 8 s: a pulse predicted for the beat at the clip's end (the
    # engine cannot know the music stops) is neither a double nor a spurious pulse inside the music
    settled = beats[(beats > 2.75) & (beats < 7.75)]
    clicks = np.arange(3.0, 7.6, 0.5)  # every click after settling has exactly one pulse
    assert all(np.min(np.abs(settled - c)) < 0.015 for c in clicks)
    assert len(settled) == len(clicks)

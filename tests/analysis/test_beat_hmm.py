"""The online tempo x phase filter (BeatHMM) on synthetic beat activations: lock, jumps, ramps, silence."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis.beat_hmm import BeatHMM
from engine.train.beat_data import beat_hop

FPS = 22050 / 256


def beat_times(segments: list[tuple[int, float, float]]) -> np.ndarray:
    """Beat times (s) of consecutive segments ``(beats, bpm_start, bpm_end)`` (linear BPM within each)."""
    t, out = 1.0, []
    for n, b0, b1 in segments:
        for k in range(n):
            out.append(t)
            t += 60.0 / (b0 + (b1 - b0) * k / max(1, n - 1))
    return np.asarray(out)


def activations(beats: np.ndarray, seconds: float, offbeat: float = 0.15, seed: int = 0) -> np.ndarray:
    """A beat network's output as it looks on clean music: a peak (0.9, 0.45 either side) at each beat's
    hop, a weaker one half-way between beats, and a little noise everywhere."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    a = rng.uniform(0.0, 0.05, n)
    for hops, v in ((beat_hop(beats), 0.9), (beat_hop((beats[:-1] + beats[1:]) / 2), offbeat)):
        for d, w in ((0, 1.0), (-1, 0.5), (1, 0.5)):
            k = hops + d
            k = k[(k >= 0) & (k < n)]
            a[k] = np.maximum(a[k], v * w)
    return a


def run(act: np.ndarray) -> tuple[list[float], list[float], BeatHMM]:
    hmm = BeatHMM(onset_weight=0.0)  # the filter on the activation alone (no onset function here)
    beats, bpms = [], []
    for a in act:
        b = hmm.process(float(a))
        if b is not None:
            beats.append(b.time_s)
            bpms.append(b.bpm)
    return beats, bpms, hmm


def matched_from(est: list[float], ref: np.ndarray, after_s: float, tol: float = 0.035) -> int | None:
    """Index of the first reference beat after ``after_s`` from which every reference beat has an estimate
    within ``tol`` and every estimate a reference beat (to the end); None if never."""
    e = np.asarray(est)
    r = ref[(ref > after_s) & (ref < e[-1] + 0.1)] if len(e) else ref[:0]
    for k in range(len(r)):
        if all(np.min(np.abs(e - t)) <= tol for t in r[k:]):
            tail = e[(e > r[k] - tol) & (e < ref[-1] + tol)]  # the activations run on past the last beat
            if all(np.min(np.abs(ref - t)) <= tol for t in tail):
                return k
    return None


@pytest.mark.parametrize("bpm", [72.0, 100.0, 128.0, 175.0])
def test_locks_to_a_steady_tempo(bpm: float) -> None:
    ref = beat_times([(int(20 * bpm / 60), bpm, bpm)])
    est, bpms, hmm = run(activations(ref, ref[-1] + 0.5))
    assert matched_from(est, ref, 5.0) == 0
    assert abs(np.median(bpms[len(bpms) // 2:]) - bpm) < 0.02 * bpm
    assert hmm.belief > 2 * hmm.min_confidence


@pytest.mark.parametrize("before,after", [(100.0, 130.0), (132.0, 100.0), (90.0, 120.0), (144.0, 112.0)])
def test_relocks_within_two_beats_of_a_jump(before: float, after: float) -> None:
    ref = beat_times([(24, before, before), (24, after, after)])
    jump = ref[23]
    est, _, _ = run(activations(ref, ref[-1] + 0.5))
    k = matched_from(est, ref, jump)
    assert k is not None and k <= 2, f"re-locked only from beat {k} after the jump"


@pytest.mark.parametrize("b0,b1", [(90.0, 135.0), (140.0, 100.0)])
def test_follows_a_ramp_without_losing_phase(b0: float, b1: float) -> None:
    ref = beat_times([(12, b0, b0), (24, b0, b1), (12, b1, b1)])
    est, _, _ = run(activations(ref, ref[-1] + 0.5))
    assert matched_from(est, ref, 5.0) == 0  # every beat from 5 s on, through the ramp, within 35 ms


def test_no_beats_in_silence_or_noise() -> None:
    rng = np.random.default_rng(1)
    for act in (np.zeros(int(15 * FPS)), rng.uniform(0.0, 0.3, int(15 * FPS))):
        est, _, hmm = run(act)
        assert est == []
        assert hmm.belief < hmm.min_confidence


def test_predicts_the_next_beat_before_it_comes() -> None:
    ref = beat_times([(40, 120.0, 120.0)])
    act = activations(ref, ref[-1] + 0.5)
    hmm = BeatHMM(onset_weight=0.0)  # the filter on the activation alone (no onset function here)
    errors = []
    for i, a in enumerate(act):
        hmm.process(float(a))
        t_now = hmm.hop_time(i)
        nxt = hmm.next_beat_s()
        # a prediction made 100-200 ms ahead of the beat, after the filter has settled
        if t_now > 6.0 and 0.1 < nxt - t_now < 0.2:
            errors.append(np.min(np.abs(ref - nxt)))
    assert len(errors) > 20
    assert np.percentile(errors, 95) < 0.010  # seconds: within the pulse goal (the hop is 11.6 ms)


@pytest.mark.parametrize("bpm", [72.0, 120.0, 151.0])
def test_default_beat_output_on_clicks(bpm: float) -> None:
    """The whole default path (onset function + network + filter) on steady clicks with exact beats."""
    from engine.analysis import analyze_signal
    from engine.audio.synth import SyntheticSignal

    sig = SyntheticSignal.clicks([(16.0, bpm, bpm)], noise_level=0.01)
    a = analyze_signal(sig.samples, 22050)
    assert abs(a.bpm - bpm) < 1.0
    late = [t for t in a.beats if 6.0 - 0.03 < t < sig.beats[-1] + 0.1]
    err = [float(np.min(np.abs(sig.beats - t))) for t in late]
    assert len(late) == int(np.sum(sig.beats > 6.0 - 0.03))  # one beat per click, no extra, none missing
    assert max(err) < 0.025  # on clicks its beats are 6-16 ms early (docs/audio.md)

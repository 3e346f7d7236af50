"""The analysis benchmark's re-lock and beat metrics on hand-made beat lists."""

from __future__ import annotations

import numpy as np

from bench.analysis_bench import beat_metrics, relock


def test_relock_counts_beats_and_seconds_from_the_jump() -> None:
    ref = np.concatenate([np.arange(0.0, 12.0, 0.5), 12.0 + np.arange(0, 20) * 0.4])  # 120 -> 150 BPM at 12 s
    est = ref.copy()
    est[(ref > 12.0) & (ref < 13.5)] += 0.15  # the first 4 beats after the jump are late by 150 ms
    secs, beats = relock(ref, est, 12.0)
    assert beats == 3 and secs is not None and abs(secs - 1.6) < 1e-9  # ref 12.4, 12.8, 13.2 missed; 13.6 ok
    secs0, beats0 = relock(ref, ref, 12.0)
    assert beats0 == 0 and secs0 is not None and abs(secs0 - 0.4) < 1e-9
    assert relock(ref, est[ref < 12.0], 12.0) == (None, None)  # stops after the jump: never re-locks


def test_relock_requires_no_extra_beats_after_it() -> None:
    ref = np.arange(0.0, 20.0, 0.5)
    est = np.sort(np.concatenate([ref, [15.25]]))  # one spurious off-beat late in the clip
    secs, beats = relock(ref, est, 10.0)
    assert beats == 10 and secs is not None and abs(secs - 5.5) < 1e-9  # from the first beat after it


def test_beat_metrics_perfect_and_half_tempo() -> None:
    ref = np.arange(0.0, 30.0, 0.5)
    m = beat_metrics(ref, ref)
    assert m == {"f": 1.0, "cmlt": 1.0, "amlt": 1.0}
    half = beat_metrics(ref, ref[::2])
    assert 0.6 < half["f"] < 0.7 and half["cmlt"] == 0.0 and half["amlt"] == 1.0

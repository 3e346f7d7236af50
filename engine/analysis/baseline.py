"""aubio's default tempo tracker, configured fairly, as the baseline the benchmarks compare against."""

from __future__ import annotations

import aubio
import numpy as np

from engine.audio.resample import resample
from engine.frames import ENGINE_SAMPLE_RATE

#: aubio's documented default is window 1024 / hop 512 at 44.1 kHz; scaled to the engine rate.
AUBIO_WIN = 1024 * ENGINE_SAMPLE_RATE // 44100
AUBIO_HOP = 512 * ENGINE_SAMPLE_RATE // 44100


def aubio_default_beats(samples: np.ndarray, sr: int) -> np.ndarray:
    """Beat times (s) from ``aubio.tempo("default")`` at the engine rate, window 512 / hop 256.

    Beat times are aubio's own ``get_last_s()`` (it compensates its delay itself).
    """
    x = resample(np.asarray(samples, dtype=np.float32), sr, ENGINE_SAMPLE_RATE)
    tracker = aubio.tempo("default", AUBIO_WIN, AUBIO_HOP, ENGINE_SAMPLE_RATE)
    beats: list[float] = []
    for i in range(0, len(x) - AUBIO_HOP + 1, AUBIO_HOP):
        if tracker(x[i:i + AUBIO_HOP])[0]:
            beats.append(float(tracker.get_last_s()))
    return np.asarray(beats)

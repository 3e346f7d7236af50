"""Live input through a real audio server: JACK's dummy driver, jack_metro clicking into our input port."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from jackutil import SCALE, jack_ports, start_metronome, stop_process

from engine.analysis import MusicAnalyzer
from engine.frames import ENGINE_SAMPLE_RATE, BeatEvent

pytestmark = [pytest.mark.live, pytest.mark.slow]

#: Seconds of clicks analysed, counted from the first click heard (not from the start of the input: plugging the
#: metronome in takes a while on a loaded machine, and the input is silent until then).
CLICK_SECONDS = 12.0


def test_mic_source_on_jack_detects_metronome_tempo(jack_server: str) -> None:
    from engine.audio.mic import MicSource, refresh_devices

    refresh_devices()  # PortAudio must see the JACK server started after it was first initialised
    bpm = 123
    src = MicSource(hostapi="JACK", samplerate=48000, block_size=512)
    metro = None
    watchdog = threading.Timer(120 * SCALE, src.stop)  # no audio at all must not hang the test
    onset_s: float | None = None
    end_s = 0.0
    beats: list[BeatEvent] = []
    try:
        src.start()
        deadline = time.monotonic() + 30 * SCALE
        while not (ours := [p for p in jack_ports() if p.startswith("PortAudio") and ":in" in p]):
            assert time.monotonic() < deadline, f"our input port is missing; ports: {jack_ports()}"
            time.sleep(0.1)
        metro = start_metronome(bpm, ours[0])
        watchdog.start()
        analyzer = MusicAnalyzer()
        for block in src.blocks():
            end_s = block.sample_index / ENGINE_SAMPLE_RATE
            if onset_s is None and float(np.sqrt(np.mean(block.samples**2))) > 0.01:
                onset_s = end_s - len(block.samples) / ENGINE_SAMPLE_RATE
            beats.extend(f for f in analyzer.process(block) if isinstance(f, BeatEvent))
            if onset_s is not None and end_s >= onset_s + CLICK_SECONDS:
                break
    finally:
        watchdog.cancel()
        if metro is not None:
            stop_process(metro)
        src.close()
    assert onset_s is not None and end_s >= onset_s + CLICK_SECONDS, "the metronome was never heard"
    heard = [b for b in beats if b.time_s >= onset_s]
    assert len(heard) >= 10, f"only {len(heard)} beats in {CLICK_SECONDS:.0f} s of a {bpm} BPM metronome"
    late = [b.bpm for b in beats if b.time_s > onset_s + 6.0]
    assert abs(float(np.median(late)) - bpm) < 1.0, (late, f"input overflows: {src.stats.overflows}")
    intervals = np.diff([b.time_s for b in beats if b.time_s > onset_s + 6.0])
    assert abs(60.0 / float(np.median(intervals)) - bpm) < 1.5
    assert src.stats.blocks > 0

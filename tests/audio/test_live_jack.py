"""Live input through a real audio server: JACK's dummy driver, jack_metro clicking into our input port."""

from __future__ import annotations

import numpy as np
import pytest
from jackutil import jack_ports, start_metronome, stop_process

from engine.analysis import MusicAnalyzer
from engine.frames import BeatEvent

pytestmark = [pytest.mark.live, pytest.mark.slow]


def test_mic_source_on_jack_detects_metronome_tempo(jack_server: str) -> None:
    from engine.audio.mic import MicSource, refresh_devices

    refresh_devices()  # PortAudio must see the JACK server started after it was first initialised
    bpm = 123
    src = MicSource(hostapi="JACK", samplerate=48000, block_size=512)
    metro = None
    try:
        src.start()
        ours = [p for p in jack_ports() if p.startswith("PortAudio") and ":in" in p]
        assert ours, f"our input port is missing; ports: {jack_ports()}"
        port = ours[0]
        metro = start_metronome(bpm, port)

        analyzer = MusicAnalyzer()
        beats: list[BeatEvent] = []
        for block in src.blocks(max_seconds=12.0):
            beats.extend(f for f in analyzer.process(block) if isinstance(f, BeatEvent))
    finally:
        if metro is not None:
            stop_process(metro)
        src.close()
    assert len(beats) >= 10, f"only {len(beats)} beats in 12 s of a {bpm} BPM metronome"
    late = [b.bpm for b in beats if b.time_s > 6.0]
    assert abs(float(np.median(late)) - bpm) < 1.0, late
    intervals = np.diff([b.time_s for b in beats if b.time_s > 6.0])
    assert abs(60.0 / float(np.median(intervals)) - bpm) < 1.5
    assert src.stats.blocks > 0

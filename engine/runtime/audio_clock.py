"""The audio clock: maps a position on the audio timeline to the monotonic time that audio became available.

Sample ``s`` is mapped to ``offset + s / rate``, ``offset`` being the smallest ``capture_ns - sample_index /
rate`` over the recent blocks (about 2 s): a block is never available before its last sample was captured,
so the minimum is the least-delayed delivery, free of block-size jitter, and it follows slow drift between
the device clock and the monotonic clock. After an input stall (a jump beyond ``stall_ns``) it re-anchors on
the new blocks. Pure bookkeeping: no threads, no sleeping.
"""

from __future__ import annotations

from collections import deque

from engine.frames import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME, AudioBlock


class AudioClock:
    """Audio timeline <-> monotonic time, from the blocks a source delivers.

    Args:
        stall_ns: an offset jump beyond this means the source paused: forget the older blocks.
        window: blocks remembered for the minimum (192 blocks of 256 samples: about 2 s).
    """

    def __init__(self, stall_ns: int = 150_000_000, window: int = 192) -> None:
        self.stall_ns = stall_ns
        self._offsets: deque[int] = deque(maxlen=window)
        self.offset_ns = 0
        self.origin = 0  # source sample index of the analyzer's time zero
        self.block_ns = 0  # duration of the newest block
        self.newest_sample = -1  # source sample index one past the newest block
        self.newest_capture_ns = 0
        self.started = False

    def on_block(self, blk: AudioBlock) -> None:
        if not self.started:
            self.origin = blk.start_index
            self.started = True
        self.block_ns = len(blk.samples) * 1_000_000_000 // ENGINE_SAMPLE_RATE
        offset = blk.capture_ns - int(blk.sample_index * 1e9 / ENGINE_SAMPLE_RATE)
        if self._offsets and offset - min(self._offsets) > self.stall_ns:
            self._offsets.clear()  # the source paused (input lost): re-anchor on the new blocks
        self._offsets.append(offset)
        self.offset_ns = min(self._offsets)
        self.newest_sample = blk.sample_index
        self.newest_capture_ns = blk.capture_ns

    def sample_of(self, pos: float) -> float:
        """Source sample index where model frame position ``pos`` starts."""
        return pos * SAMPLES_PER_FRAME + self.origin

    def time_ns(self, pos: float) -> int:
        """Monotonic time at which the audio at frame position ``pos`` became available."""
        return int(self.offset_ns + self.sample_of(pos) * 1e9 / ENGINE_SAMPLE_RATE)

    def has_audio(self, pos: float) -> bool:
        """Whether audio at frame position ``pos`` has arrived."""
        return self.started and self.sample_of(pos) <= self.newest_sample

    def silent_for_ns(self, now_ns: int) -> int:
        """How long since the newest block arrived."""
        return now_ns - self.newest_capture_ns if self.started else 0

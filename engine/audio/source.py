"""In-memory and WAV file sources: blocks stamped with sample index and capture time, paced by a Clock."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.audio.resample import resample
from engine.clock import SYSTEM_CLOCK, Clock
from engine.frames import ENGINE_SAMPLE_RATE, AudioBlock, SourceStats


class AudioSourceError(Exception):
    """A source cannot be opened (unreadable file, unknown device, refused rate); the message says why."""


class ArraySource:
    """Plays a mono signal at the engine rate as a stream of :class:`AudioBlock`.

    Args:
        samples: [n] float32 at ``ENGINE_SAMPLE_RATE``.
        clock: paces and stamps the blocks.
        realtime: if true, block ``k`` is released when its last sample would have been captured live
            (start time + its end / rate); otherwise as fast as the consumer takes them.
        loop: start again at the end (the sample index keeps counting); otherwise the stream ends.
        block_size: samples per block (the last block may be shorter).

    ``sample_index`` of each block is one past its last sample on the stream's timeline (which starts at
    0); ``capture_ns`` is the clock time at which the block was released.
    """

    def __init__(
        self,
        samples: np.ndarray,
        clock: Clock = SYSTEM_CLOCK,
        realtime: bool = True,
        loop: bool = False,
        block_size: int = 512,
        name: str = "array",
    ) -> None:
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"ArraySource needs mono samples [n], got shape {x.shape}")
        if loop and len(x) == 0:
            raise ValueError("cannot loop an empty signal")
        self.samples = x
        self.clock = clock
        self.realtime = realtime
        self.loop = loop
        self.block_size = block_size
        self.name = name
        self.sample_rate = ENGINE_SAMPLE_RATE
        self.stats = SourceStats()
        self._stopped = False

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def stop(self) -> None:
        """Ask the stream to end after the current block (thread-safe enough: a flag read per block)."""
        self._stopped = True

    def __iter__(self) -> Iterator[AudioBlock]:
        x, bs, n = self.samples, self.block_size, len(self.samples)
        start_ns = self.clock.monotonic_ns()
        index = 0  # samples emitted so far
        pos = 0  # read position in x
        while not self._stopped:
            if pos >= n:
                if not self.loop:
                    return
                pos = 0
            take = min(bs, n - pos)
            block = x[pos:pos + take].copy()  # the message owns its samples
            pos += take
            index += take
            if self.realtime:
                self.clock.sleep_until_ns(start_ns + index * 1_000_000_000 // self.sample_rate)
            self.stats.blocks += 1
            yield AudioBlock(index, self.clock.monotonic_ns(), samples=block)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM or float WAV file; returns ([n] float32 mono in [-1, 1], sample rate).

    Stereo (or more channels) is averaged to mono. Raises :class:`AudioSourceError` naming the problem.
    """
    p = Path(path)
    if not p.exists():
        raise AudioSourceError(f"audio file not found: {p}")
    if not p.is_file():
        raise AudioSourceError(f"not a file: {p}")
    from scipy.io import wavfile

    try:
        sr, data = wavfile.read(str(p))
    except (ValueError, OSError, EOFError, wave.Error) as exc:
        head = p.read_bytes()[:4]
        kind = {b"fLaC": "FLAC", b"OggS": "Ogg", b"ID3\x03": "MP3", b"ID3\x04": "MP3"}.get(head)
        what = f" (it looks like {kind})" if kind else ""
        raise AudioSourceError(
            f"cannot read {p} as WAV{what}: {exc}. Supported: WAV with 8/16/24/32-bit PCM or float samples; "
            "convert other formats first, e.g. `sox in.mp3 out.wav`"
        ) from exc
    if data.size == 0:
        raise AudioSourceError(f"{p} contains no audio samples")
    if data.dtype == np.uint8:
        x = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype == np.int16:
        x = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        x = data.astype(np.float32) / 2147483648.0
    elif data.dtype in (np.float32, np.float64):
        x = data.astype(np.float32)
    else:
        raise AudioSourceError(f"{p}: unsupported WAV sample type {data.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if not 4000 <= sr <= 384000:
        raise AudioSourceError(f"{p}: unsupported sample rate {sr} Hz (expected 4000..384000)")
    return np.ascontiguousarray(x, dtype=np.float32), int(sr)


class FileSource(ArraySource):
    """A WAV file played as if live: decoded and resampled to the engine rate up front, then paced.

    Resampling the whole file at once (polyphase, ``resample_poly``) is exact for files; the live
    microphone path uses the stateful :class:`engine.audio.resample.StreamResampler` instead.
    """

    def __init__(
        self,
        path: str | Path,
        clock: Clock = SYSTEM_CLOCK,
        realtime: bool = True,
        loop: bool = False,
        block_size: int = 512,
    ) -> None:
        x, sr = read_wav(path)
        self.path = Path(path)
        self.file_sample_rate = sr
        super().__init__(resample(x, sr, ENGINE_SAMPLE_RATE), clock, realtime, loop, block_size, name=str(path))

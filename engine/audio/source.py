"""In-memory and audio file sources: blocks stamped with sample index and capture time, paced by a Clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.resample import StreamResampler
from engine.clock import SYSTEM_CLOCK, Clock
from engine.frames import ENGINE_SAMPLE_RATE, AudioBlock, SourceStats

log = logging.getLogger(__name__)


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


#: Audio a whole-file read accepts (training, offline analysis); ``play`` streams and has no limit.
MAX_READ_SECONDS = 3 * 3600
#: MP3 is decoded whole (see FileSource), so its length is capped.
MAX_MP3_SECONDS = 30 * 60
_FORMATS = "WAV, FLAC, OGG/Vorbis, MP3 and the other formats libsndfile reads"


def _open(path: Path) -> Any:
    """Open an audio file with libsndfile and check what the engine needs; errors name the file."""
    if not path.exists():
        raise AudioSourceError(f"audio file not found: {path}")
    if not path.is_file():
        raise AudioSourceError(f"not a file: {path}")
    import soundfile as sf

    try:
        f = sf.SoundFile(str(path))
    except (RuntimeError, ValueError, OSError, TypeError) as exc:  # LibsndfileError is a RuntimeError
        reason = str(exc).split(":")[-1].strip() or type(exc).__name__
        raise AudioSourceError(f"cannot read {path} as audio: {reason} (supported: {_FORMATS})") from None
    try:
        if f.channels < 1:
            raise AudioSourceError(f"{path}: the file has no audio channels")
        if not 4000 <= f.samplerate <= 384000:
            raise AudioSourceError(f"{path}: unsupported sample rate {f.samplerate} Hz (expected 4000..384000)")
        if f.frames == 0:
            raise AudioSourceError(f"{path} contains no audio samples")
    except AudioSourceError:
        f.close()
        raise
    return f


def _mono(block: np.ndarray, state: dict[str, int]) -> np.ndarray:
    """Average channels to mono; NaN/inf become 0 and samples beyond [-1, 1] are clipped (counted in ``state``)."""
    x = block.mean(axis=1, dtype=np.float64) if block.ndim == 2 else block.astype(np.float64)
    bad = ~np.isfinite(x) | (np.abs(x) > 1.0)
    if bad.any():
        state["clipped"] = state.get("clipped", 0) + int(bad.sum())
        x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    return x.astype(np.float32)


def read_wav(path: str | Path, max_seconds: float = MAX_READ_SECONDS) -> tuple[np.ndarray, int]:
    """Read a whole audio file (any format libsndfile reads); returns ([n] float32 mono in [-1, 1], rate).

    Stereo (or more channels) is averaged to mono; non-finite samples become 0 and out-of-range ones are
    clipped. Raises :class:`AudioSourceError` naming the file and the problem (also for files longer than
    ``max_seconds``: stream those with :class:`FileSource`).
    """
    p = Path(path)
    with _open(p) as f:
        if f.frames > max_seconds * f.samplerate:
            raise AudioSourceError(f"{p}: {f.frames / f.samplerate:.0f} s is longer than the {max_seconds:.0f} s "
                                   "a whole-file read accepts")
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise AudioSourceError(f"cannot decode {p}: {exc}") from None
        sr = int(f.samplerate)
    if data.size == 0:
        raise AudioSourceError(f"{p} contains no audio samples")
    state: dict[str, int] = {}
    x = _mono(data, state)
    if state.get("clipped"):
        log.warning("%s: %d samples were not finite or beyond full scale; clipped", p, state["clipped"])
    return np.ascontiguousarray(x), sr


class FileSource:
    """An audio file played as if live, decoded and resampled block by block (memory independent of length).

    libsndfile decodes WAV, FLAC, OGG/Vorbis and MP3 (among others); channels are averaged to mono and
    :class:`engine.audio.resample.StreamResampler` brings the rate to the engine's, streaming too (its
    filter delay is removed to the nearest output sample, so the stream lines up with the file). Blocks,
    pacing, stamps and ``loop`` behave as in :class:`ArraySource`. A decoding error in the middle of the
    file ends the stream with one logged line (recorded in ``stats.errors``). Exception: MP3 files are
    decoded in one read (libsndfile's MP3 decoder corrupts samples at partial-read boundaries), so they are
    limited to :data:`MAX_MP3_SECONDS`.
    """

    def __init__(
        self,
        path: str | Path,
        clock: Clock = SYSTEM_CLOCK,
        realtime: bool = True,
        loop: bool = False,
        block_size: int = 512,
    ) -> None:
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.path = Path(path)
        with _open(self.path) as f:
            self.file_sample_rate = int(f.samplerate)
            self.file_frames = int(f.frames)
            self.channels = int(f.channels)
            self.format = str(f.format)
        if self.format == "MP3" and self.file_frames > MAX_MP3_SECONDS * self.file_sample_rate:
            raise AudioSourceError(f"{self.path}: MP3 longer than {MAX_MP3_SECONDS // 60} minutes (MP3 is decoded "
                                   "whole); convert it to FLAC or WAV, which stream")
        self.clock = clock
        self.realtime = realtime
        self.loop = loop
        self.block_size = block_size
        self.name = str(path)
        self.sample_rate = ENGINE_SAMPLE_RATE
        self.stats = SourceStats()
        self.clipped = 0
        self._stopped = False

    @property
    def duration_s(self) -> float:
        return self.file_frames / self.file_sample_rate

    def stop(self) -> None:
        """Ask the stream to end after the current block (a flag read per block)."""
        self._stopped = True

    def _file_chunks(self, state: dict[str, int]) -> Iterator[np.ndarray]:
        """Mono chunks at the file's rate, over and over when looping."""
        read = max(256, -(-self.block_size * self.file_sample_rate // ENGINE_SAMPLE_RATE))
        if self.format == "MP3":
            # libsndfile's MP3 decoder corrupts ~2,400 samples at every partial-read boundary, so an MP3 is
            # decoded in one read (at most MAX_MP3_SECONDS, checked when opening) and served from memory.
            x, _ = read_wav(self.path, max_seconds=MAX_MP3_SECONDS)
            while not self._stopped:
                for i in range(0, len(x), read):
                    if self._stopped:
                        return
                    yield x[i:i + read]
                if not self.loop:
                    return
        with _open(self.path) as f:
            n = 0
            while not self._stopped:
                block = f.read(read, dtype="float32", always_2d=True)
                if len(block) == 0:
                    if self.loop and n > 0:
                        f.seek(0)
                        continue
                    return
                n += len(block)
                yield _mono(block, state)

    def _resampled(self) -> Iterator[np.ndarray]:
        """Engine-rate mono chunks of the file; the exact length at the end."""
        rs = StreamResampler(self.file_sample_rate, ENGINE_SAMPLE_RATE)
        # the filter's group delay, (taps - 1) / 2 up-sampled samples, to the nearest output sample
        skip = 0 if rs.passthrough else round((rs.k * rs.up - 1) / (2 * rs.down))
        state: dict[str, int] = {}
        total_in = 0
        emitted = 0
        try:
            for x in self._file_chunks(state):
                total_in += len(x)
                y = rs.process(x)
                if skip:
                    cut = min(skip, len(y))
                    y, skip = y[cut:], skip - cut
                if len(y):
                    emitted += len(y)
                    yield y
        except (RuntimeError, ValueError, OSError, AudioSourceError) as exc:
            msg = f"{self.path}: decoding failed after {total_in / self.file_sample_rate:.1f} s: {exc}"
            log.error("%s", msg)
            self.stats.errors.append(msg)
        finally:
            if state.get("clipped"):
                self.clipped = state["clipped"]
                log.warning("%s: %d samples were not finite or beyond full scale; clipped", self.path, self.clipped)
        if not self._stopped and not rs.passthrough:
            # flush the filter: the output ends where the input does (len * out / in samples)
            want = round(total_in * ENGINE_SAMPLE_RATE / self.file_sample_rate)
            tail = rs.process(np.zeros(rs.k, np.float32))[skip:]
            n = max(0, min(len(tail), want - emitted))
            if n:
                yield tail[:n]

    def __iter__(self) -> Iterator[AudioBlock]:
        bs = self.block_size
        start_ns = self.clock.monotonic_ns()
        index = 0  # samples emitted so far
        pending = np.zeros(0, np.float32)
        chunks = self._resampled()
        ended = False
        while not self._stopped:
            while len(pending) < bs and not ended:
                try:
                    pending = np.concatenate([pending, next(chunks)])
                except StopIteration:
                    ended = True
            if len(pending) == 0:
                return
            block, pending = pending[:bs].copy(), pending[bs:]
            index += len(block)
            if self.realtime:
                self.clock.sleep_until_ns(start_ns + index * 1_000_000_000 // self.sample_rate)
            self.stats.blocks += 1
            yield AudioBlock(index, self.clock.monotonic_ns(), samples=block)


def demo_path() -> Path:
    """The bundled demo clip (engine/data/demo.wav)."""
    from importlib.resources import files

    return Path(str(files("engine") / "data" / "demo.wav"))

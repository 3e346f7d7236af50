"""Microphone / line input through sounddevice (PortAudio): the callback only copies into a ring."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.audio.resample import StreamResampler
from engine.audio.source import AudioSourceError
from engine.clock import SYSTEM_CLOCK, Clock
from engine.frames import ENGINE_SAMPLE_RATE, AudioBlock, SourceStats


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float


def _sd() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio library missing
        raise AudioSourceError(
            f"PortAudio is not available ({exc}); install the Debian package libportaudio2"
        ) from exc
    return sounddevice


def refresh_devices() -> None:
    """Re-scan devices: PortAudio enumerates them once at start-up, so a JACK server or a USB interface
    that appeared later is only seen after this. Do not call it while a stream is open."""
    sd = _sd()
    sd._terminate()  # sounddevice exposes no public re-scan; these two are its own init/exit hooks
    sd._initialize()


def list_devices() -> list[DeviceInfo]:
    """All PortAudio devices (input and output) with their host API."""
    sd = _sd()
    apis = sd.query_hostapis()
    return [
        DeviceInfo(
            index=i,
            name=str(d["name"]),
            hostapi=str(apis[d["hostapi"]]["name"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_samplerate=float(d["default_samplerate"]),
        )
        for i, d in enumerate(sd.query_devices())
    ]


def describe_inputs(devices: list[DeviceInfo]) -> str:
    inputs = [d for d in devices if d.max_input_channels > 0]
    if not inputs:
        return "no input devices exist (PortAudio found none; on a machine without a sound card, start JACK)"
    return "input devices: " + "; ".join(
        f"[{d.index}] {d.name} ({d.hostapi}, {d.max_input_channels} ch, {d.default_samplerate:g} Hz)" for d in inputs
    )


def resolve_input_device(device: str | int | None, hostapi: str | None = None) -> DeviceInfo:
    """Pick an input device by index, by a case-insensitive name substring, or the default (None).

    ``hostapi`` (a substring such as "JACK") restricts the choice. Raises :class:`AudioSourceError`
    listing the input devices that exist.
    """
    devices = list_devices()
    inputs = [d for d in devices if d.max_input_channels > 0]
    if hostapi:
        inputs = [d for d in inputs if hostapi.lower() in d.hostapi.lower()]
    if isinstance(device, str) and device.strip().lstrip("-").isdigit():
        device = int(device)
    if isinstance(device, int):
        for d in inputs:
            if d.index == device:
                return d
        raise AudioSourceError(f"no input device with index {device}; {describe_inputs(devices)}")
    if device:
        matches = [d for d in inputs if device.lower() in d.name.lower()]
        if not matches:
            raise AudioSourceError(f"no input device matches {device!r}; {describe_inputs(devices)}")
        return matches[0]
    if not inputs:
        raise AudioSourceError(describe_inputs(devices))
    sd = _sd()
    default = sd.default.device[0] if sd.default.device is not None else -1
    for d in inputs:
        if d.index == default:
            return d
    return inputs[0]


class _Ring:
    """Single-producer single-consumer float32 ring: the audio callback writes, the reader thread reads.

    Indices only grow; the producer publishes ``written`` after copying, the consumer ``read`` after
    reading, so neither needs a lock (CPython makes the int stores atomic). A full ring drops the new
    audio and counts it.
    """

    def __init__(self, capacity: int) -> None:
        self.buf = np.zeros(capacity, dtype=np.float32)
        self.capacity = capacity
        self.written = 0
        self.read = 0
        self.dropped = 0

    def write(self, x: np.ndarray) -> None:
        n = len(x)
        if self.written - self.read + n > self.capacity:
            self.dropped += n
            return
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self.buf[start:start + first] = x[:first]
        if n > first:
            self.buf[: n - first] = x[first:]
        self.written += n

    def available(self) -> int:
        return self.written - self.read

    def read_into(self, out: np.ndarray) -> None:
        n = len(out)
        start = self.read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self.buf[start:start + first]
        if n > first:
            out[first:] = self.buf[: n - first]
        self.read += n


class MicSource:
    """Live input from a PortAudio device, resampled to the engine rate, as :class:`AudioBlock` s.

    Args:
        device: index, name substring, or None for the default input.
        samplerate: device rate in Hz (None: the device's default).
        block_size: frames per PortAudio callback (and per emitted block, before resampling).
        channel: which input channel to take (0-based).
        hostapi: restrict the device choice to a host API (e.g. "JACK").

    The PortAudio callback only copies its buffer into a preallocated ring and sets an event; overflows
    reported by the driver and audio dropped because the reader fell behind are counted in ``stats``,
    never raised. Iterating yields blocks until :meth:`stop` (or ``max_seconds`` of audio).
    ``sample_index`` is at the engine rate; ``capture_ns`` is the clock time the device audio was read.
    """

    def __init__(
        self,
        device: str | int | None = None,
        samplerate: float | None = None,
        block_size: int = 512,
        channel: int = 0,
        hostapi: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        ring_seconds: float = 4.0,
    ) -> None:
        sd = _sd()
        self.info = resolve_input_device(device, hostapi)
        if channel < 0 or channel >= self.info.max_input_channels:
            raise AudioSourceError(
                f"{self.info.name} has {self.info.max_input_channels} input channel(s); "
                f"channel {channel} does not exist"
            )
        rate = int(samplerate or self.info.default_samplerate)
        try:
            sd.check_input_settings(device=self.info.index, samplerate=rate, channels=channel + 1, dtype="float32")
        except Exception as exc:
            raise AudioSourceError(
                f"{self.info.name} refuses {rate} Hz x {channel + 1} ch ({exc}); "
                f"its default rate is {self.info.default_samplerate:g} Hz"
            ) from exc
        self.device_rate = rate
        self.block_size = block_size
        self.channel = channel
        self.clock = clock
        self.stats = SourceStats()
        self._ring = _Ring(max(int(ring_seconds * rate), 4 * block_size))
        self._event = threading.Event()
        self._overflows = 0
        self._stop = threading.Event()
        self._resampler = StreamResampler(rate, ENGINE_SAMPLE_RATE)
        self._chunk = np.zeros(block_size, dtype=np.float32)
        self._stream = sd.InputStream(
            device=self.info.index,
            samplerate=rate,
            blocksize=block_size,
            channels=channel + 1,
            dtype="float32",
            callback=self._callback,
        )

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: copy and signal only (no allocation, logging or analysis).
        if status.input_overflow:
            self._overflows += 1
        self._ring.write(indata[:, self.channel])
        self._event.set()

    def start(self) -> MicSource:
        self._stream.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._event.set()

    def close(self) -> None:
        self.stop()
        try:
            self._stream.stop()
        finally:
            self._stream.close()

    def __enter__(self) -> MicSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def blocks(self, max_seconds: float | None = None) -> Iterator[AudioBlock]:
        """Yield engine-rate blocks as device audio arrives (each block = one device block, resampled)."""
        index = 0
        limit = None if max_seconds is None else int(max_seconds * ENGINE_SAMPLE_RATE)
        seen_overflows = 0
        while not self._stop.is_set():
            if self._ring.available() < self.block_size:
                self._event.wait(0.5)
                self._event.clear()
                continue
            self._ring.read_into(self._chunk)
            y = self._resampler.process(self._chunk)
            if len(y) == 0:
                continue
            index += len(y)
            overflowed = self._overflows != seen_overflows
            seen_overflows = self._overflows
            self.stats.blocks += 1
            self.stats.overflows = self._overflows
            self.stats.dropped_blocks = self._ring.dropped // self.block_size
            yield AudioBlock(index, self.clock.monotonic_ns(), samples=y, overflowed=overflowed)
            if limit is not None and index >= limit:
                return

    def __iter__(self) -> Iterator[AudioBlock]:
        return self.blocks()

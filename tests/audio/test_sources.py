"""Array, file and synthetic sources: pacing on a fake clock, stamps, loop, resampling, errors."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.io import wavfile

from engine.audio.resample import StreamResampler, resample
from engine.audio.source import ArraySource, AudioSourceError, FileSource, read_wav
from engine.audio.synth import SyntheticSignal, beat_times_from_tempo, click_track
from engine.clock import FakeClock
from engine.frames import ENGINE_SAMPLE_RATE


def test_array_source_paces_blocks_on_the_clock() -> None:
    clock = FakeClock(start_ns=5_000_000_000)
    x = np.arange(2205, dtype=np.float32)  # 0.1 s
    blocks = list(ArraySource(x, clock=clock, realtime=True, block_size=512))
    assert [len(b.samples) for b in blocks] == [512, 512, 512, 512, 157]
    assert [b.sample_index for b in blocks] == [512, 1024, 1536, 2048, 2205]
    # each block is released when its last sample would have been captured live
    for b in blocks:
        assert b.capture_ns == 5_000_000_000 + b.sample_index * 1_000_000_000 // ENGINE_SAMPLE_RATE
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks]), x)


def test_array_source_as_fast_as_possible_does_not_sleep() -> None:
    clock = FakeClock(start_ns=7)
    blocks = list(ArraySource(np.zeros(5000, np.float32), clock=clock, realtime=False, block_size=1000))
    assert len(blocks) == 5
    assert all(b.capture_ns == 7 for b in blocks)


def test_array_source_loops_with_a_growing_sample_index() -> None:
    src = ArraySource(np.arange(300, dtype=np.float32), clock=FakeClock(), realtime=False, loop=True, block_size=128)
    got = []
    for b in src:
        got.append(b)
        if len(got) == 7:
            src.stop()
    assert [b.sample_index for b in got] == [128, 256, 300, 428, 556, 600, 728]
    np.testing.assert_array_equal(got[3].samples, np.arange(128, dtype=np.float32))


def test_blocks_own_their_samples() -> None:
    x = np.ones(1024, np.float32)
    blocks = list(ArraySource(x, clock=FakeClock(), realtime=False, block_size=512))
    x[:] = 0
    assert blocks[0].samples.sum() == 512


def _write(path: Path, sr: int, data: np.ndarray) -> Path:
    wavfile.write(str(path), sr, data)
    return path


def test_file_source_reads_stereo_44k_and_resamples(tmp_path: Path) -> None:
    sr = 44100
    t = np.arange(sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = (np.stack([tone, tone], axis=1) * 32767).astype(np.int16)
    src = FileSource(_write(tmp_path / "s.wav", sr, stereo), clock=FakeClock(), realtime=False)
    assert src.file_sample_rate == sr
    samples = np.concatenate([b.samples for b in src])
    assert abs(len(samples) - ENGINE_SAMPLE_RATE) <= 1
    # the tone keeps its pitch: spectral peak at 440 Hz
    spec = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    peak_hz = np.argmax(spec) * ENGINE_SAMPLE_RATE / len(samples)
    assert abs(peak_hz - 440) < 2
    assert np.abs(samples).max() == pytest.approx(0.5, abs=0.02)
    # and it is the whole-file resampling, sample for sample after the filters' edges (the streaming
    # filter's delay is removed to the nearest sample: a quarter sample remains, 0.016 at 440 Hz)
    ref = resample(tone.astype(np.float32), sr)
    np.testing.assert_allclose(samples[200:-200], ref[200:-200], atol=0.02)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32])
def test_read_wav_sample_formats(tmp_path: Path, dtype: type) -> None:
    x = 0.25 * np.sin(np.linspace(0, 20, 1000))
    if dtype is np.uint8:
        data = (x * 128 + 128).astype(np.uint8)
    elif dtype is np.int16:
        data = (x * 32767).astype(np.int16)
    elif dtype is np.int32:
        data = (x * 2147483647).astype(np.int32)
    else:
        data = x.astype(np.float32)
    y, sr = read_wav(_write(tmp_path / "f.wav", 16000, data))
    assert sr == 16000 and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=0.01)


def test_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(AudioSourceError, match="not found"):
        FileSource(tmp_path / "missing.wav")
    bad = tmp_path / "song.flac"
    bad.write_bytes(b"fLaC" + b"\0" * 100)
    with pytest.raises(AudioSourceError, match="FLAC"):
        FileSource(bad)
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    with pytest.raises(AudioSourceError, match="cannot read"):
        read_wav(junk)
    with pytest.raises(AudioSourceError, match="not a file"):
        read_wav(tmp_path)
    empty = _write(tmp_path / "empty.wav", 22050, np.zeros(0, np.int16))
    with pytest.raises(AudioSourceError, match="no audio"):
        read_wav(empty)


def test_stream_resampler_is_chunking_invariant_and_keeps_pitch() -> None:
    sr_in = 48000
    t = np.arange(sr_in) / sr_in
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    whole = StreamResampler(sr_in).process(x)
    rs = StreamResampler(sr_in)
    rng = np.random.default_rng(1)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 700))
        parts.append(rs.process(x[i:i + n]))
        i += n
    chunked = np.concatenate(parts)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    assert abs(len(whole) - ENGINE_SAMPLE_RATE) <= 2
    steady = whole[1000:-1000]
    spec = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    assert abs(np.argmax(spec) * ENGINE_SAMPLE_RATE / len(steady) - 1000) < 3
    # and it agrees with the whole-file resampler (different filters, same signal) once its delay is removed
    ref = resample(x, sr_in)[2000:-2000]
    corr = [float(np.corrcoef(whole[2000 + lag:len(whole) - 2000 + lag], ref)[0, 1]) for lag in range(0, 12)]
    assert max(corr) > 0.99


def test_synthetic_clicks_have_exact_ground_truth() -> None:
    beats = beat_times_from_tempo([(4.0, 120.0, 120.0), (3.0, 90.0, 90.0)], first_beat_s=0.5)
    np.testing.assert_allclose(beats[:8], 0.5 + 0.5 * np.arange(8))
    assert np.allclose(np.diff(beats[-3:]), 60 / 90)
    x = click_track(beats, 7.0)
    onsets = np.flatnonzero(np.diff((np.abs(x) > 1e-3).astype(int)) == 1) + 1
    starts = [o for o in onsets if not np.any(np.abs(x[max(0, o - 200):o]) > 1e-3)]
    np.testing.assert_allclose(np.asarray(starts[:5]) / ENGINE_SAMPLE_RATE, beats[:5], atol=2 / ENGINE_SAMPLE_RATE)
    sig = SyntheticSignal.clicks([(2.0, 100.0, 100.0)], noise_level=0.01)
    assert len(sig.samples) == 2 * ENGINE_SAMPLE_RATE and len(sig.beats) == 3
    assert SyntheticSignal.silence(1.0).samples.max() == 0.0
    with pytest.raises(ValueError, match="BPM must be positive"):
        beat_times_from_tempo([(2.0, 0.0, 100.0)])


# ------------------------------------------------------------------ odd and huge files (issue 13 items 7, 11)


def _wav_bytes(ch: int, bits: int, fmt: int = 1, data: bytes = b"", rate: int = 8000,
               data_size: int | None = None) -> bytes:
    ba = max(1, ch * ((bits + 7) // 8))
    fmt_chunk = struct.pack("<HHIIHH", fmt, ch, rate, rate * ba, ba, bits)
    size = len(data) if data_size is None else data_size
    riff = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", min(len(riff) + size - len(data), 2**32 - 1)) + riff


def test_file_source_memory_does_not_depend_on_file_length(tmp_path: Path) -> None:
    """Issue 13 item 7: a 10-hour WAV peaked at 7.6 GB to play 3 s (the whole file was decoded up front)."""
    hours = 1.0
    n = int(hours * 3600 * 8000)
    p = tmp_path / "long.wav"
    with open(p, "wb") as f:  # a sparse file: 58 MB of (silent) 16-bit samples that take no disk space
        f.write(_wav_bytes(1, 16, data_size=2 * n))
        f.truncate(f.tell() + 2 * n)
    tracemalloc.start()
    try:
        src = FileSource(p, clock=FakeClock(), realtime=False)
        assert src.duration_s == pytest.approx(hours * 3600)
        got = 0
        for blk in src:
            got += len(blk.samples)
            if got >= 3 * ENGINE_SAMPLE_RATE:
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, peak  # a few blocks, not the file


def test_odd_wav_files_get_one_line_errors_or_play_sanely(tmp_path: Path) -> None:
    """Issue 13 item 11: tracebacks, or a run where every step failed, instead of one-line errors."""
    short = tmp_path / "short.wav"
    short.write_bytes(_wav_bytes(1, 16)[:30])
    zero = tmp_path / "zero_channels.wav"
    zero.write_bytes(_wav_bytes(0, 16, data=b"\0" * 200))
    for p in (short, zero):
        with pytest.raises(AudioSourceError) as e:
            FileSource(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    loud = tmp_path / "loud.wav"  # float samples around 1e30, and NaN
    x = np.full(8000, 1e30, "<f4")
    x[::7] = np.nan
    loud.write_bytes(_wav_bytes(1, 32, fmt=3, data=x.tobytes()))
    y = np.concatenate([b.samples for b in FileSource(loud, clock=FakeClock(), realtime=False)])
    assert np.isfinite(y).all() and np.abs(y).max() < 2.0  # clipped to full scale before resampling
    y, _ = read_wav(loud)
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0


@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3"])
def test_compressed_formats_play(tmp_path: Path, ext: str) -> None:
    """Issue 12 item 7 (here): FLAC, OGG and MP3 play through libsndfile, not only WAV."""
    sr = 16000
    t = np.arange(2 * sr) / sr
    p = tmp_path / f"tone.{ext}"
    sf.write(str(p), (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    y = np.concatenate([b.samples for b in FileSource(p, clock=FakeClock(), realtime=False)])
    assert abs(len(y) - 2 * ENGINE_SAMPLE_RATE) <= 1200  # MP3 adds encoder padding
    steady = y[4000:-4000]
    spec = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    assert abs(np.argmax(spec) * ENGINE_SAMPLE_RATE / len(steady) - 440) < 3


def test_real_ogg_recordings_play() -> None:
    music = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "music_cc"
    files = sorted(music.glob("*.ogg"))
    if not files:
        pytest.skip(f"no real recordings at {music}")
    for p in files:
        src = FileSource(p, clock=FakeClock(), realtime=False)
        assert src.file_sample_rate == 44100 and 40 < src.duration_s < 140
        blocks = []
        for b in src:
            blocks.append(b.samples)
            if len(blocks) * 512 >= 2 * ENGINE_SAMPLE_RATE:
                break
        y = np.concatenate(blocks)
        assert np.isfinite(y).all() and 0.001 < float(np.sqrt(np.mean(y[ENGINE_SAMPLE_RATE:] ** 2))) < 1.0, p.name

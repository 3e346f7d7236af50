"""Feature layouts and the per-frame (30 fps) music and speech feature extractors, with fixed scaling."""

from __future__ import annotations

import math

import aubio
import numpy as np

from engine.frames import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME

#: Music feature layout per 30 fps frame (index -> name). Scaling is fixed (no per-file statistics):
#: see :class:`MusicFrameFeatures` and docs/audio.md.
_PITCH_CLASSES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
MUSIC_FEATURE_NAMES: tuple[str, ...] = (
    "onset_env",
    *(f"mfcc_{i}" for i in range(20)),
    *(f"chroma_{n}" for n in _PITCH_CLASSES),
    "rms",
    "spectral_flux",
    "tempo",
    "beat_phase_sin",
    "beat_phase_cos",
    "beat",
    "peak",
)
MUSIC_FEATURE_DIM = 40
assert len(MUSIC_FEATURE_NAMES) == MUSIC_FEATURE_DIM

# Slices into the music feature vector.
ONSET_ENV = 0
MFCC = slice(1, 21)
CHROMA = slice(21, 33)
RMS = 33
SPECTRAL_FLUX = 34
TEMPO = 35
PHASE_SIN = 36
PHASE_COS = 37
BEAT = 38
PEAK = 39

#: Speech feature layout per 30 fps frame.
SPEECH_FEATURE_NAMES: tuple[str, ...] = ("energy", "pitch", "voicing", *(f"mfcc_{i}" for i in range(13)))
SPEECH_FEATURE_DIM = 16
assert len(SPEECH_FEATURE_NAMES) == SPEECH_FEATURE_DIM

#: Spectral window of the frame-grid features (MFCC, chroma, pitch): 93 ms at 22.05 kHz.
FRAME_WIN = 2048
N_MFCC_BANDS = 40
#: yin's window: 46 ms finds pitches down to ~45 Hz (two periods) at a quarter of the cost of 2048.
PITCH_WIN = 1024

# Fixed scaling constants (chosen on rendered music at typical levels; see docs/audio.md).
ONSET_SCALE = 12.0  # mean log-mel flux per hop / ONSET_SCALE, clipped to [0, 4] (music: median ~0.1, p99 ~1.4)
FLUX_SCALE = 50.0  # mean linear spectral flux per hop / FLUX_SCALE, clipped to [0, 4]
MFCC_OFFSET0 = -10.0  # aubio's c0 (log10 mel energies, DCT): about -10 for music at -20 dBFS, -60 for silence
MFCC_SCALE0 = 5.0  # c0 -> (c0 - MFCC_OFFSET0) / MFCC_SCALE0
MFCC_SCALE = 1.0  # c1.. -> c / MFCC_SCALE (music: |c| < ~3); every coefficient clipped to [-4, 4]
RMS_FLOOR_DB = -80.0  # RMS in dBFS mapped from [RMS_FLOOR_DB, 0] to [0, 1]
TEMPO_SCALE = 200.0  # bpm / TEMPO_SCALE
PITCH_REF_HZ = 200.0  # speech pitch: log2(f0 / PITCH_REF_HZ), 0 when unvoiced
VOICING_MIN_CONF = 0.5  # yin confidence above this counts as voiced


def _chroma_matrix(n_fft: int, sample_rate: int, fmin: float = 55.0, fmax: float = 5000.0) -> np.ndarray:
    """[12, n_fft//2+1] triangular-ish mapping of FFT bins to pitch classes (C=0)."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    m = np.zeros((12, len(freqs)), dtype=np.float32)
    valid = (freqs >= fmin) & (freqs <= fmax)
    midi = 69.0 + 12.0 * np.log2(np.where(valid, freqs, 1.0) / 440.0)
    for pc in range(12):
        # distance in semitones to the nearest pitch of class pc, weighted by a raised cosine of 1 semitone
        dist = np.abs(((midi - pc) + 6.0) % 12.0 - 6.0)
        m[pc] = np.where(valid & (dist < 1.0), 0.5 + 0.5 * np.cos(np.pi * dist), 0.0)
    return m


class MusicFrameFeatures:
    """Spectral part of the music features, computed once per frame on the frame grid.

    ``process(frame_samples)`` takes exactly ``SAMPLES_PER_FRAME`` new samples (aubio's phase vocoder
    keeps the ``FRAME_WIN`` history) and fills ``mfcc`` [20], ``chroma`` [12] and ``rms`` (dBFS scaled).
    Buffers are allocated here once.
    """

    def __init__(self, sample_rate: int = ENGINE_SAMPLE_RATE) -> None:
        self._pv = aubio.pvoc(FRAME_WIN, SAMPLES_PER_FRAME)
        self._mfcc = aubio.mfcc(FRAME_WIN, N_MFCC_BANDS, 20, sample_rate)
        self._chroma_m = _chroma_matrix(FRAME_WIN, sample_rate)  # [12, 1025]
        self._power = np.zeros(FRAME_WIN // 2 + 1, dtype=np.float32)
        self.mfcc = np.zeros(20, dtype=np.float32)
        self.chroma = np.zeros(12, dtype=np.float32)
        self.rms = 0.0

    def process(self, frame: np.ndarray) -> None:
        spec = self._pv(frame)
        c = self._mfcc(spec)
        np.divide(c, MFCC_SCALE, out=self.mfcc)
        self.mfcc[0] = (c[0] - MFCC_OFFSET0) / MFCC_SCALE0
        np.clip(self.mfcc, -4.0, 4.0, out=self.mfcc)
        np.square(spec.norm, out=self._power)
        np.dot(self._chroma_m, self._power, out=self.chroma)
        peak = float(self.chroma.max())
        if peak > 1e-8:
            self.chroma /= peak
        else:
            self.chroma.fill(0.0)
        rms = math.sqrt(float(np.dot(frame, frame)) / len(frame))
        self.rms = scale_db(rms)


def scale_db(rms: float) -> float:
    """Map an RMS amplitude to [0, 1]: dBFS from ``RMS_FLOOR_DB`` (0) to 0 dB (1)."""
    db = 20.0 * math.log10(rms + 1e-10)
    return min(1.0, max(0.0, (db - RMS_FLOOR_DB) / -RMS_FLOOR_DB))


class SpeechFrameFeatures:
    """Speech features per frame: energy, pitch (aubio yin), voicing confidence, 13 MFCC.

    Pitch is ``log2(f0 / PITCH_REF_HZ)`` clipped to [-2, 2] and 0 when unvoiced; voicing is yin's
    confidence in [0, 1]. Latency: the yin/MFCC window (``FRAME_WIN``) ends at the frame's last sample.
    """

    def __init__(self, sample_rate: int = ENGINE_SAMPLE_RATE) -> None:
        self._pv = aubio.pvoc(FRAME_WIN, SAMPLES_PER_FRAME)
        self._mfcc = aubio.mfcc(FRAME_WIN, N_MFCC_BANDS, 13, sample_rate)
        self._pitch = aubio.pitch("yin", PITCH_WIN, SAMPLES_PER_FRAME, sample_rate)
        self._pitch.set_unit("Hz")
        self._pitch.set_tolerance(0.2)
        self.out = np.zeros(SPEECH_FEATURE_DIM, dtype=np.float32)

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Consume ``SAMPLES_PER_FRAME`` samples; return the feature vector (a view reused next call)."""
        spec = self._pv(frame)
        c = self._mfcc(spec)
        f0 = float(self._pitch(frame)[0])
        conf = float(self._pitch.get_confidence())
        rms = math.sqrt(float(np.dot(frame, frame)) / len(frame))
        self.out[0] = scale_db(rms)
        voiced = conf >= VOICING_MIN_CONF and f0 > 0.0 and self.out[0] > 0.2
        self.out[1] = min(2.0, max(-2.0, math.log2(f0 / PITCH_REF_HZ))) if voiced else 0.0
        self.out[2] = min(1.0, max(0.0, conf))
        np.divide(c, MFCC_SCALE, out=self.out[3:])
        self.out[3] = (c[0] - MFCC_OFFSET0) / MFCC_SCALE0
        np.clip(self.out[3:], -4.0, 4.0, out=self.out[3:])
        return self.out

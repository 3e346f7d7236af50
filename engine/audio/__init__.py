"""Audio sources: microphone/line input (sounddevice), audio files paced in real time, synthetic signals."""

from engine.audio.source import ArraySource, AudioSourceError, FileSource, read_wav
from engine.audio.synth import SyntheticSignal

__all__ = ["ArraySource", "AudioSourceError", "FileSource", "SyntheticSignal", "read_wav"]

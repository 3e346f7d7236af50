"""Causal hop-by-hop analysis: beat tracking, onsets, windowed music and speech features."""

from engine.analysis.analyze import MusicAnalysis, analyze_signal, analyze_speech_signal
from engine.analysis.features import (
    MUSIC_FEATURE_DIM,
    MUSIC_FEATURE_NAMES,
    SPEECH_FEATURE_DIM,
    SPEECH_FEATURE_NAMES,
)
from engine.analysis.music import MusicAnalyzer
from engine.analysis.speech import SpeechAnalyzer

__all__ = [
    "MUSIC_FEATURE_DIM",
    "MUSIC_FEATURE_NAMES",
    "SPEECH_FEATURE_DIM",
    "SPEECH_FEATURE_NAMES",
    "MusicAnalysis",
    "MusicAnalyzer",
    "SpeechAnalyzer",
    "analyze_signal",
    "analyze_speech_signal",
]

"""Causal hop-by-hop analysis: beat tracking, onsets, windowed music and speech features."""

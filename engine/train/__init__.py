"""Data sets, training loops and evaluation metrics."""

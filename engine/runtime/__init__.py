"""The real-time runtime: per-performer state, batched generator, scheduling and pacing."""

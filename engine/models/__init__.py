"""Models only: FreqVQ-VAE, cross-conditional GPT, KV cache, gesture model. No runtime, no streams."""

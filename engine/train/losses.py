"""Differentiable helpers for training: model vectors -> joint positions (FK) in torch.

The FK itself lives in :mod:`engine.models.vector_fk` (live beat guidance uses it too, and the runtime never
imports training code); it is re-exported here for the training code.
"""

from __future__ import annotations

from engine.models.vector_fk import VectorFK

__all__ = ["VectorFK"]

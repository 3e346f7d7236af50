"""Engines built from a typed spec: both model kinds run through the same runtime and controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.frames import ControlMessage, PoseFrame
from engine.runtime.assemble import AssemblyError, EngineSpec, ModelSpec, build_model, build_runtime, model_kind
from engine.runtime.runtime import RuntimeConfig
from tests.conftest import SHARED
from tests.runtime.test_runtime import _blocks, _music

DATA = SHARED / "data"


def test_kind_comes_from_the_card_or_the_name(tmp_path: Path) -> None:
    assert model_kind(ModelSpec()) == "vqvae-gpt"  # the shipped card
    assert model_kind(ModelSpec(model="retrieval")) == "retrieval"
    (tmp_path / "model.json").write_text('{"model_kind": "telepathy"}')
    with pytest.raises(AssemblyError, match="unknown model kind 'telepathy'"):
        build_model(ModelSpec(model=tmp_path))
    assert model_kind(ModelSpec(couple=True)) == "couple"  # --couple: the folder's GPT leads, its follower follows
    (tmp_path / "model.json").write_text('{"model_kind": "couple"}')  # a card can name couples as its kind
    assert model_kind(ModelSpec(model=tmp_path)) == "couple"
    with pytest.raises(AssemblyError, match="even"):
        build_model(ModelSpec(model=tmp_path, performers=3))
    with pytest.raises(AssemblyError, match="performers"):
        build_model(ModelSpec(performers=0))
    with pytest.raises(AssemblyError, match="does not exist"):
        build_model(ModelSpec(model="retrieval", data=tmp_path / "nothing"))


@pytest.mark.skipif(not (DATA / "cmu_salsa").is_dir(), reason="shared CMU data not found")
def test_retrieval_runs_through_the_same_runtime_and_controls(tmp_path: Path) -> None:
    out: list[PoseFrame] = []
    spec = EngineSpec(ModelSpec(model="retrieval", performers=3, data=DATA, cache=tmp_path),
                      RuntimeConfig(realtime=False))
    rt = build_runtime(spec, [out.append])
    rt.submit_control(ControlMessage(0, 0, kind="genre", performer=-1, value="house"))
    rt.submit_control(ControlMessage(0, 0, kind="intensity", performer=1, value=0.5))
    with pytest.raises(ValueError, match="no text control"):
        rt.submit_control(ControlMessage(0, 0, kind="text", performer=0, value="slow"))
    x = _music(8.0, silence_s=1.0)
    st = rt.run(_blocks(x))
    assert st.controls_applied == 2 and not st.control_errors
    assert {f.performer for f in out} == {0, 1, 2}
    assert st.frames_out == pytest.approx(8.0 * 30, abs=3)
    p0 = [f for f in out if f.performer == 0]
    late = np.array([f.rotations for f in p0[-60:]])
    assert np.abs(np.diff(late, axis=0)).max() > 1e-3  # dancing, not holding the idle pose
    assert rt.model.controls(0).genre == 5


def test_a_starting_energy_reaches_every_performer_of_a_model_trained_with_it() -> None:
    """``play/live --energy`` (ModelSpec.energy): the shipped GPT has the energy input; out of range is refused."""
    with pytest.raises(AssemblyError, match=r"--energy must be in \[0, 1\]"):
        build_model(ModelSpec(energy=1.5))
    with pytest.raises(AssemblyError, match="must be in"):
        build_model(ModelSpec(energy=float("nan")))
    m = build_model(ModelSpec(performers=2, energy=0.3))
    assert m.capabilities.energy
    assert [m.controls(p).energy for p in m.performer_ids()] == [0.3, 0.3]
    assert build_model(ModelSpec()).controls(0).energy is None  # unset unless asked for


def test_the_shipped_card_guides_arms_and_stay_texts_at_their_own_text_scales() -> None:
    """Session 15: the card's ``sampling.text_guidance_attributes`` reaches the generator: "arms high" (and its
    held-out paraphrase) is guided at the arm scale on a third, genre-only row, and (session 16) "stay in place" (and
    its paraphrase) at the scale of its side, "travel:low"; "travel across the floor" and no text keep the genre's
    scale on two rows."""
    from engine.models.dance_model import load_dance_model
    from engine.models.text_prompts import prompt_embedder
    from engine.runtime.assemble import default_model_dir

    tga = load_dance_model(default_model_dir()).text_guidance_attributes
    scale, stay = tga["arm"], tga["travel:low"]
    m: Any = build_model(ModelSpec(performers=6))  # a staged generator: the generator's own methods pass through
    embed = prompt_embedder(m.capabilities.text_prompts)
    texts = ["arms high", "reaching for the sky", "travel across the floor", None, "stay in place", "on one spot"]
    for pid, t in zip(m.performer_ids(), texts, strict=True):
        m.controls(pid).text = None if t is None else embed([t])[0]
    m.step(np.zeros(m.backend.config.cond_dim, np.float32))
    got = [m.text_scale_of(m.get(pid)) for pid in m.performer_ids()]
    assert got == [scale, scale, None, None, stay, stay]  # session 16: "stay in place" (and its paraphrase) its own
    assert [m.get(pid).textless_live for pid in m.performer_ids()] == [True, True, False, False, True, True]


def test_a_couple_leads_with_the_cards_couple_beat_guidance(small_model: Path) -> None:
    """Session 8: ``couple.beat_guidance`` replaces the solo's candidates and weight for every couple's leader (the
    one construction, ``build_couple``: generate/play/live --couple, eval --couple, couple_bench); solos keep
    ``sampling.beat_guidance``; ``--beat-guidance N`` still sets the candidates."""
    import json

    from engine.models.follower import save_follower
    from engine.runtime.assemble import build_couple
    from tests.models.test_follower import tiny_follower

    save_follower(tiny_follower(), small_model)
    card = {"sampling": {"beat_guidance": {"candidates": 16, "weight": 10.0, "sigma": 2.0, "text_weight": 0.5}},
            "couple": {"beat_guidance": {"candidates": 32, "weight": 20}}}
    (small_model / "model.json").write_text(json.dumps(card))
    solo = build_model(ModelSpec(model=small_model, backend="torch"))
    assert (solo.guidance.candidates, solo.guidance.weight) == (16, 10.0)  # type: ignore[attr-defined]
    lead = build_couple(ModelSpec(model=small_model, backend="torch", couple=True, performers=2)).leader
    g = lead.guidance
    assert (g.candidates, g.weight, g.sigma, g.text_weight) == (32, 20.0, 2.0, 0.5)  # the rest: the solo's
    lead = build_couple(ModelSpec(model=small_model, backend="torch", couple=True, performers=2,
                                  beat_guidance=8)).leader
    assert (lead.guidance.candidates, lead.guidance.weight) == (8, 20.0)
    del card["couple"]
    (small_model / "model.json").write_text(json.dumps(card))
    lead = build_couple(ModelSpec(model=small_model, backend="torch", couple=True, performers=2)).leader
    assert (lead.guidance.candidates, lead.guidance.weight) == (16, 10.0)  # no couple setting: the solo's

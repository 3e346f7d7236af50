"""Model folders as input: configs checked before anything is allocated, bad files named in one line (issue 13)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.models.gpt import GPTConfig
from engine.models.model_card import check_card
from engine.models.vqvae import VQVAEConfig
from engine.train.generate import load_dance_model


def _edit_json(path: Path, **changes: Any) -> None:
    d = json.loads(path.read_text())
    target = d["config"] if "config" in d and path.name == "vqvae.json" else d
    target.update(changes)
    path.write_text(json.dumps(d))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("n_layer", 1e9, "must be an integer"),  # issue 13 item 7: this passed 8 GB in 45 s
    ("n_layer", 10**9, "sanity limit"),
    ("n_layer", "4", "must be an integer"),  # issue 13 item 11: tracebacks
    ("n_layer", 4.5, "must be an integer"),
    ("n_embd", True, "must be an integer"),
    ("dropout", float("nan"), "finite number"),
])
def test_gpt_config_limits_before_allocation(small_model: Path, field: str, value: Any, message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _edit_json(small_model / "gpt.json", **{field: value})
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=message) as e:
        load_dance_model(small_model)
    assert time.monotonic() - t0 < 2.0
    assert "gpt.json" in str(e.value)
    assert main(["play", "--demo", "--model", str(small_model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gpt.json" in err[0] and message in err[0]


def test_vqvae_config_limits(small_model: Path) -> None:
    _edit_json(small_model / "vqvae.json", hidden=10**9)
    with pytest.raises(ValueError, match=r"vqvae\.json: VQVAEConfig\.hidden must be an integer in 1\.\.4096"):
        load_dance_model(small_model)
    with pytest.raises(ValueError, match="lower_contact"):
        VQVAEConfig(lower_contact=[99])
    with pytest.raises(ValueError, match="must be an integer"):
        GPTConfig(context=60.0)  # type: ignore[arg-type]


def test_corrupt_safetensors_is_one_line(small_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13 item 11: a corrupt safetensors file gave a traceback."""
    w = small_model / "gpt.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"gpt\.safetensors: not a readable safetensors file"):
        load_dance_model(small_model)
    assert main(["play", "--demo", "--model", str(small_model)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_weights_that_do_not_fit_the_config(small_model: Path) -> None:
    _edit_json(small_model / "gpt.json", n_layer=3)
    with pytest.raises(ValueError, match=r"gpt\.safetensors: weights do not fit gpt\.json"):
        load_dance_model(small_model)


@pytest.mark.parametrize("card", [
    {"sampling": {"temperature": -1.0}},  # issue 13 item 11: ran to exit 0 with every step failing
    {"sampling": {"temperature": "hot"}},
    {"sampling": {"top_k": -3}},
    {"sampling": {"foot_lock": "yes"}},
    {"sampling": {"max_repeat": 0}},
    {"sampling": {"max_repeat": 2.5}},
    {"sampling": {"max_repeat": True}},
    {"sampling": {"max_repeat": 1000}},
    {"sampling": {"genre_guidance": -1.0}},
    {"sampling": {"genre_guidance": "3"}},
    {"sampling": {"genre_guidance": True}},
    {"sampling": {"genre_guidance": 50}},
    {"sampling": {"genre_switch": {"boost": 4.0}}},
    {"sampling": {"genre_switch": {"boost": 0, "boost_tokens": 4}}},
    {"sampling": {"genre_switch": {"context": -1}}},
    {"sampling": {"genre_switch": {"window": 4}}},
    {"sampling": {"genre_switch": {"decoder": "reset"}}},
    {"sampling": {"genre_switch": {"ease": -1}}},
    {"sampling": {"genre_switch": {"ease": 4.5}}},
    {"sampling": {"genre_switch": {"ease": 4, "ease_shape": "snap"}}},
    {"sampling": {"genre_switch": {"snap": "rCollar"}}},
    {"sampling": {"genre_switch": {"snap": [1]}}},
    {"sampling": {"genre_start": {"boost": 4.0}}},
    {"sampling": {"genre_start": {"boost": -1.0, "boost_tokens": 4}}},
    {"sampling": {"genre_start": {"boost": 4.0, "boost_tokens": 2.5}}},
    {"sampling": {"genre_start": {"boost": 4.0, "boost_tokens": 1000}}},
    {"sampling": {"genre_start": 4}},
    {"sampling": {"genre_start": {"boost": 4.0, "boost_tokens": 4, "genres": ["tango"]}}},
    {"sampling": {"genre_start": {"boost": 4.0, "boost_tokens": 4, "genres": "salsa"}}},
    {"couple": {"genre_start": {"boost": 4.0}}},
    {"couple": {"genre_start": {"boost": 0.0, "boost_tokens": 0}}},
    {"couple": {"genre_start": {"boost": 1.0, "boost_tokens": -1}}},
    {"couple": {"follower_guidance": {"candidates": 16, "weight": 1.0}}},
    {"couple": {"follower_guidance": {"candidates": 16, "weight": 1.0, "radius_m": -0.5}}},
    {"couple": {"follower_guidance": {"candidates": 16, "weight": 1.0, "radius_m": 0.6, "pull": 2}}},
    {"couple": {"follower_guidance": [16, 1.0]}},
    {"sampling": {"energy": {"share": 1.5}}},
    {"sampling": {"energy": {"range": [0.0, 2.0]}}},
    {"sampling": {"energy": {"range": 0.5}}},
    {"sampling": {"text_baseline": "mean"}},
    {"sampling": {"text_guidance_attributes": {"arms": 3.0}}},
    {"sampling": {"text_guidance_attributes": {"arm": -1.0}}},
    {"sampling": {"text_guidance_attributes": [3.0]}},
    {"sampling": {"text_guidance_attributes": {"travel:middle": 0.0}}},
    {"sampling": {"text_guidance_attributes": {"trips:low": 0.0}}},
    {"sampling": {"beat_guidance": {"candidates": 8, "text_weight": -1}}},
    {"sampling": {"beat_guidance": {"candidates": 8, "text_weight": "2"}}},
    {"sampling": []},
    [],
])
def test_model_card_checked(small_model: Path, card: Any, capsys: pytest.CaptureFixture[str]) -> None:
    (small_model / "model.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"model\.json"):
        load_dance_model(small_model)
    assert main(["play", "--demo", "--model", str(small_model)]) == 2
    assert "model.json" in capsys.readouterr().err
    assert check_card({"sampling": {"temperature": 0.8, "top_k": 0}}) == {"sampling": {"temperature": 0.8, "top_k": 0}}
    assert check_card({"sampling": {"max_repeat": 6}}) == {"sampling": {"max_repeat": 6}}
    assert check_card({"sampling": {"max_repeat": None}}) == {"sampling": {"max_repeat": None}}
    assert check_card({"sampling": {"genre_guidance": 3}}) == {"sampling": {"genre_guidance": 3}}
    assert check_card({"sampling": {"genre_guidance": None}}) == {"sampling": {"genre_guidance": None}}
    tga = {"sampling": {"text_guidance_attributes": {"arm": 3.0, "travel:low": 0.0, "note": "measured"}}}
    assert check_card(tga) == tga
    ok = {"sampling": {"genre_switch": {"boost": 4.0, "boost_tokens": 4, "context": None, "decoder": "restart",
                                        "ease": 8, "ease_shape": "offset", "snap": ["rCollar", "lCollar"]},
                       "energy": {"share": 0.5, "range": [0.1, 0.6]}}}
    assert check_card(ok) == ok
    turn = {"sampling": {"genre_switch": {"ease": 4, "ease_shape": "turn"}}}  # session 14's shape
    assert check_card(turn) == turn
    assert check_card({"sampling": {"text_baseline": "phrases"}}) == {"sampling": {"text_baseline": "phrases"}}
    couple = {"couple": {"beat_guidance": {"candidates": 32, "weight": 20},
                         "genre_start": {"boost": 1.0, "boost_tokens": 0},
                         "follower_guidance": {"candidates": 16, "weight": 1.0, "select": "sample",
                                               "stage_weight": 3.0, "stage_from": 0.25, "radius_m": 0.6}}}
    assert check_card(couple) == couple
    for bad, field in (({"candidates": 3.5}, "candidates"), ({"weight": -1}, "weight"), ([32, 20], "beat_guidance")):
        with pytest.raises(ValueError, match=rf"couple\.{field}|couple\.beat_guidance\.{field}"):
            check_card({"couple": {"beat_guidance": bad}})


def test_negative_temperature_on_the_command_line(small_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["play", "--demo", "--model", str(small_model), "--temperature", "-1"]) == 2
    assert "--temperature" in capsys.readouterr().err


def test_bad_max_repeat_on_the_command_line(small_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["play", "--demo", "--model", str(small_model), "--max-repeat", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--max-repeat" in err and len(err.strip().splitlines()) == 1


def test_bad_genre_guidance_on_the_command_line(small_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["play", "--demo", "--model", str(small_model), "--genre-guidance", "-2"]) == 2
    err = capsys.readouterr().err
    assert "--genre-guidance" in err and len(err.strip().splitlines()) == 1

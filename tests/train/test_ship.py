"""Model folder assembly: the card states the GPT's own text width and where a fine-tune started."""

from __future__ import annotations

import json
from pathlib import Path

from engine.train.ship import WEIGHT_FILES, write_model_folder


def _run(tmp_path: Path, text_dim: int, report: dict) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    for n in WEIGHT_FILES:
        (run / n).write_text("{}")
    (run / "gpt.json").write_text(json.dumps({"text_dim": text_dim}))
    (run / "gpt_train_report.json").write_text(json.dumps(report))
    return run


def test_card_states_the_energy_width_and_the_fine_tune_source(tmp_path: Path) -> None:
    rep = {"step": 10, "init_from": {"from": "/runs/gpt3"}, "train_config": {"train_only": ["text_proj"]}}
    out = write_model_folder(_run(tmp_path, 386, rep), tmp_path / "out", {}, {}, "report\n")
    card = json.loads((out / "model.json").read_text())
    assert card["text_dim"] == 386
    assert card["training"]["gpt_init_from"] == {"from": "/runs/gpt3"}
    assert card["training"]["gpt_train_only"] == ["text_proj"]


def test_card_of_a_gpt_trained_from_scratch(tmp_path: Path) -> None:
    out = write_model_folder(_run(tmp_path, 384, {"step": 10}), tmp_path / "out", {}, {}, "report\n")
    card = json.loads((out / "model.json").read_text())
    assert card["text_dim"] == 384 and "gpt_init_from" not in card["training"]

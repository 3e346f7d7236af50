"""`--couple` on play and generate: N couples from --performers 2N, two BVH files, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.models.follower import save_follower
from tests.models.test_follower import tiny_follower


@pytest.fixture
def couple_model(small_model: Path) -> Path:
    save_follower(tiny_follower(), small_model)
    return small_model


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=300)


def test_couple_errors_are_clear(couple_model: Path, small_model: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["play", "--demo", "--couple", "--performers", "3", "--model", str(couple_model)]) == 2
    assert "even number" in capsys.readouterr().err
    assert main(["play", "--demo", "--couple", "--genre", "indian", "--model", str(couple_model)]) == 2
    assert "salsa only" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("gpt.json", "gpt.safetensors", "vqvae.json", "vqvae.safetensors"):
        (bare / name).write_bytes((couple_model / name).read_bytes())
    assert main(["play", "--demo", "--couple", "--model", str(bare)]) == 2
    assert "no follower" in capsys.readouterr().err


def test_generate_couple_writes_two_dancers_and_play_streams_two_couples(couple_model: Path, tmp_path: Path) -> None:
    from engine.audio.source import demo_path

    out = tmp_path / "duo.bvh"
    r = _run("generate", str(demo_path()), "--couple", "--model", str(couple_model), "--out", str(out),
             "--seconds", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    for role in ("lead", "follow"):
        path = tmp_path / f"duo_{role}.bvh"
        assert info[role]["out"] == str(path) and path.read_text().startswith("HIERARCHY")
    assert 80 <= info["frames"] <= 90 and info["frames"] % 4 == 0 and info["root_distance_m"]["min"] > 0.0
    r = _run("play", "--demo", "--fast", "--seconds", "3", "--couple", "--performers", "4", "--model",
             str(couple_model), "--backend", "torch")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "done:" in r.stdout and "2 couple(s) (4 performers)" in r.stderr

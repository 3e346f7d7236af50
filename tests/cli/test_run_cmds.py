"""`groovecast play`: the whole live path on a file, fast and paced, with outputs and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from engine.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=300)


def test_play_fast_records_every_frame(small_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "dance.npz"
    bvh = tmp_path / "dance.bvh"
    r = _run("play", "--demo", "--fast", "--seconds", "6", "--model", str(small_model), "--backend", "torch",
             "--performers", "2", "--record", str(out), "--record", str(bvh))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "done:" in r.stdout
    rec = np.load(out)
    assert len(rec["frame_index"]) == 180  # 6 s at 30 fps, performer 0
    assert rec["fps"] == 30.0
    assert bvh.read_text().startswith("HIERARCHY")
    # the demo clip is music from its start: the tracker has a tempo by the end
    assert 100 < float(np.median(rec["bpm"][-30:])) < 140


def test_play_errors_are_clear(small_model: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["play", str(tmp_path / "missing.wav"), "--model", str(small_model)]) == 2
    assert "missing.wav" in capsys.readouterr().err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    assert main(["play", str(bad), "--model", str(small_model)]) == 2
    assert "bad.wav" in capsys.readouterr().err
    assert main(["play", "--demo", "--model", str(tmp_path)]) == 2
    assert "lacks" in capsys.readouterr().err
    assert main(["play", "--demo", "--model", str(small_model), "--genre", "polka"]) == 2
    assert "unknown genre" in capsys.readouterr().err
    assert main(["play", "--demo", "--model", str(small_model), "--performers", "0"]) == 2
    assert main(["play"]) == 2

"""`groovecast analyze` and `groovecast devices` through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from engine.audio.source import demo_path
from engine.audio.synth import SyntheticSignal
from engine.cli import main


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def clicks_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    sig = SyntheticSignal.clicks([(10.0, 100.0, 100.0)], noise_level=0.01)
    path = tmp_path_factory.mktemp("cli") / "clicks.wav"
    x = np.stack([sig.samples, sig.samples], axis=1)  # stereo 16-bit at 22.05 kHz
    wavfile.write(str(path), 22050, (x * 32767).astype(np.int16))
    return path, sig.beats


def test_analyze_json_contract(clicks_wav: tuple[Path, np.ndarray]) -> None:
    path, truth = clicks_wav
    r = _run("analyze", str(path), "--json")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1  # exactly one JSON object, nothing else on stdout
    obj = json.loads(lines[0])
    assert set(obj) == {"bpm", "beats", "downbeats", "onsets"}
    assert isinstance(obj["bpm"], float) and abs(obj["bpm"] - 100.0) < 1.0
    beats = np.asarray(obj["beats"])
    assert len(beats) >= 12 and np.all(np.diff(beats) > 0)
    assert max(np.min(np.abs(truth - b)) for b in beats[beats > 4]) < 0.03
    assert set(obj["downbeats"]) <= set(obj["beats"])
    assert len(obj["onsets"]) >= len(truth) - 2


def test_analyze_plot_and_summary(clicks_wav: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    out = tmp_path / "plot.png"
    path, _ = clicks_wav
    assert main(["analyze", str(path), "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_demo_clip_is_bundled_and_analyzable(capsys: pytest.CaptureFixture[str]) -> None:
    p = demo_path()
    assert p.exists() and p.stat().st_size < 1_500_000
    sr, x = wavfile.read(str(p))
    assert sr == 22050 and x.dtype == np.int16 and x.ndim == 1 and 25 <= len(x) / sr <= 35
    assert main(["analyze", "--demo", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert abs(obj["bpm"] - 118.0) < 1.0  # scripts/make_demo.py renders it at 118 BPM


def test_live_mode_paces_and_ends_by_itself(tmp_path: Path) -> None:
    sig = SyntheticSignal.clicks([(3.0, 120.0, 120.0)])
    path = tmp_path / "short.wav"
    wavfile.write(str(path), 22050, sig.samples)
    r = _run("analyze", str(path), "--live", timeout=60)
    assert r.returncode == 0, r.stderr
    beat_lines = [ln for ln in r.stdout.splitlines() if ln.startswith("beat ")]
    assert beat_lines and "BPM" in beat_lines[0]
    assert "end of short.wav" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze"], "no audio"),
        (["analyze", "/nonexistent/x.wav"], "not found"),
        (["analyze", "--demo", "--live", "--json"], "--live"),
        (["analyze", "--demo", "--block-size", "0"], "--block-size"),
    ],
)
def test_analyze_errors_are_one_clear_line(args: list[str], message: str) -> None:
    r = _run(*args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_analyze_unsupported_file(tmp_path: Path) -> None:
    p = tmp_path / "a.mp3"
    p.write_bytes(b"ID3\x03" + bytes(200))
    r = _run("analyze", str(p), "--json")
    assert r.returncode == 2 and "MP3" in r.stderr and r.stdout == ""


def test_devices_lists_or_says_none() -> None:
    r = _run("devices")
    assert r.returncode == 0, r.stderr
    assert "no audio devices found" in r.stdout or "host API" in r.stdout

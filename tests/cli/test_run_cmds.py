"""`groovecast play`: the whole live path on a file, fast and paced, with outputs and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    # one file per performer and target (a BVH holds one body): dance_p0.npz, dance_p1.npz, ...
    assert not out.exists() and not bvh.exists()
    rec = np.load(tmp_path / "dance_p0.npz")
    assert len(rec["frame_index"]) == 180  # 6 s at 30 fps, performer 0
    assert rec["fps"] == 30.0 and int(rec["performer"]) == 0
    other = np.load(tmp_path / "dance_p1.npz")
    assert len(other["frame_index"]) == 180 and int(other["performer"]) == 1
    assert not np.allclose(rec["rotations"], other["rotations"])  # two dancers, not one twice
    for name in ("dance_p0.bvh", "dance_p1.bvh"):
        assert (tmp_path / name).read_text().startswith("HIERARCHY")
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
    assert main(["play", "--demo", "--model", str(small_model), "--beat-offset-ms", "5000"]) == 2
    assert "beat_offset_ms" in capsys.readouterr().err
    assert main(["play", "--demo", "--model", str(small_model), "--blocksize", "0"]) == 2
    assert "--blocksize must be in" in capsys.readouterr().err
    assert main(["play", "--demo", "--model", str(small_model), "--energy", "1.5"]) == 2
    assert "--energy must be in [0, 1]" in capsys.readouterr().err
    assert main(["play", "--demo", "--model", str(small_model), "--energy", "0.5"]) == 2  # no energy input
    assert "not trained with the energy control" in capsys.readouterr().err
    assert main(["play"]) == 2


def test_play_checks_record_paths_first_and_sigterm_ends_like_ctrl_c(small_model: Path, tmp_path: Path,
                                                                      capsys) -> None:  # type: ignore[no-untyped-def]
    """Issue 13 item 6: an unwritable --record failed only after the show; SIGTERM wrote nothing."""
    import signal
    import time

    (tmp_path / "a_file").write_text("x")
    assert main(["play", "--demo", "--model", str(small_model), "--record", str(tmp_path / "a_file" / "x.bvh")]) == 2
    assert "cannot record to" in capsys.readouterr().err
    outs = [tmp_path / "p.bvh", tmp_path / "p.npz", tmp_path / "q.npz"]
    cmd = [sys.executable, "-m", "engine", "play", "--demo", "--model", str(small_model), "--backend", "torch"]
    for o in outs:
        cmd += ["--record", str(o)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (outs[0].exists() and outs[0].stat().st_size > 20_000):
        time.sleep(0.2)  # at least one second of frames flushed
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 2.0, err[-2000:]
    assert proc.returncode == 0 and "done:" in out, err[-2000:]
    n = len(np.load(outs[1])["frame_index"])
    assert n >= 30 and len(np.load(outs[2])["frame_index"]) == n
    assert f"recorded {n} frames to {outs[0]}" in out


def test_play_and_generate_with_the_retrieval_model(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not (data / "cmu_salsa").is_dir():
        import pytest

        pytest.skip("shared CMU data not found")
    out = tmp_path / "dance.npz"
    r = _run("play", "--demo", "--fast", "--seconds", "5", "--model", "retrieval", "--data", str(data),
             "--record", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(np.load(out)["frame_index"]) == 150
    bvh = tmp_path / "r.bvh"
    r = _run("generate", str(Path(__file__).resolve().parents[2] / "engine" / "data" / "demo.wav"), "--model",
             "retrieval", "--data", str(data), "--seconds", "5", "--out", str(bvh), "--genre", "indian")
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    assert bvh.read_text().startswith("HIERARCHY")
    assert 144 <= json.loads(r.stdout.strip().splitlines()[-1])["frames"] <= 150
    r = _run("play", "--demo", "--fast", "--model", "retrieval", "--data", str(tmp_path / "none"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_the_play_summary_counts_control_replans(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.run_cmds import _report
    from tests.runtime.test_control_replan import _show

    rt, _, _, _ = _show(4, seconds=3.0)
    _report(rt.stats)
    assert f"1 control re-plans ({rt.stats.replanned_steps} steps remade" in capsys.readouterr().out
    quiet, _, _, _ = _show(0, seconds=3.0)
    _report(quiet.stats)
    assert "re-plan" not in capsys.readouterr().out


def test_couples_are_one_world_frame_for_the_viewer() -> None:
    """The hello's groups: every couple (2k leads, 2k+1 follows) as one unit; solo dancers in none."""
    from engine.cli.run_cmds import world_groups

    assert world_groups(4, couple=True) == [[0, 1], [2, 3]]
    assert world_groups(2, couple=True) == [[0, 1]]
    assert world_groups(3, couple=False) is None


def test_record_paths_name_every_performer() -> None:
    """A BVH holds one body: several performers are recorded to one file each, a couple as ``generate --couple``."""
    from engine.cli.record_args import performer_paths

    assert performer_paths("a/out.bvh", 1, couple=False) == [("a/out.bvh", 0)]
    assert performer_paths("out.bvh", 2, couple=True) == [("out_lead.bvh", 0), ("out_follow.bvh", 1)]
    assert [p for p, _ in performer_paths("out.npz", 4, couple=True)] == [
        "out_lead.npz", "out_follow.npz", "out_lead1.npz", "out_follow1.npz"]
    assert performer_paths("out.npz", 2, couple=False) == [("out_p0.npz", 0), ("out_p1.npz", 1)]

"""Ableton Link: the steering policy (no I/O), and a real second Link peer following `groovecast replay --link`
inside a private network namespace that has only a loopback interface (Link multicasts: never outside one)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streams.link import LinkAction, LinkSteering, wrap_half

SCALE = float(os.environ.get("GROOVECAST_TEST_TIMEOUT_SCALE", "1"))
REPO = Path(__file__).resolve().parents[2]


def test_wrap_half() -> None:
    assert wrap_half(0.25) == pytest.approx(0.25)
    assert wrap_half(0.75) == pytest.approx(-0.25)
    assert wrap_half(-0.6) == pytest.approx(0.4)
    assert wrap_half(0.5) == pytest.approx(-0.5)


def test_steering_sets_tempo_and_nudges_phase_by_the_wrapped_error() -> None:
    s = LinkSteering()
    # in phase and at tempo: nothing to do
    assert s.step(120.0, 9.25, 120.0, 0.25) == LinkAction()
    # tempo moved; phase 0.1 beat late (50 ms at 120 BPM): the session keeps its beat count and bar
    a = s.step(120.0, 9.15, 121.0, 0.25)
    assert a.tempo == 121.0 and a.force_beat == pytest.approx(9.25)
    # an error of more than half a beat goes the short way round: 8.9 -> 9.05, not 8.05
    assert s.step(120.0, 8.9, 120.0, 0.05).force_beat == pytest.approx(9.05)
    # below tolerance (1 ms at 120 BPM = 0.002 beats) is left alone
    assert s.step(120.0, 9.249, 120.0, 0.25).force_beat is None
    # no tempo yet (0) or nonsense: no change
    assert s.step(120.0, 3.0, 0.0, 0.5) == LinkAction()


def test_missing_aalink_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main
    from streams.link import LinkPublisher, LinkUnavailable

    monkeypatch.setitem(sys.modules, "aalink", None)  # as if the optional extra were not installed
    with pytest.raises(LinkUnavailable, match=r"pip install 'groovecast\[link\]'"):
        LinkPublisher()
    assert main(["analyze", "--demo", "--live", "--link"]) == 2
    assert "--link: Ableton Link needs the aalink package" in capsys.readouterr().err


def test_analyze_link_needs_live_input(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    assert main(["analyze", "--demo", "--link"]) == 2
    assert "use it with --live or --input" in capsys.readouterr().err


def _namespace_ok() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(importlib.util.find_spec("aalink") is None, reason="aalink not installed (groovecast[link])")
@pytest.mark.skipif(not _namespace_ok(), reason="cannot create a network namespace (unshare --net)")
def test_second_link_peer_follows_replay(cmu_take: Path, tmp_path: Path) -> None:
    bpm, seconds = 123.4, 8.0
    rec = tmp_path / "rec.npz"
    # the peer reports until the engine exits (however long a loaded machine takes to start it), at most 110 s
    r = subprocess.run(
        ["unshare", "--net", sys.executable, str(REPO / "tests" / "streams" / "link_peer.py"), "scenario",
         str(tmp_path), str(110 * SCALE), "--", "replay", str(cmu_take), "--bpm", str(bpm), "--link",
         "--seconds", str(seconds), "--record", str(rec)],
        cwd=REPO, capture_output=True, text=True, timeout=180 * SCALE)
    log = (tmp_path / "engine.log").read_text() if (tmp_path / "engine.log").exists() else ""
    assert r.returncode == 0, r.stdout + r.stderr + log
    assert "ableton link: joined" in log
    frames = np.load(rec)
    cap = frames["capture_ns"].astype(np.int64)
    # the replay's beat grid: frame i is due at start + time_s (its phase the phase then); a frame is never sent
    # early, and most leave within a spin of their time, so the start is the least (sent - due) over the frames
    # (a loaded machine sends some late: the session must follow the grid, not their lateness)
    nominal = frames["time_s"].astype(np.float64) * 1e9
    start = int(np.min(cap - nominal))
    samples = [json.loads(ln) for ln in (tmp_path / "peer.jsonl").read_text().splitlines()]
    # the peer finds the engine (Link discovery) within a generous time of its first frame; judge every sample from
    # 2 s after the first frame and 1.5 s after the peer found it (its session settles) while the engine still
    # plays: none may lose it again
    joined = [s["mono_ns"] for s in samples if s["peers"] >= 1]
    assert joined, "the peer never saw the engine"
    assert joined[0] <= cap[0] + int(5e9 * SCALE), f"discovery took {(joined[0] - cap[0]) / 1e9:.1f} s"
    t_from, t_to = max(cap[0] + int(2e9), joined[0] + int(1.5e9)), cap[-1]
    played = [s for s in samples if t_from <= s["mono_ns"] <= t_to]
    assert all(s["peers"] >= 1 for s in played)
    # a sample is timed to within half its read: one whose read was preempted (a loaded machine) is not judged
    judged = [s for s in played if s["read_ns"] < 2_000_000]
    assert len(judged) >= 40, f"{len(judged)} peer samples while the engine played ({len(played)} read)"
    tempo_err = max(abs(s["tempo"] - bpm) for s in judged)
    phase_err_ms = []
    for s in judged:
        engine_phase = (s["mono_ns"] - start) / 1e9 * bpm / 60.0
        phase_err_ms.append(abs(wrap_half(s["beat"] - engine_phase)) * 60.0 / bpm * 1e3)
    print(f"Link peer: tempo error max {tempo_err:.4f} BPM, phase error p50 {np.median(phase_err_ms):.2f} ms, "
          f"max {max(phase_err_ms):.2f} ms over {len(judged)} samples")
    assert tempo_err < 0.1
    assert max(phase_err_ms) < 10.0


_PULSE_SCRIPT = r"""
import json, time
import numpy as np
from engine.frames import PoseFrame
from engine.runtime.beat_pulse import BeatPulse
from streams.link import LinkPublisher, wrap_half

# the session starts at the frames' tempo: a first publish that changed the tempo and forced the beat at once lost
# the force now and then beside busy loops (the session kept its old timeline; 4 of 44 runs; the next publish
# corrects it in the engine; docs/streams.md), and this checks the phase, not that
link = LinkPublisher(bpm=100.0)


def steered(send, due_ns, phase, bpm=100.0):
    # send() steers the session to `phase` at `due_ns`; the session's beat is read at once and compared with that
    # phase run on at `bpm` to the moment of the read. An attempt the machine preempted (send and read together
    # over 2 ms) is made again: a stall inside the publisher moves the session by the stall, which no code can know
    for _ in range(20):
        t0 = time.monotonic_ns()
        send()
        t1 = time.monotonic_ns()
        _, tempo, beat = link.session()
        t2 = time.monotonic_ns()
        if t2 - t0 < 2_000_000:
            break
    return tempo, wrap_half(beat - phase - ((t1 + t2) // 2 - due_ns) / 1e9 * bpm / 60.0)


def frame(bpm, phase, due_ns=0):
    return PoseFrame(0, 0, frame_index=0, performer=0, skeleton="cmu", root_position=np.zeros(3, np.float32),
                     rotations=np.zeros((1, 4), np.float32), bpm=bpm, beat_phase=phase, due_ns=due_ns)


# a pose frame sent 40 ms after it was due (a preempted player) steers the session to its phase at its due time
due = time.monotonic_ns() - 40_000_000
frame_err = steered(lambda: link(frame(100.0, 0.5, due)), due, 0.5)[1]
out = []
for i in range(4):
    due = time.monotonic_ns()
    pulse = BeatPulse(beat_s=float(i) * 0.6, bpm=100.0, index=i, due_ns=due)  # sent at its beat as heard
    tempo, err = steered(lambda: link.on_pulse(pulse), due, 0.0)
    out.append({"tempo": tempo, "phase_err": err})
    time.sleep(0.3)  # half a beat on: the phase runs on at the session tempo
# a pulse delivered 40 ms after its beat (a preempted playout thread) still puts the session's beat where it was
due = time.monotonic_ns() - 40_000_000
late_err = steered(lambda: link.on_pulse(BeatPulse(beat_s=2.4, bpm=100.0, index=4, due_ns=due)), due, 0.0)[1]
_, _, before = link.session()
link(frame(140.0, 0.0))  # ignored: pulses steer
_, tempo_after, after = link.session()
link.close()
print(json.dumps({"pulses": out, "frame_err": frame_err, "late_err": late_err, "tempo_after": tempo_after,
                  "beat_step": after - before}))
"""


@pytest.mark.skipif(importlib.util.find_spec("aalink") is None or shutil.which("unshare") is None,
                    reason="needs aalink and unshare")
def test_beat_pulses_steer_the_link_phase() -> None:
    """A pose frame delivered late steers the session to its phase at the time it was due; each beat pulse (sent
    at its beat as heard) puts the session on a whole beat at the pulse's tempo, one delivered late on the beat it
    was due at; once pulses steer, the output frames' phase no longer does (a real
    Link session in a private network)."""
    r = subprocess.run(["unshare", "--net", sys.executable, "-c", _PULSE_SCRIPT], cwd=REPO, capture_output=True,
                       text=True, timeout=60 * SCALE)
    if r.returncode != 0 and "Operation not permitted" in r.stderr:
        pytest.skip("unshare --net is not permitted here")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for p in res["pulses"]:
        assert abs(p["tempo"] - 100.0) < 1e-6
        assert abs(p["phase_err"]) * 600.0 < 2.0  # ms at 100 BPM: on the beat when the pulse left
    assert abs(res["late_err"]) * 600.0 < 2.0  # the late pulse: on its beat, not 40 ms behind it
    assert abs(res["frame_err"]) * 600.0 < 2.0  # the late frame too
    assert abs(res["tempo_after"] - 100.0) < 1e-6  # the frame's 140 BPM was ignored
    assert abs(res["beat_step"]) < 0.05  # and its phase 0 did not move the session

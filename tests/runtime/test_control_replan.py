"""Controls re-plan the look-ahead: with lookahead L a control reaches the next step that plays, per performer.

Played on the fake clock from one thread (as in ``test_steady_playout``): audio blocks arrive at their times,
the playout emits the ticks whose slot has come between them, and a recording wrapper around the real (small,
random-weight) generator notes the genre every step of every performer was generated under.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from engine.analysis.music import MusicAnalyzer
from engine.clock import FakeClock
from engine.frames import ENGINE_SAMPLE_RATE, AudioBlock, ControlMessage, PoseFrame
from engine.models.conditioning import genre_id
from engine.runtime.runtime import DanceRuntime, RuntimeConfig
from tests.conftest import SHARED
from tests.runtime.test_runtime import _generator, _music
from tests.runtime.test_steady_playout import SLICE_NS, _play_until

SR = ENGINE_SAMPLE_RATE
BLOCK = 512


class _Recorded:
    """The real generator; records the genre each (performer, step) was generated under, every time it was. With
    ``step_ms`` each step costs that much time on the fake clock, during which the playout emits what is due."""

    def __init__(self, model: Any, clock: FakeClock, step_ms: float = 0.0, target: int = 0) -> None:
        self._model = model
        self._clock = clock
        self._target = target
        self._step_ns = int(step_ms * 1e6)
        self.runtime: DanceRuntime | None = None
        self.made: dict[tuple[int, int], list[int]] = {}
        self.sent: list[PoseFrame] = []
        self.applied: int | None = None  # poses sent when performer 0's genre was first seen changed (applied)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def step(self, cond: np.ndarray, pids: Sequence[int] | None = None) -> Any:
        if self.applied is None and self._model.controls(self._target).genre != 1:
            self.applied = len(self.sent)
        out = self._model.step(cond) if pids is None else self._model.step(cond, pids)
        for sf in out:
            self.made.setdefault((sf.pid, sf.step), []).append(self._model.controls(sf.pid).genre)
        end = self._clock.monotonic_ns() + self._step_ns
        while self._clock.monotonic_ns() < end:
            _play_until(self.runtime, self._clock, min(end, self._clock.monotonic_ns() + SLICE_NS))
            self._clock.sleep_until_ns(min(end, self._clock.monotonic_ns() + SLICE_NS))
        return out


def _show(lookahead: int, control_at_s: float | None = 2.0, early_control: bool = False, seconds: float = 4.0,
          step_some: bool = True, step_ms: float = 0.0, build: Callable[[], Any] | None = None,
          target: int = 0) -> tuple[DanceRuntime, _Recorded, list[PoseFrame], int]:
    """Two performers (or ``build()``'s) dance ``seconds`` of clicks in real time on the fake clock; at
    ``control_at_s`` performer ``target`` is switched to Indian. Returns the runtime, the model, every pose sent, and
    how many were sent before the control was submitted."""
    clock = FakeClock(start_ns=10_000_000_000)
    gen = _generator(performers=2) if build is None else build()
    gen.capabilities = replace(gen.capabilities, step_some=step_some)
    model = _Recorded(gen, clock, step_ms, target)
    sent = model.sent
    rt = DanceRuntime(model, MusicAnalyzer(), sinks=[sent.append],  # type: ignore[arg-type]
                      config=RuntimeConfig(realtime=True, lookahead_tokens=lookahead,
                                           delay_ms=None if step_ms else 30.0, calibration_steps=8,
                                           max_warp_rate=0.0), clock=clock)
    if step_ms:  # D from the timed steps (0 with lookahead: the steps are generated early enough)
        rt.calibrate()
        model.made.clear()
    model.runtime = rt
    if early_control:  # before any audio: nothing is generated, nothing to re-plan
        rt.submit_control(ControlMessage(0, 0, kind="genre", performer=target, value="indian"))
    x = _music(seconds, silence_s=0.0)
    t0 = clock.monotonic_ns() + 1_000_000_000
    before = -1
    for s in range(0, len(x) - BLOCK + 1, BLOCK):
        end = s + BLOCK
        arrival = t0 + int(end * 1e9 / SR)
        _play_until(rt, clock, arrival)
        clock.sleep_until_ns(arrival)
        if control_at_s is not None and before < 0 and end >= control_at_s * SR:
            before = len(sent)
            rt.submit_control(ControlMessage(0, 0, kind="genre", performer=target, value="indian"))
        rt.feed(AudioBlock(end, clock.monotonic_ns(), x[s:end].copy()))
    return rt, model, sent, before


def _played_after(sent: list[PoseFrame], since: int, pid: int) -> list[int]:
    """The steps (frame // 4) shown to performer ``pid`` by the poses sent from index ``since`` on, in order, each
    once."""
    return list(dict.fromkeys(round(f.time_s * 30) // 4 for f in sent[since:] if f.performer == pid))


@pytest.mark.parametrize("lookahead", [0, 4])
def test_the_first_step_played_after_a_control_was_made_under_it(lookahead: int) -> None:
    rt, model, sent, before = _show(lookahead)
    indian = genre_id("indian")
    assert before > 0 and rt.stats.controls_applied == 1 and not rt.stats.control_errors
    steps = _played_after(sent, before, 0)
    assert len(steps) > 8
    # every step that began to play after the control was made under it (only the one playing when it arrived,
    # if any, finishes under the old genre)
    begun = set(_played_after(sent[:before], 0, 0))
    fresh = [s for s in steps if s not in begun]
    assert steps[0] in begun or steps[0] == fresh[0]
    assert all(model.made[(0, s)][-1] == indian for s in fresh)
    if lookahead == 0:
        assert rt.stats.control_replans == 0  # nothing was ahead: the next step is the first to play
    else:
        assert rt.stats.control_replans == 1
        remade = sorted(s for (p, s), g in model.made.items() if p == 0 and len(g) > 1)
        assert 1 <= len(remade) <= lookahead and remade[0] == fresh[0]
        assert all(model.made[(0, s)] == [1, indian] for s in remade)  # made under salsa, remade under Indian
        assert rt.stats.replanned_steps == len(remade)
    # the other performer: every step made once, under its own genre; nothing discarded, nothing held
    assert all(len(g) == 1 and g[0] == 1 for (p, _), g in model.made.items() if p == 1)
    assert rt.stats.missed == 0 and rt.stats.replans == 0


def test_a_replan_holds_nothing_the_show_would_not_hold() -> None:
    """Slow steps (120 ms of a 133 ms token) and lookahead 4, so D = 0: the re-plan keeps a step that begins to
    play before it could be remade (two step times), so it holds no frame more than the same show without the
    control, and the control shows from the step after that at the latest."""
    base, _, _, _ = _show(4, control_at_s=None, step_ms=120.0, seconds=3.0)
    rt, model, sent, before = _show(4, step_ms=120.0, seconds=3.0)
    assert rt.stats.delay is not None and rt.stats.delay.delay_ns == 0
    indian = genre_id("indian")
    assert model.applied is not None and model.applied >= before
    begun = set(_played_after(sent[: model.applied], 0, 0))  # (the control applies at the next step that is due)
    fresh = [s for s in _played_after(sent, model.applied, 0) if s not in begun]
    remade = sorted(s for (p, s), g in model.made.items() if p == 0 and len(g) > 1)
    assert rt.stats.control_replans == 1 and 1 <= len(remade) <= 3  # one step kept: it begins too soon
    assert all(model.made[(0, s)][-1] == indian for s in fresh[1:])
    assert rt.stats.missed == base.stats.missed


def test_without_the_replan_a_lookahead_delays_the_control() -> None:
    """The same show with a model that cannot step some performers alone (no re-plan): the steps generated
    ahead play under the old genre first, which is what the re-plan removes."""
    rt, model, sent, before = _show(4, step_some=False)
    begun = set(_played_after(sent[:before], 0, 0))
    fresh = [s for s in _played_after(sent, before, 0) if s not in begun]
    assert model.made[(0, fresh[0])] == [1]  # still salsa: the control waited for the look-ahead to play out
    assert rt.stats.control_replans == 0 and rt.stats.controls_applied == 1


def test_a_control_with_nothing_queued_applies_without_a_replan() -> None:
    """A control before any audio (nothing generated) or at lookahead 0 re-plans nothing and never fails."""
    rt, model, sent, _ = _show(4, control_at_s=None, early_control=True, seconds=1.5)
    assert rt.stats.controls_applied == 1 and not rt.stats.control_errors and rt.stats.control_replans == 0
    assert model.made[(0, 0)] == [genre_id("indian")] and model.made[(1, 0)] == [1]
    assert len(sent) > 0 and rt.stats.missed == 0


def test_only_controls_that_change_the_dance_ask_for_a_replan() -> None:
    from engine.runtime.controls import ControlDesk

    gen = _generator(performers=2)
    desk = ControlDesk(gen, lambda pid, v: None, lambda pid: gen.idle_pose())

    def asks(*msgs: tuple[str, int, Any]) -> list[int]:
        return desk.reshaped([ControlMessage(0, 0, kind=k, performer=p, value=v) for k, p, v in msgs])

    assert asks(("genre", 0, "salsa")) == []  # already salsa
    assert asks(("genre", 1, "modern")) == [1]
    assert asks(("genre", -1, "modern")) == [0, 1]
    assert asks(("intensity", 0, 0.5), ("energy", 1, 0.5)) == []  # the playout's blend (no energy input here)
    assert asks(("text", 0, None)) == []  # no text to clear
    assert asks(("text", 1, np.ones(384, np.float32))) == [1]
    assert asks(("keyframe", 1, {"frames_ahead": 8}), ("reset", 0, None)) == [0, 1]
    assert asks(("genre", 7, "modern")) == []  # an unknown performer (refused at submit anyway)
    replanned: list[list[int]] = []
    desk.submit(ControlMessage(0, 0, kind="genre", performer=1, value="modern"))
    desk.apply(replanned.append)
    assert replanned == [[1]] and gen.controls(1).genre == genre_id("modern")
    desk.submit(ControlMessage(0, 0, kind="genre", performer=1, value="modern"))
    desk.apply(replanned.append)
    assert replanned == [[1]]  # the same genre again: nothing to re-plan



def _poses(sent: list[PoseFrame], pids: set[int]) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    return [(f.frame_index, f.performer, f.root_position, f.rotations) for f in sent if f.performer in pids]


def _same_dance(a: list[PoseFrame], b: list[PoseFrame], pids: set[int]) -> None:
    pa, pb = _poses(a, pids), _poses(b, pids)
    assert len(pa) == len(pb) > 0
    for (ta, ia, ra, qa), (tb, ib, rb, qb) in zip(pa, pb, strict=True):
        assert (ta, ia) == (tb, ib)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(qa, qb)


def test_a_performers_dance_does_not_change_when_another_gets_a_control() -> None:
    """Each performer draws from its own random stream: performer 1's frames are the same whether or not performer 0
    got a control (and had its look-ahead remade, drawing again)."""
    _, _, base, _ = _show(4, control_at_s=None)
    rt, _, sent, _ = _show(4)
    assert rt.stats.control_replans == 1 and rt.stats.replanned_steps > 0
    _same_dance(base, sent, {1})


def _couples() -> Any:
    from tests.models.test_couple import _couples as couples

    return couples(2)


@pytest.mark.parametrize("target", [0, 1])
def test_a_couple_replans_both_partners_and_leaves_the_other_couple_alone(target: int) -> None:
    """Couples (leader 0 + follower 1, leader 2 + follower 3) at lookahead 4: a control to either partner of couple
    0 remakes both partners' unplayed steps together (the follower is conditioned on its leader's tokens); a genre
    control to the leader shows from the first step that begins to play after it; the other couple's steps are
    each made once and its dance is the same as without the control."""
    _, _, base, _ = _show(4, control_at_s=None, build=_couples)
    rt, model, sent, before = _show(4, build=_couples, target=target)
    assert rt.stats.control_replans == 1 and not rt.stats.control_errors
    remade = {p: sorted(s for (q, s), g in model.made.items() if q == p and len(g) > 1) for p in range(4)}
    assert 1 <= len(remade[0]) <= 4 and remade[0] == remade[1]  # both partners, the same steps
    assert rt.stats.replanned_steps == 2 * len(remade[0])
    assert not remade[2] and not remade[3]
    if target == 0:
        begun = set(_played_after(sent[:before], 0, 0))
        fresh = [s for s in _played_after(sent, before, 0) if s not in begun]
        assert fresh[0] == remade[0][0] and all(model.made[(0, s)][-1] == genre_id("indian") for s in fresh)
    _same_dance(base, sent, {2, 3})
    assert rt.stats.missed == 0


@pytest.mark.skipif(not (SHARED / "data" / "cmu_salsa").is_dir(), reason="shared CMU data not found")
def test_retrieval_replans_the_addressed_performer(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The retrieval kind at lookahead 4: a genre control remakes the addressed performer's unplayed steps under the
    new genre (which it takes at its next cut); the other performer's steps are each made once and its dance is the
    same as without the control."""
    from engine.models.retrieval import RetrievalDancer, index_for

    index = index_for(SHARED / "data", tmp_path_factory.mktemp("retrieval"), takes={"salsa": ("01",)})

    def build() -> Any:
        m = RetrievalDancer(index, capacity=2, seed=0)
        m.add_performer()
        m.add_performer()
        return m

    _, _, base, _ = _show(4, control_at_s=None, build=build)
    rt, model, sent, before = _show(4, build=build)
    assert rt.stats.control_replans == 1 and not rt.stats.control_errors
    begun = set(_played_after(sent[:before], 0, 0))
    fresh = [s for s in _played_after(sent, before, 0) if s not in begun]
    remade = sorted(s for (p, s), g in model.made.items() if p == 0 and len(g) > 1)
    assert 1 <= len(remade) <= 4 and remade[0] == fresh[0]
    assert all(model.made[(0, s)][-1] == genre_id("indian") for s in fresh)
    assert all(len(g) == 1 for (p, _), g in model.made.items() if p == 1)
    _same_dance(base, sent, {1})
    assert rt.stats.missed == 0

"""Opt-in real-time scheduling of the playout thread: granted (SCHED_FIFO, that thread only) or refused, warned."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from engine.runtime.rt_priority import request_realtime
from engine.runtime.runtime import RuntimeConfig


def test_off_by_default_and_validated() -> None:
    assert RuntimeConfig().rt_priority == 0
    assert request_realtime(0) is False
    with pytest.raises(ValueError, match="rt_priority"):
        RuntimeConfig(rt_priority=100)


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="no POSIX scheduling API")
def test_granted_to_the_calling_thread_only_or_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    seen: dict[str, int | bool] = {}

    def playout() -> None:
        seen["granted"] = request_realtime(1)
        seen["policy"] = os.sched_getscheduler(0)
        if seen["granted"]:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # hand the right back before exiting

    with caplog.at_level(logging.WARNING, logger="engine.runtime.rt_priority"):
        t = threading.Thread(target=playout)
        t.start()
        t.join(5.0)
    if seen["granted"]:
        assert seen["policy"] == os.SCHED_FIFO
    else:
        assert seen["policy"] != os.SCHED_FIFO and "refused" in caplog.text
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller's thread is untouched

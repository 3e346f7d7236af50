"""Real-time scheduling for the calling thread (opt-in): the playout thread asks the OS to wake it first.

On a busy machine a sleeping thread wakes milliseconds after its deadline because other runnable threads hold
the cores (``python3 -m bench.wakeup_probe`` measures it). Audio servers ask for a real-time class for their
clock thread (JACK ``-R``, PipeWire through rtkit); ``--rt-priority N`` does the same for the playout thread
(Linux ``SCHED_FIFO`` at priority N). It needs the right to (root, ``CAP_SYS_NICE`` or an ``rtprio`` limit);
without it the engine keeps normal scheduling and says so once. The thread sleeps almost all the time, so it
takes little from other work. The GIL is still shared with the engine thread (switch interval 0.5 ms).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def request_realtime(priority: int) -> bool:
    """Put the calling thread in ``SCHED_FIFO`` at ``priority`` (1-99); False (and a warning) where refused."""
    if priority <= 0:
        return False
    setter = getattr(os, "sched_setscheduler", None)
    if setter is None:
        log.warning("real-time priority is not available on this system; playout keeps normal scheduling")
        return False
    try:
        setter(0, os.SCHED_FIFO, os.sched_param(min(int(priority), 99)))
    except (PermissionError, OSError) as exc:
        log.warning("real-time priority %d refused (%s); playout keeps normal scheduling", priority, exc)
        return False
    log.info("playout thread runs at real-time priority %d (SCHED_FIFO)", priority)
    return True

"""A background thread that gives its CPU up to the threads serving requests: `background` on the thread, then
`give_way` between the steps of its work (`polite(False)` while work waits for it).

Why (issue 25): the endpoint's writer thread shares a CPU with the event loop. Woken for a batch (every 10 ms while
requests come), it preempted the event loop (a long sleep gives it credit with the scheduler) and then finished its
whole turn, 0.2-0.4 ms of CPU (the log, the collected data's copy and direct write, the spans), while the next
request waited, runnable. Traced request by request (a ping-pong client, `perf sched` on the server's CPU), the
writer ran inside 83-98 % of the requests at the p99, 190-320 us of each. SCHED_BATCH keeps a waking thread from
preempting the running one (Linux's `check_preempt_wakeup_fair` skips it) and `sched_yield` between steps lets a
request that arrived meanwhile run first; neither needs privilege. Same trace: p99/p50 at one connection 2.0x and
2.1x (1 and 100 rows) against 2.3x and 2.4x, the writer's part of a p99 request 69 us at 1 row (190 us at 100
rows: one direct write of ~750 KB, a system call it cannot leave).

SCHED_IDLE did as much for the tail, and was dropped: an idle thread holding the GIL is starved by any busy process
on its CPU while the event loop waits for the GIL (a training run beside the endpoint), and coming back from it
needs root.
"""

from __future__ import annotations

import contextlib
import os
import threading

_thread = threading.local()  # `polite`: this thread gives way (a background thread not behind)


def _policy(batch: bool) -> None:
    with contextlib.suppress(AttributeError, OSError):  # not Linux: as it was
        os.sched_setscheduler(0, os.SCHED_BATCH if batch else os.SCHED_OTHER, os.sched_param(0))


def background() -> None:
    """Called on a thread that does background work: from now on it gives way (`polite`)."""
    polite(True)


def polite(on: bool) -> None:
    """Whether this background thread gives way: SCHED_BATCH and `sched_yield` at `give_way`. Not while work waits
    for it: under saturation it must be woken at once when its writes complete and never wait a turn of the busy
    threads, or it falls behind (the flood test grew 380 MB)."""
    if on != getattr(_thread, "polite", None):
        _policy(batch=on)
        _thread.polite = on


def give_way() -> None:
    """Between steps of background work: let a runnable thread of the same CPU (a request) run first. Nothing on
    other threads, or while this one is behind."""
    if getattr(_thread, "polite", False):
        os.sched_yield()

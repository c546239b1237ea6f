"""The endpoint writer thread's CPU priority: Linux's SCHED_IDLE while it keeps up, the normal policy while it
catches up.

The writer (collect.Recorder) shares the event loop's CPU. At the normal policy the scheduler lets it run beside
the loop, even preempting the loop, every time a flush hands it work (every 10 ms while requests come), and the
request under way waits for the CPU and the GIL. At SCHED_IDLE it runs only when the loop has nothing to do (between
one connection's requests there is always such a moment). Measured with the server pinned to one CPU, one
connection, 1 row (a Python client on the other CPU): p99/p50 2.46x with 3.2-3.6 % of requests over twice the median
at the normal policy, 1.70-1.83x with 0.4-0.6 % at SCHED_IDLE; with wrk at 100 rows, 2.6x and 1.9x. On a VM whose
memory is slow to first touch the gain is smaller (segments.SETTLE_BYTES has the figures): issue 25.

A saturated CPU (many connections) would starve an idle writer, so when it falls CATCH_UP_BATCHES behind it gets
the normal policy back until it has caught up. Leaving SCHED_IDLE needs CAP_SYS_NICE or an RLIMIT_NICE of at least
20 (`ulimit -e 20`, systemd's `LimitNICE=20`, Docker's `--cap-add SYS_NICE`); where it is not permitted (checked
once, by a throwaway thread) the writer keeps the normal policy throughout, as the endpoint always did.
"""

from __future__ import annotations

import functools
import os
import threading

CATCH_UP_BATCHES = 20  # 0.2 s of flushes behind: the writer gets the normal policy until it has caught up
_SCHED_IDLE = getattr(os, "SCHED_IDLE", None)  # Linux only
_NORMAL = (getattr(os, "SCHED_OTHER", None), getattr(os, "SCHED_BATCH", None))


@functools.cache
def idle_is_reversible() -> bool:
    """Whether a thread of this process may leave SCHED_IDLE again (a throwaway thread tries, once)."""
    outcome: list[bool] = []
    probe = threading.Thread(target=_probe, args=(outcome,), name="sched-idle-probe", daemon=True)
    probe.start()
    probe.join()
    return bool(outcome)


def _probe(outcome: list[bool]) -> None:
    if _SCHED_IDLE is None:
        return
    thread = threading.get_native_id()
    try:
        policy = os.sched_getscheduler(thread)
        if policy not in _NORMAL:  # a real-time or already idle process: leave it as it is
            return
        os.sched_setscheduler(thread, _SCHED_IDLE, os.sched_param(0))
        os.sched_setscheduler(thread, policy, os.sched_param(0))
    except OSError:
        return
    outcome.append(True)


class WriterPriority:
    """SCHED_IDLE for one thread while its backlog is small, its own policy back while the backlog is large."""

    def __init__(self) -> None:
        self.enabled = idle_is_reversible()
        self.thread = 0  # the writer's native id, once it runs
        self.normal = 0  # its policy before SCHED_IDLE
        self.idle = False
        self._lock = threading.Lock()

    def enter(self) -> None:
        """On the writer thread, when it starts (the executor's initializer): go idle."""
        if self.enabled:
            self.thread = threading.get_native_id()
            self.normal = os.sched_getscheduler(self.thread)
            self._set(idle=True)

    def adjust(self, backlog: int) -> None:
        """On the event loop, at each flush: the normal policy at CATCH_UP_BATCHES behind, idle again at none."""
        if self.thread and (backlog >= CATCH_UP_BATCHES if self.idle else backlog == 0):
            self._set(idle=not self.idle)

    def _set(self, *, idle: bool) -> None:
        with self._lock:
            try:
                policy = _SCHED_IDLE if idle and _SCHED_IDLE is not None else self.normal
                os.sched_setscheduler(self.thread, policy, os.sched_param(0))
            except OSError:  # the thread is gone (shutdown), or the policy was refused: stop adjusting
                self.thread = 0
                return
            self.idle = idle

"""A background thread that gives its CPU up at once to the threads serving requests, while it keeps up.

Why (issue 25): the endpoint's writer thread shares a CPU with the event loop. At normal priority the scheduler
lets it finish its turn (0.2-0.4 ms of CPU every 10 ms at one connection: the log, the collected data, the spans)
while a request that arrived meanwhile waits, and those turns set the p99 at one connection: traced request by
request (a ping-pong client, `perf sched` on the server's CPU), the writer ran inside 83-98 % of the requests at
the p99, 190-320 us of each. Made SCHED_IDLE, it is preempted as soon as a request wakes the event loop (at the end
of the system call under way: Linux's `check_preempt_wakeup_fair` preempts an idle-policy task always), so it runs
in the gaps between requests: the same trace gave p99/p50 1.7x and 2.0x (1 and 100 rows) against 2.4-2.8x.

A SCHED_IDLE thread gets almost no CPU while the server is saturated, so `keep_up` brings it back to normal
priority while batches wait for it, and makes it idle again once it has caught up. Coming back from SCHED_IDLE
needs RLIMIT_NICE 20 or CAP_SYS_NICE (root): `may_yield` tries the round trip on a throwaway thread first, and
where it fails the writer keeps normal priority (and the wider tail).
"""

from __future__ import annotations

import os
import threading
import time

BEHIND = 20  # batches waiting for the thread: back to normal priority from this many, idle again at none ...
NORMAL_SECONDS = 1.0  # ... once it has been normal this long


def _policy(thread_id: int, *, idle: bool) -> None:
    os.sched_setscheduler(thread_id, os.SCHED_IDLE if idle else os.SCHED_OTHER, os.sched_param(0))


def may_yield() -> bool:
    """Whether a thread of this process may go SCHED_IDLE and come back (tried on a thread that then ends, since
    a thread that may not come back would stay idle)."""
    if not hasattr(os, "SCHED_IDLE"):  # not Linux
        return False
    result: list[bool] = []

    def round_trip() -> None:
        try:
            _policy(0, idle=True)
            _policy(0, idle=False)
            result.append(True)
        except OSError:
            result.append(False)

    probe = threading.Thread(target=round_trip, name="yield-probe")
    probe.start()
    probe.join()
    return result == [True]


class Yielding:
    """The priority of one thread (`attach`, called on it), set by `keep_up` from that thread or another: the
    writer calls it before each batch, the event loop after handing one over (a starved writer would not)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.idle = False
        self.thread_id = 0  # 0 until `attach`: the calling thread
        self._normal_until = 0.0  # once behind, normal priority at least until then (monotonic)

    def attach(self) -> None:
        """Called on the thread whose priority this is."""
        self.thread_id = threading.get_native_id()

    def keep_up(self, waiting: int) -> None:
        """SCHED_IDLE when no batch waits for the thread, normal priority from BEHIND waiting (and for
        NORMAL_SECONDS at least: a saturated server would starve it again at once, and each catching up delays
        the requests it overlaps)."""
        if not self.enabled or not self.thread_id:
            return
        if waiting >= BEHIND:
            self._normal_until = time.monotonic() + NORMAL_SECONDS
            self._set(idle=False)
        elif waiting == 0 and time.monotonic() >= self._normal_until:
            self._set(idle=True)

    def _set(self, *, idle: bool) -> None:
        if idle == self.idle:
            return
        try:
            _policy(self.thread_id, idle=idle)
        except OSError:  # refused after all (or the thread is gone): leave it as it is
            self.enabled = False
            return
        self.idle = idle

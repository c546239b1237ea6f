"""Background threads that give way to requests (`infra.common.yielding`): real scheduling policies of real
threads, read back from the kernel."""

from __future__ import annotations

import os
import threading

from infra.common.yielding import background, give_way


def test_a_background_thread_is_sched_batch_and_the_others_keep_their_policy() -> None:
    seen: dict[str, int] = {}
    proceed = threading.Event()

    def work() -> None:
        background()
        seen["background"] = os.sched_getscheduler(0)
        seen["tid"] = threading.get_native_id()
        for _ in range(3):
            give_way()  # returns at once when nothing else waits
        proceed.wait(10)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        while "tid" not in seen:
            give_way()
        assert seen["background"] == os.SCHED_BATCH  # does not preempt the running thread when it wakes
        assert os.sched_getscheduler(seen["tid"]) == os.SCHED_BATCH
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller (an event loop) untouched
    finally:
        proceed.set()
        thread.join()

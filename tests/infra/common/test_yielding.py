"""Background threads that give way to requests (`infra.common.yielding`): real scheduling policies of real
threads, read back from the kernel."""

from __future__ import annotations

import os
import threading

from infra.common.yielding import background, give_way, polite


def test_a_background_thread_is_sched_batch_and_the_others_keep_their_policy() -> None:
    seen: dict[str, int] = {}
    ready, proceed = threading.Event(), threading.Event()

    def work() -> None:
        background()
        seen["background"] = os.sched_getscheduler(0)
        seen["tid"] = threading.get_native_id()
        for _ in range(3):
            give_way()  # returns at once when nothing else waits
        ready.set()
        proceed.wait(10)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert ready.wait(10)
        assert seen["background"] == os.SCHED_BATCH  # does not preempt the running thread when it wakes
        assert os.sched_getscheduler(seen["tid"]) == os.SCHED_BATCH
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller (an event loop) untouched
    finally:
        proceed.set()
        thread.join()


def test_a_background_thread_behind_its_work_takes_normal_priority_and_back() -> None:
    """While work waits for it, the writer neither yields nor waits for the busy threads' turns (under saturation
    it fell behind otherwise); caught up, it gives way again."""
    policies: list[int] = []

    def work() -> None:
        background()
        policies.append(os.sched_getscheduler(0))
        polite(False)
        policies.append(os.sched_getscheduler(0))
        polite(True)
        policies.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert policies == [os.SCHED_BATCH, os.SCHED_OTHER, os.SCHED_BATCH]

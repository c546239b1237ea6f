"""A thread that yields its CPU while it keeps up (`infra.common.yielding`): real scheduling policies of real
threads, read back from the kernel."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import pytest

from infra.common import yielding
from infra.common.yielding import BEHIND, Yielding, may_yield


def _policies_after(steps: Callable[[Yielding], Iterator[bool]]) -> tuple[list[int], list[bool]]:
    """Run `steps` on a fresh thread; return the kernel's policy of that thread after each step, and what each
    step yields."""
    policies: list[int] = []
    marks: list[bool] = []

    def run() -> None:
        target = Yielding(enabled=True)
        target.attach()
        for mark in steps(target):
            marks.append(mark)
            policies.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return policies, marks


def test_this_machine_lets_a_thread_come_back_from_idle() -> None:
    assert may_yield()  # root in CI: the writer yields there (a user without RLIMIT_NICE 20 keeps normal priority)


def test_idle_while_it_keeps_up_normal_once_behind_and_idle_again_after_a_calm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(yielding, "NORMAL_SECONDS", 0.0)

    def steps(target: Yielding) -> Iterator[bool]:
        for waiting in (0, 1, BEHIND - 1, BEHIND, 1, 0):
            target.keep_up(waiting)
            yield target.idle

    policies, marks = _policies_after(steps)
    assert marks == [True, True, True, False, False, True]  # between 1 and BEHIND - 1 waiting it stays as it was
    assert policies == [os.SCHED_IDLE, os.SCHED_IDLE, os.SCHED_IDLE, os.SCHED_OTHER, os.SCHED_OTHER, os.SCHED_IDLE]


def test_once_behind_it_stays_normal_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yielding, "NORMAL_SECONDS", 60.0)

    def steps(target: Yielding) -> Iterator[bool]:
        target.keep_up(0)
        target.keep_up(BEHIND)
        target.keep_up(0)  # caught up, but a saturated server would starve it again at once
        yield target.idle

    policies, marks = _policies_after(steps)
    assert marks == [False]
    assert policies == [os.SCHED_OTHER]


def test_a_thread_that_may_not_yield_keeps_its_priority() -> None:
    def steps(target: Yielding) -> Iterator[bool]:
        target.enabled = False
        target.keep_up(0)
        yield target.idle

    policies, marks = _policies_after(steps)
    assert marks == [False]
    assert policies == [os.SCHED_OTHER]


def test_another_thread_gives_a_starved_thread_its_priority_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event loop calls `keep_up` after each hand-over: a writer starved at SCHED_IDLE would never call it."""
    monkeypatch.setattr(yielding, "NORMAL_SECONDS", 0.0)
    target = Yielding(enabled=True)
    attached, release = threading.Event(), threading.Event()

    def writer() -> None:
        target.attach()
        target.keep_up(0)
        attached.set()
        release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert attached.wait(10)
        assert os.sched_getscheduler(target.thread_id) == os.SCHED_IDLE
        target.keep_up(BEHIND)  # from this thread
        assert os.sched_getscheduler(target.thread_id) == os.SCHED_OTHER
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller's own priority untouched
    finally:
        release.set()
        thread.join()

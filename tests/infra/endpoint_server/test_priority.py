"""The endpoint writer thread's CPU priority (`infra.endpoint_server.priority`), on real threads of this process:
SCHED_IDLE while it keeps up, its own policy back while it catches up, and never idle where it could not come back.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.endpoint_server.collect import Recorder
from infra.endpoint_server.priority import CATCH_UP_BATCHES, WriterPriority, idle_is_reversible

ROOT = Path(__file__).resolve().parents[3]


def _may_leave_idle() -> bool:
    """What Linux allows this process: CAP_SYS_NICE (root here), or an RLIMIT_NICE that reaches nice 0."""
    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20


@pytest.fixture
def writer() -> Iterator[WriterPriority]:
    """A WriterPriority entered by a real thread that stays alive until the test ends."""
    priority, entered, done = WriterPriority(), threading.Event(), threading.Event()

    def run() -> None:
        priority.enter()
        entered.set()
        done.wait(30)

    thread = threading.Thread(target=run, name="writer-under-test")
    thread.start()
    assert entered.wait(10)
    yield priority
    done.set()
    thread.join()


def test_the_writer_idles_while_it_keeps_up_and_catches_up_at_its_own_policy(writer: WriterPriority) -> None:
    assert idle_is_reversible() is _may_leave_idle()
    if not writer.enabled:  # an unprivileged run: the writer keeps its normal policy throughout
        assert writer.thread == 0
        return
    assert os.sched_getscheduler(writer.thread) == os.SCHED_IDLE
    writer.adjust(CATCH_UP_BATCHES - 1)  # behind, but not far: still idle
    assert os.sched_getscheduler(writer.thread) == os.SCHED_IDLE
    writer.adjust(CATCH_UP_BATCHES)  # far behind: the CPU share of any other thread until it has caught up
    assert os.sched_getscheduler(writer.thread) == writer.normal == os.SCHED_OTHER
    writer.adjust(3)  # catching up
    assert os.sched_getscheduler(writer.thread) == os.SCHED_OTHER
    writer.adjust(0)  # caught up: idle again
    assert os.sched_getscheduler(writer.thread) == os.SCHED_IDLE


def test_an_unprivileged_process_never_sends_its_writer_idle() -> None:
    """Without CAP_SYS_NICE and with RLIMIT_NICE 0, a thread cannot leave SCHED_IDLE: the probe says so."""
    if os.geteuid() != 0:  # already unprivileged: this process is the case
        assert idle_is_reversible() is _may_leave_idle()
        return
    code = (
        "import os, threading\n"
        "from infra.endpoint_server.priority import WriterPriority\n"
        "p = WriterPriority()\n"
        "t = threading.Thread(target=p.enter); t.start(); t.join()\n"
        "print(p.enabled, p.thread, os.sched_getscheduler(0) == os.SCHED_OTHER)\n"
    )
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    result = subprocess.run(
        [*command, sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0", "True"]


def test_the_recorders_writer_thread_runs_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TRACING", "false")

    async def serve() -> tuple[int, int]:
        recorder = Recorder(tmp_path, "priority-endpoint", telemetry_dir=tmp_path, collect_percent=100)
        recorder.start()
        recorder.collect({}, "r1", "blue", "m:1", b'{"data": [[1]]}', b"[1.0]")
        for _ in range(50):  # the first flush starts the writer thread
            await asyncio.sleep(0.02)
            if recorder.priority.thread:
                break
        policy = os.sched_getscheduler(recorder.priority.thread) if recorder.priority.thread else -1
        recorder.stop()
        return policy, len(list((tmp_path / "collected").glob("*.jsonl")))

    policy, segments = asyncio.run(serve())
    assert segments == 1
    assert policy == (os.SCHED_IDLE if _may_leave_idle() else -1)

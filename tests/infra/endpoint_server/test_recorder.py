"""The endpoint's recorder behind on its writes (its log pipe full: the supervisor not reading): it drops collected
requests rather than hold them without bound, never a request's log line, and the request log says how many it
dropped, when dropping starts, within a second of more and at stop (issue 25: nothing lost without a word)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.endpoint_server import collect
from infra.endpoint_server.collect import COLLECTED_FOLDER, Recorder

SENT = 300
SCOPE = {"method": "POST", "path": "/score"}


def _full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is full, as when its reader stopped reading."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"\n" * 4096)
    os.set_blocking(write_end, True)
    return read_end, write_end


def _drain(read_end: int, into: bytearray) -> None:
    while chunk := os.read(read_end, 1 << 16):
        into += chunk


def _lines(output: bytearray) -> list[dict[str, Any]]:
    """The whole lines read so far (the reader thread may be inside one), the pipe's filler skipped."""
    data = bytes(output)
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]


def _until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_collected_records_shed_behind_a_stalled_writer_are_told_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_TRACING", "false")  # no spans: every record shed is a collected request
    monkeypatch.setattr(collect, "WRITER_BACKLOG", 2)  # hand-overs behind before shedding (500 in service)
    read_end, write_end = _full_pipe()
    output = bytearray()
    drain = threading.Thread(target=_drain, args=(read_end, output), daemon=True)
    recorder = Recorder(tmp_path / "state", "shedding", telemetry_dir=tmp_path / "telemetry", collect_percent=100)
    recorder.out = os.fdopen(write_end, "wb")

    async def requests_then_quiet() -> None:
        recorder.start()
        for n in range(SENT):  # ~0.5 s of requests, the writer stuck on its first log write
            recorder.log(SCOPE, {}, f"r{n}", 200, "blue", "model:1", 1, time.perf_counter())
            recorder.collect({}, f"r{n}", "blue", "model:1", b'{"data": [[1, 2]]}', b"[3]")
            await asyncio.sleep(0.001)
        shed_while_sending = recorder.shed
        drain.start()  # the supervisor reads again: the writer catches up; then no request for 1.5 s
        await asyncio.sleep(1.5)
        assert shed_while_sending > 0
        # an endpoint gone quiet still tells of the records it shed last, without a request or a stop
        assert await asyncio.to_thread(
            _until, lambda: sum(line.get("shed", 0) for line in _lines(output)) == recorder.shed
        )

    os.makedirs(tmp_path / "state")
    asyncio.run(requests_then_quiet())
    recorder.stop()
    recorder.out.close()
    drain.join(timeout=10)

    lines = _lines(output)
    told = [line for line in lines if line.get("event") == "shed"]
    logged = [line["request_id"] for line in lines if "request_id" in line]
    assert logged == [f"r{n}" for n in range(SENT)]  # every request's log line, in order
    assert len(told) >= 2  # when shedding started, and later
    assert told[0]["shed"] > 0
    assert "behind" in told[0]["reason"]
    assert sum(line["shed"] for line in told) == told[-1]["shed_since_start"] == recorder.shed
    kept = [
        json.loads(line)["request_id"]
        for segment in sorted((tmp_path / "state" / COLLECTED_FOLDER).glob("*.jsonl"))
        for line in segment.read_bytes().splitlines()
    ]
    assert len(kept) == len(set(kept))
    assert set(kept) <= set(logged)
    assert len(kept) + recorder.shed == SENT  # each collected request kept or counted as shed, none twice

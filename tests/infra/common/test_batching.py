"""A mini-batch's lines read into pooled buffers: the right bytes, a buffer reused for the next mini-batch, a
bounded pool, and a stream over a view that a CSV reader reads as it would the bytes."""

from __future__ import annotations

import io
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pytest

from infra.backend import MiniBatch
from infra.common import batching


@pytest.fixture(autouse=True)
def empty_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batching, "_pool", [])


def _batch(file: Path, start: int, end: int, index: int = 0) -> MiniBatch:
    return MiniBatch(index=index, file=file, start=start, end=end, columns=["a", "b"])


def test_the_lines_are_the_ranges_bytes_ending_in_a_newline(tmp_path: Path) -> None:
    file = tmp_path / "in.csv"
    file.write_bytes(b"a,b\n1,2\n3,4\n5,6")  # no newline at the end
    with batching.lines(_batch(file, 4, 12)) as view:
        assert bytes(view) == b"1,2\n3,4\n"
    with batching.lines(_batch(file, 12, 15)) as view:
        assert bytes(view) == b"5,6\n"
    with batching.lines(_batch(file, 15, 15)) as view:
        assert bytes(view) == b"\n"  # as `read` has it


def test_the_next_mini_batch_reads_into_the_same_buffer(tmp_path: Path) -> None:
    file = tmp_path / "in.csv"
    file.write_bytes(b"a,b\n" + b"".join(b"%04d,%04d\n" % (i, i) for i in range(1000)))  # 10 bytes a line
    with batching.lines(_batch(file, 4, 2004)) as first:
        buffer = first.obj
    with batching.lines(_batch(file, 2004, 3004, 1)) as second:
        assert second.obj is buffer  # no new memory for it
        assert bytes(second) == file.read_bytes()[2004:3004]
    with batching.lines(_batch(file, 4, file.stat().st_size, 2)) as bigger:
        assert bigger.obj is not buffer
        assert bytes(bigger) == file.read_bytes()[4:]
    assert [len(kept) for kept in batching._pool] == [file.stat().st_size - 4 + 1]  # the bigger one replaced it


def test_the_pool_keeps_a_few_buffers(tmp_path: Path) -> None:
    file = tmp_path / "in.csv"
    file.write_bytes(b"a,b\n1,2\n")
    with ExitStack() as open_batches:
        for index in range(batching._POOL_LIMIT + 3):
            open_batches.enter_context(batching.lines(_batch(file, 4, 8, index)))
    assert len(batching._pool) == batching._POOL_LIMIT


def test_a_stream_over_a_view_reads_as_the_bytes(tmp_path: Path) -> None:
    data = b"".join(b'%d,"x%d"\n' % (i, i) for i in range(5000))
    stream = batching.ViewStream(memoryview(data))
    pieces = iter(lambda: stream.read(777), b"")
    assert b"".join(pieces) == data
    parsed = pd.read_csv(batching.ViewStream(memoryview(data)), header=None, names=["a", "b"])
    pd.testing.assert_frame_equal(parsed, pd.read_csv(io.BytesIO(data), header=None, names=["a", "b"]))

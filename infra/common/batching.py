"""Batch planning, row counting and assembly, the same on every backend: mini-batches are byte ranges of whole
lines of the input CSVs, and a scored mini-batch is a part file of its rows with their scores.

A mini-batch is a byte range of one CSV, so planning reads a few bytes per mini-batch, not the file.
Parts are concatenated in order into one CSV. `InProcess` runs a backend's `score_all` without a flow
(one mini-batch after another, or the platform's job as it is). Imports no adapter.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.backend import MiniBatch, MiniBatchResult, Scored
from model.errors import DataValidationError
from model.package import SCORE_COLUMN

_SAMPLE_BYTES = 1 << 20
_NEWLINE = ord("\n")
_POOL_LIMIT = 4  # read buffers kept for the next mini-batches (about a parallelism's worth)
_pool: list[bytearray] = []
_pool_lock = threading.Lock()


def plan(files: list[Path], rows_per_batch: int, features: tuple[str, ...]) -> list[MiniBatch]:
    """Cut the inputs into mini-batches of about `rows_per_batch` rows, after checking their headers."""
    batches: list[MiniBatch] = []
    header: list[str] | None = None
    for file in files:
        columns, start, step = _inspect(file, rows_per_batch, features)
        if header is not None and columns != header:
            raise DataValidationError(
                f"{file}: columns {','.join(columns)} differ from {files[0]}'s {','.join(header)}"
            )
        header = columns
        batches += _cut(file, columns, start, step, first_index=len(batches))
    return batches


def read(batch: MiniBatch) -> bytes:
    """The mini-batch's lines, ending in a newline, as bytes of their own (`lines` without a copy)."""
    with lines(batch) as view:
        return bytes(view)


@contextmanager
def lines(batch: MiniBatch) -> Iterator[memoryview]:
    """The mini-batch's lines, ending in a newline, read into a buffer kept for the next mini-batches; the view is
    valid inside the block only. A mini-batch is tens of MB, and a new buffer each time is new memory each time:
    page faults, ~10 µs a 4 KiB page on a VM whose host takes idle memory back (`benchmarks/batch.py`: ~100,000
    faults and over a second of system time a flow run of 420 MB, before)."""
    size = batch.end - batch.start
    buffer = _buffer(size + 1)
    try:
        view = memoryview(buffer)
        filled = 0
        with batch.file.open("rb", buffering=0) as handle:
            handle.seek(batch.start)
            while filled < size and (got := handle.readinto(view[filled:size])):
                filled += got
        if not filled or buffer[filled - 1] != _NEWLINE:
            buffer[filled] = _NEWLINE
            filled += 1
        yield view[:filled]
    finally:
        with _pool_lock:
            if len(_pool) < _POOL_LIMIT:
                _pool.append(buffer)


def _buffer(size: int) -> bytearray:
    """The smallest pooled buffer of at least `size` bytes, or a new one (the pool's smallest dropped for it)."""
    with _pool_lock:
        fitting = [i for i, kept in enumerate(_pool) if len(kept) >= size]
        if fitting:
            return _pool.pop(min(fitting, key=lambda i: len(_pool[i])))
        if _pool:
            del _pool[min(range(len(_pool)), key=lambda i: len(_pool[i]))]
    return bytearray(size)


class ViewStream(io.RawIOBase):
    """A binary stream over a view, for a reader that takes a file (pandas reads it in pieces: no copy of the
    whole, as `io.BytesIO` of a view would make)."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        count = min(len(target), len(self._view) - self._at)
        target[:count] = self._view[self._at : self._at + count]
        self._at += count
        return count


def count_rows(batch: MiniBatch) -> int:
    """The data lines in a mini-batch (a failed mini-batch may not parse into rows)."""
    return read(batch).count(b"\n")


def header(columns: list[str]) -> bytes:
    """The output's first line: the input's columns and the score's."""
    return (",".join([*columns, SCORE_COLUMN]) + "\n").encode()


def assemble(results: list[MiniBatchResult], columns: list[str], out: Path) -> int:
    """Write the header and the parts, in order, as one CSV (each part is removed); return the bytes written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb", buffering=0) as target:
        target.write(header(columns))
        for result in sorted(results, key=lambda r: r.index):
            with result.part.open("rb") as part:
                size = os.fstat(part.fileno()).st_size
                os.sendfile(target.fileno(), part.fileno(), 0, size)
            result.part.unlink()
    return out.stat().st_size


class InProcess:
    """A `BatchRunner` without a flow: the mini-batches one after another in this thread (an exception fails its
    mini-batch, named by its message), and a platform job called as it is."""

    def each(
        self,
        score: Callable[[MiniBatch], MiniBatchResult],
        batches: list[MiniBatch],
        parallelism: int,  # noqa: ARG002 - one at a time
    ) -> Scored:
        results: list[MiniBatchResult] = []
        failures: dict[int, str] = {}
        for batch in batches:
            try:
                results.append(score(batch))
            except Exception as exc:  # noqa: BLE001 - any error fails its mini-batch, as a failed task run does
                failures[batch.index] = str(exc)
        return results, failures

    def whole(self, job: Callable[[], Scored], batches: list[MiniBatch]) -> Scored:  # noqa: ARG002
        return job()


def _inspect(file: Path, rows_per_batch: int, features: tuple[str, ...]) -> tuple[list[str], int, int]:
    """The header's columns, where the data starts, and the byte length of about `rows_per_batch` lines."""
    with file.open("rb") as handle:
        first = handle.readline()
        start = handle.tell()
        sample = handle.read(_SAMPLE_BYTES)
    if not first.strip():
        raise DataValidationError(f"{file}: the file is empty (expected a header line with {','.join(features)})")
    columns = next(csv.reader([first.decode("utf-8-sig").rstrip("\r\n")]))
    missing = [name for name in features if name not in columns]
    if missing:
        raise DataValidationError(
            f"{file}: missing column(s) {', '.join(map(repr, missing))}; expected {','.join(features)}"
        )
    if SCORE_COLUMN in columns:
        raise DataValidationError(f"{file}: the input already has a {SCORE_COLUMN!r} column")
    if not sample.strip():
        raise DataValidationError(f"{file}: no data rows (only a header)")
    per_line = len(sample) / max(1, sample.count(b"\n"))
    return columns, start, max(1, int(per_line * rows_per_batch))


def _cut(file: Path, columns: list[str], start: int, step: int, first_index: int) -> list[MiniBatch]:
    """Byte ranges of about `step` bytes, each ending just after a newline (or at the end of the file)."""
    size = file.stat().st_size
    batches: list[MiniBatch] = []
    position = start
    with file.open("rb") as handle:
        while position < size:
            end = min(size, position + step)
            if end < size:
                handle.seek(end - 1)
                handle.readline()  # to just past the next newline (`end - 1` keeps a range that already ends on one)
                end = handle.tell()
            batches.append(
                MiniBatch(index=first_index + len(batches), file=file, start=position, end=end, columns=columns)
            )
            position = end
    return batches

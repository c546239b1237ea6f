"""Append-only JSON-lines records kept in segments, under a size cap and an age.

    <folder>/<prefix><YYYY-MM-DD>T<HHMMSS>-<n>.jsonl   one segment (about a `segments`-th of the cap)
    <folder>/<prefix>retention.json                    what was dropped: bytes, segments, the newest time dropped

Writes go to the newest segment; a write that would pass the segment's share starts a new one, and the oldest
segments are deleted until the cap holds (the bytes held never pass `max_bytes`). A segment whose last write is
older than `max_age_seconds` is deleted too. Files already in the folder with the same prefix (an earlier
process's segments, or one unbounded file from before retention) count against the cap and go first.

One writer thread owns a `SegmentedLog`; readers only read the files and `retention.json`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.common.direct import Appender

SUFFIX = ".jsonl"
RETENTION_SUFFIX = "retention.json"


@dataclass
class _Segment:
    path: Path
    size: int
    last_write: float


class SegmentedLog:
    """Segments `<prefix>*.jsonl` in `folder`, at most `max_bytes` together, none older than `max_age_seconds`."""

    def __init__(
        self,
        folder: Path,
        prefix: str,
        *,
        max_bytes: int,
        max_age_seconds: float,
        segments: int = 8,
        legacy: re.Pattern[str] | None = None,
    ) -> None:
        self.folder = folder
        self.prefix = prefix
        self.legacy = legacy  # names of older files of the same records (another naming), counted and dropped first
        self.max_bytes = max(int(max_bytes), 1)
        self.max_age_seconds = max_age_seconds
        self.segment_bytes = max(self.max_bytes // max(segments, 1), 1)
        self._held: deque[_Segment] | None = None  # oldest first; the last is written to
        self._current: _Segment | None = None
        self._appender = Appender()  # the current segment, open; large writes around the page cache
        self._numbers = itertools.count(1)
        self.dropped_bytes = 0
        self.dropped_segments = 0
        self.dropped_before = 0.0  # the newest last-write time of anything dropped

    @property
    def held_bytes(self) -> int:
        return sum(s.size for s in self._held or ())

    def write(self, data: bytes | Sequence[bytes], now: float | None = None) -> None:
        """Append whole lines (`data`, or each of its chunks, ends with a newline); keep the cap and the age.
        Raises OSError."""
        now = time.time() if now is None else now
        held = self._segments()
        chunks = [data] if isinstance(data, bytes) else list(data)
        size = sum(map(len, chunks))
        if size > self.max_bytes:  # more than the whole cap at once: keep its newest lines
            joined = b"".join(chunks)
            cut = joined.find(b"\n", len(joined) - self.max_bytes - 1) + 1
            self._account(cut, 0, now)
            chunks, size = [joined[cut:]], len(joined) - cut
        if size:
            if self._current is None or self._current.size + size > self.segment_bytes:
                self._current = _Segment(self._new_path(now), 0, now)
                held.append(self._current)
                self._appender.open(self._current.path)
            while held[0] is not self._current and self.held_bytes + size > self.max_bytes:
                self._drop(held.popleft())
            self._appender.write(chunks)
            self._current.size += size
            self._current.last_write = now
        self.expire(now)

    def close(self) -> None:
        """Close the segment written to (every byte written is in it); a later `write` opens a new one."""
        self._appender.close()
        self._current = None

    def expire(self, now: float | None = None) -> None:
        """Delete the segments whose last write is older than the age (the writer calls this when idle too)."""
        now = time.time() if now is None else now
        held = self._segments()
        while held and held[0].last_write < now - self.max_age_seconds:
            segment = held.popleft()
            if segment is self._current:
                self._current = None
                self._appender.close()
            self._drop(segment)

    def _segments(self) -> deque[_Segment]:
        """The segments held, read from the folder the first time (oldest first by last write)."""
        if self._held is None:
            found = []
            names = self.folder.glob(f"{self.prefix}*{SUFFIX}") if self.folder.is_dir() else iter(())
            if self.legacy is not None and self.folder.is_dir():
                legacy = self.legacy
                names = itertools.chain(names, (p for p in self.folder.iterdir() if legacy.fullmatch(p.name)))
            for path in names:
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    found.append(_Segment(path, stat.st_size, stat.st_mtime))
            self._held = deque(sorted(found, key=lambda s: (s.last_write, s.path.name)))
        self.folder.mkdir(exist_ok=True)  # never its parent: a deleted workspace stays deleted
        return self._held

    def _new_path(self, now: float) -> Path:
        stamp = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime(now))
        while True:
            path = self.folder / f"{self.prefix}{stamp}-{next(self._numbers):06d}{SUFFIX}"
            if not path.exists():
                return path

    def _drop(self, segment: _Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        self._account(segment.size, 1, segment.last_write)

    def _account(self, size: int, segments: int, newest: float) -> None:
        self.dropped_bytes += size
        self.dropped_segments += segments
        self.dropped_before = max(self.dropped_before, newest)
        record = {
            "dropped_bytes": self.dropped_bytes,
            "dropped_segments": self.dropped_segments,
            "dropped_before": self.dropped_before,
            "max_bytes": self.max_bytes,
            "max_age_seconds": self.max_age_seconds,
        }
        marker = self.folder / f"{self.prefix}{RETENTION_SUFFIX}"
        temporary = marker.with_name(f".{marker.name}.{os.getpid()}")
        temporary.write_text(json.dumps(record) + "\n")
        os.replace(temporary, marker)


def held_bytes(folder: Path, prefix: str) -> int:
    """The bytes of the segments `<prefix>*.jsonl` in `folder` now (0 when there is none)."""
    total = 0
    for path in folder.glob(f"{prefix}*{SUFFIX}") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def retention(folder: Path, prefix: str) -> dict[str, Any]:
    """What retention dropped from `folder` so far (`{}` when nothing was): `dropped_before` is the newest
    time of a dropped record, so a reader asking for data from before it knows its window was cut short."""
    marker = folder / f"{prefix}{RETENTION_SUFFIX}"
    try:
        record: dict[str, Any] = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return record

"""Segments under a size cap and an age (`infra.common.segments`), on real files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from infra.common.direct import write_all
from infra.common.segments import SegmentedLog, held_bytes, retention


def _lines(count: int, start: int = 0, width: int = 100) -> bytes:
    return b"".join(json.dumps({"n": n, "pad": "x" * width}).encode() + b"\n" for n in range(start, start + count))


def _records(folder: Path, prefix: str = "") -> list[int]:
    files = folder.glob(f"{prefix}*.jsonl")
    return sorted(json.loads(line)["n"] for p in files for line in p.read_text().splitlines())


def test_the_cap_holds_after_every_write_and_the_newest_records_stay(tmp_path: Path) -> None:
    log = SegmentedLog(tmp_path, "", max_bytes=10_000, max_age_seconds=3600)
    batch = len(_lines(5))
    for step in range(100):
        log.write(_lines(5, start=step * 5), now=1000.0 + step)
        assert held_bytes(tmp_path, "") == log.held_bytes <= 10_000
    kept = _records(tmp_path)
    assert kept == list(range(500 - len(kept), 500))  # the newest, without a gap
    assert len(kept) >= 5 * (10_000 - 10_000 // 8 - batch) // batch  # the cap less at most one segment's share
    dropped = retention(tmp_path, "")
    assert dropped["dropped_segments"] > 0
    assert 1000 < dropped["dropped_before"] < 1099


def test_segments_older_than_the_age_are_deleted_even_when_idle(tmp_path: Path) -> None:
    log = SegmentedLog(tmp_path, "spans-x.", max_bytes=1 << 20, max_age_seconds=60, segments=1000)
    log.write(_lines(20), now=1000.0)
    log.write(_lines(2000, start=20), now=1030.0)  # past the segment's share: a new segment
    assert len(list(tmp_path.glob("spans-x.*.jsonl"))) == 2
    log.expire(now=1070.0)
    assert _records(tmp_path) == list(range(20, 2020))
    log.expire(now=1100.0)
    assert _records(tmp_path) == []
    assert retention(tmp_path, "spans-x.")["dropped_before"] == 1030.0
    log.write(_lines(1, start=7), now=1101.0)  # writing after everything expired starts a new segment
    assert _records(tmp_path) == [7]


def test_a_write_larger_than_the_cap_keeps_its_newest_whole_lines(tmp_path: Path) -> None:
    log = SegmentedLog(tmp_path, "", max_bytes=1000, max_age_seconds=3600)
    log.write(_lines(50), now=1.0)
    kept = _records(tmp_path)  # every line parses: the cut is at a line's end
    assert kept == list(range(50 - len(kept), 50))
    assert 0 < held_bytes(tmp_path, "") <= 1000


def test_files_already_there_count_against_the_cap_and_go_first(tmp_path: Path) -> None:
    old = tmp_path / "2026-01-01.jsonl"  # one unbounded file, as before retention
    old.write_bytes(_lines(100))
    os.utime(old, (5.0, 5.0))
    log = SegmentedLog(tmp_path, "", max_bytes=len(_lines(100)) + 100, max_age_seconds=1e9)
    log.write(_lines(10, start=100), now=10.0)
    assert not old.exists()
    assert _records(tmp_path) == list(range(100, 110))


def test_another_prefix_is_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "spans-endpoint-a-b.2026-01-01T000000-000001.jsonl"  # endpoint `a-b`, beside endpoint `a`
    other.write_bytes(_lines(100))
    log = SegmentedLog(tmp_path, "spans-endpoint-a.", max_bytes=500, max_age_seconds=1)
    log.write(_lines(2), now=1e9)
    assert other.exists()
    assert log.held_bytes == held_bytes(tmp_path, "spans-endpoint-a.") <= 500


def test_writing_nothing_creates_no_segment(tmp_path: Path) -> None:
    SegmentedLog(tmp_path / "collected", "", max_bytes=100, max_age_seconds=1).write(b"", now=1.0)
    assert list((tmp_path / "collected").iterdir()) == []


def test_older_files_of_another_naming_count_when_named(tmp_path: Path) -> None:
    before = tmp_path / "spans-endpoint-a-4242.jsonl"  # one file a process, as span files were
    before.write_bytes(_lines(100))
    os.utime(before, (5.0, 5.0))
    other = tmp_path / "spans-endpoint-a-2b-4242.jsonl"  # endpoint `a-2b`'s
    other.write_bytes(_lines(100))
    log = SegmentedLog(
        tmp_path,
        "spans-endpoint-a.",
        max_bytes=len(_lines(100)) + 100,
        max_age_seconds=1e9,
        legacy=re.compile(r"spans-endpoint-a-\d+\.jsonl"),
    )
    log.write(_lines(10, start=100), now=10.0)
    assert not before.exists()
    assert other.exists()
    assert _records(tmp_path, "spans-endpoint-a.") == list(range(100, 110))


def test_a_write_in_pieces_keeps_every_chunk_in_order(tmp_path: Path) -> None:
    chunks = [_lines(1, start=n, width=n % 700) for n in range(3000)]  # ~1 MB, pieces of 4 KB: hundreds of writev
    descriptor = os.open(tmp_path / "out.jsonl", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        write_all(descriptor, chunks, piece_bytes=4096)
    finally:
        os.close(descriptor)
    assert (tmp_path / "out.jsonl").read_bytes() == b"".join(chunks)
    assert _records(tmp_path) == list(range(3000))

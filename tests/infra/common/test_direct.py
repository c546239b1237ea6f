"""Appending around the page cache (`infra.common.direct`), on real files of this machine's file system."""

from __future__ import annotations

import ctypes
import mmap
import os
import random
from pathlib import Path

import pytest

from infra.common.direct import BLOCK, Appender

_LIBC = ctypes.CDLL(None, use_errno=True)


def _cached_pages(path: Path) -> int:
    """Pages of `path` in the page cache now (mincore(2) on a mapping of the file, which reads nothing)."""
    size = path.stat().st_size
    with path.open("r+b") as handle, mmap.mmap(handle.fileno(), size) as mapped:
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapped))
        pages = -(-size // mmap.PAGESIZE)
        vector = (ctypes.c_ubyte * pages)()
        try:
            if _LIBC.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
            return sum(v & 1 for v in vector)
        finally:
            del address  # the mapping closes only without exported pointers


def _records(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    return [b'{"n": %d, "pad": "%s"}\n' % (n, b"x" * rng.randrange(0, 30_000)) for n in range(count)]


@pytest.mark.parametrize("direct", [True, False])
def test_every_byte_is_in_the_file_after_each_write_in_order(tmp_path: Path, direct: bool) -> None:
    path = tmp_path / "segment.jsonl"
    appender = Appender(direct=direct, capacity=BLOCK)  # grows as the writes need
    appender.open(path)
    assert appender.direct is direct  # this file system takes O_DIRECT (ext4 here; tmpfs too since Linux 6.6)
    records, expected, sizes = _records(1, 600), b"", random.Random(2)
    start = 0
    while start < len(records):  # calls of 1-60 records (15 KB each on average): direct and through the cache
        batch = records[start : start + sizes.randrange(1, 61)]
        start += len(batch)
        appender.write(batch)
        expected += b"".join(batch)
        assert path.read_bytes() == expected  # readers see the partial last block too
    assert appender.direct is direct  # never refused here
    appender.close()
    assert path.read_bytes() == expected


def test_direct_writes_leave_the_page_cache_alone(tmp_path: Path) -> None:
    written = {}
    for direct in (True, False):
        path = tmp_path / f"direct-{direct}.jsonl"
        appender = Appender(direct=direct)
        appender.open(path)
        for start in range(0, 600, 50):
            appender.write(_records(start, 50))  # ~750 KB a call: direct
        appender.close()
        written[direct] = (_cached_pages(path), -(-path.stat().st_size // mmap.PAGESIZE))
    (direct_cached, direct_pages), (buffered_cached, buffered_pages) = written[True], written[False]
    assert direct_pages > 1000  # megabytes each
    assert buffered_pages > 1000
    assert direct_cached <= 600 // 50 + 1  # a call's partial last block, which the next call completes
    assert buffered_cached > buffered_pages // 2  # the same writes through the page cache stay in it


def test_appending_to_a_file_with_a_partial_block_keeps_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    path.write_bytes(b"x" * (BLOCK + 123) + b"\n")
    appender = Appender()
    appender.open(path)
    appender.write(_records(2, 50))  # direct: the partial block is rewritten whole
    appender.close()
    assert path.read_bytes() == b"x" * (BLOCK + 123) + b"\n" + b"".join(_records(2, 50))


def test_small_writes_go_through_the_page_cache(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    appender = Appender()
    appender.open(path)
    for start in range(0, 600, 2):
        appender.write(_records(start, 2))  # ~30 KB a call
    appender.close()
    assert _cached_pages(path) > path.stat().st_size // mmap.PAGESIZE // 2


def test_a_file_deleted_meanwhile_is_created_again(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    appender = Appender()
    appender.open(path)
    appender.write(_records(3, 5))
    path.unlink()
    appender.write([b"after\n"])
    appender.close()
    assert path.read_bytes() == b"after\n"
    assert not list(tmp_path.glob(".*"))
    assert os.listdir(tmp_path) == ["segment.jsonl"]

"""Appending bulk records to a file around the page cache (O_DIRECT): records written once and read rarely.

Why: an endpoint's collected requests are its bulk writes (~25 KB a request at 100 rows: 60-80 MB/s at one
connection). Through the page cache each megabyte takes fresh pages, and the kernel writes them back later, on
whatever CPU is free: on a VM whose host takes back idle guest memory, the first touch of such a page cost
2.4 ms/MB of the writer's CPU, on the CPU of the server's event loop, and the write-back of one server's data
ran during the next measurement of another (issue 25; README, "The tail at one connection"). Written with
O_DIRECT, the bytes go from one reused, aligned buffer to the disk: no page taken, nothing left to write back.

An `Appender` writes a call of DIRECT_BYTES or more around the page cache: the bytes that complete the file's
partial last block go through the page cache, the whole blocks after them with O_DIRECT from one aligned buffer,
and the bytes past the last whole block through the page cache again, so a reader sees every line as soon as it
is written; no block is written both ways. A smaller call, or any call where the file system refuses O_DIRECT (at
open, or at the first write: EINVAL), goes through the page cache, as with any file.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
from collections.abc import Sequence
from pathlib import Path

from infra.common.yielding import give_way

BLOCK = 4096  # the alignment of an O_DIRECT write's offset, length and buffer (a page; a multiple of any sector)
_REFUSED = (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP)
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024
# Through the page cache, a write is cut into `writev`s of about this many bytes (see `write_all`): a write of
# megabytes in one call took 1.2-11.6 ms of CPU for 6 MB (20 KB records) on this 2-core VM, depending on the page
# cache's state, and in 260 KB pieces 1.6-1.9 ms: the writer thread, on the CPU of a server's event loop, takes it
# in short, steady turns.
WRITE_PIECE_BYTES = 256 * 1024
# A write of at least this many bytes goes around the page cache: the bulk (collected requests at 100 rows: ~750 KB
# every 10 ms at one connection). Smaller ones (1-row requests: ~40 KB) go through it: there a direct write's
# synchronous I/O costs more than the few pages it spares. Side by side, p99/p50 at 1 row and one connection:
# 3.11x with writes from 16 KiB direct against 2.46x from 256 KiB (server CPU 224 against 205 us a request); 100 rows
# alike (2.81x, 2.77x). A first version wrote every write direct, rewriting the partial last block: 3.4x at 1 row.
DIRECT_BYTES = 256 * 1024
# A direct write goes in system calls of at most this many bytes (whole blocks), the writer giving way between them
# (`infra.common.yielding`): a request waits for the system call under way, not for the whole write (a batch at 100
# rows and one connection, ~750 KB, is one call). Smaller pieces did not help: after the writer's 10 ms pause the
# first call is the dear one (720 KB whole: longest call 195-267 us of CPU; in 128-256 KiB pieces 157-223 us, the
# total doubled), and in 256 KiB pieces the writer fell behind in the flood test (+108 MB against +23-36 MB).
DIRECT_PIECE_BYTES = 1024 * 1024


class Appender:
    """Appends to one file at a time (`open`, `write`, `close`); `direct=False` goes through the page cache."""

    def __init__(self, *, direct: bool = True, capacity: int = 1 << 20) -> None:
        self._direct_wanted = direct
        self._buffer = mmap.mmap(-1, _blocks(capacity))  # page-aligned; reused from file to file
        self._appending = -1  # the file through the page cache (O_APPEND)
        self._direct: int | None = None  # the same file, O_DIRECT
        self._fill = 0  # bytes in the buffer: a write's, from the first whole block on
        self._path: Path | None = None

    @property
    def direct(self) -> bool:
        """Whether large writes go around the page cache (O_DIRECT opened, and not refused)."""
        return self._direct is not None

    def open(self, path: Path) -> None:
        """Append to `path` from now on (created if missing); closes the file appended to before."""
        self.close()
        self._path = path
        self._appending = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        flag = getattr(os, "O_DIRECT", 0)  # Linux
        if self._direct_wanted and flag:
            with contextlib.suppress(OSError):  # refused by the file system: the page cache
                self._direct = os.open(path, os.O_WRONLY | flag)

    def write(self, chunks: Sequence[bytes]) -> None:
        """Append `chunks` in order: DIRECT_BYTES or more around the page cache, less through it. A file deleted
        meanwhile is created again (as a write by name would). Raises OSError (this call's bytes not written lost)."""
        if self._path is not None and os.fstat(self._appending).st_nlink == 0:
            self.open(self._path)
        if self._direct is None or sum(map(len, chunks)) < DIRECT_BYTES:
            write_all(self._appending, chunks, WRITE_PIECE_BYTES)
            return
        on_disk = os.fstat(self._appending).st_size
        need = -on_disk % BLOCK  # the bytes that complete the file's partial last block: through the page cache
        head: list[bytes | memoryview] = []
        self._fill = 0
        for chunk in chunks:
            if need:
                head.append(memoryview(chunk)[:need])
                need -= len(head[-1])
                self._take(memoryview(chunk)[len(head[-1]) :])
            else:
                self._take(chunk)
        give_way()  # the copy done (the GIL held), before the system calls
        if head:
            write_all(self._appending, head)
        whole = self._fill - self._fill % BLOCK  # from a block's start: whole blocks around the page cache
        done = whole if self._write_direct(on_disk + sum(map(len, head)), whole) else 0
        if self._fill > done:  # the rest: the new partial last block (or all, if refused), through the page cache
            rest = memoryview(self._buffer)[done : self._fill]
            if os.write(self._appending, rest) < len(rest):
                raise OSError(errno.EIO, f"short write to {self._path}")

    def close(self) -> None:
        """Close the file (every byte written is already in it)."""
        for descriptor in (self._direct, self._appending):
            if descriptor is not None and descriptor >= 0:
                os.close(descriptor)
        self._direct, self._appending = None, -1

    def _take(self, data: bytes | memoryview) -> None:
        end = self._fill + len(data)
        if end > len(self._buffer):  # a larger buffer (not `resize`: a shared anonymous map grown faults)
            larger = mmap.mmap(-1, _blocks(max(end, 2 * len(self._buffer))))
            larger[: self._fill] = self._buffer[: self._fill]
            self._buffer.close()
            self._buffer = larger
        self._buffer[self._fill : end] = data
        self._fill = end

    def _write_direct(self, base: int, whole: int) -> bool:
        """The buffer's first `whole` bytes (whole blocks) to the file at `base` (its end, a block's start), with
        O_DIRECT; False when the file system refused it at once (the file then goes through the page cache)."""
        assert self._direct is not None
        done = 0
        try:
            while done < whole:  # in pieces, giving way between them (`infra.common.yielding`)
                if done:
                    give_way()
                end = min(whole, done + DIRECT_PIECE_BYTES)
                done += os.pwrite(self._direct, memoryview(self._buffer)[done:end], base + done)
        except OSError as error:
            if error.errno not in _REFUSED or done:
                raise
            os.close(self._direct)
            self._direct = None
            return False
        return True


def _blocks(size: int) -> int:
    return max(BLOCK, -(-size // BLOCK) * BLOCK)


def write_all(descriptor: int, chunks: Sequence[bytes | memoryview], piece_bytes: int = 0) -> None:
    """Write every chunk to `descriptor` in order: `writev` (the GIL released, no joined copy), IOV_MAX at a time.

    With `piece_bytes`, each `writev` takes whole chunks up to about that many bytes (`WRITE_PIECE_BYTES`)."""
    start = 0
    while start < len(chunks):
        end, size = start, 0
        while end < len(chunks) and end - start < _IOV_MAX and (not piece_bytes or not size or size < piece_bytes):
            size += len(chunks[end])
            end += 1
        batch = chunks[start:end]
        written = os.writev(descriptor, batch)
        rest = b"".join(batch)[written:] if written < size else b""
        while rest:  # a short write (a pipe, a signal): the remainder, as one buffer
            rest = rest[os.write(descriptor, rest) :]
        start = end

"""Keep one long-lived process running, and its output in a log of bounded size.

    python -m infra.services.supervisor --pid-file F --status S --log L [--max-bytes N] [--files K]
        [--stop-signal TERM] [--stable-seconds 10] -- COMMAND...

The supervisor starts COMMAND with the parent-death signal set (`infra/services/deathsig.py`, which also
refuses to start it when the supervisor died first), so the process dies with its supervisor even on
`kill -9`. It writes
the process's pid to F (what the callers check and what the process's health answers with), and
its own state to S as JSON: `state` (running, restarting, crash-loop, stopped), `pid`,
`supervisor_pid`, `starts`, `restarts`, `last_exit` ("exit 1", "killed by SIGKILL"),
`last_exit_at`, `next_start_at`.

When the process exits for any reason but a stop, it is started again: after 0.5 s, doubling for
every exit in a row within `--stable-seconds` of its start (1, 2, 4 … at most 30 s). Three such
quick exits in a row are a crash loop: the state says so, and it keeps retrying at the slow pace.

The process's stdout and stderr go through one pipe to a writer thread that appends whole lines to
L and rotates it by size: L, L.1 … L.<K-1> (K files at most, each about N bytes). One writer, whole
lines: no line is lost or cut across a rotation. SIGTERM (or SIGINT) stops the process with
`--stop-signal`, SIGKILL after 15 s, then drains the pipe and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.services import deathsig

FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 30.0
CRASH_LOOP_EXITS = 3
STOP_TIMEOUT_SECONDS = 15.0
_PIPE_BYTES = 1 << 20  # the pipe holds a second of a busy endpoint's log: a slow disk never blocks the process
_READ_BYTES = 1 << 20
_READ_PAUSE_SECONDS = 0.05  # read at most 20 times a second: a busy log costs a few system calls, not one per write
MODULE = "infra.services.supervisor"


class RotatingLog:
    """Append whole lines to `path`; past `max_bytes`, rename it to `path.1` (and so on up to `files - 1`)."""

    def __init__(self, path: Path, max_bytes: int, files: int) -> None:
        self.path = path
        self.max_bytes = max(1024, max_bytes)
        self.files = max(1, files)
        self._lock = threading.Lock()
        self._handle = path.open("ab", buffering=0)
        self._size = self._handle.tell()

    def write(self, data: bytes | bytearray, end: int | None = None) -> None:
        """Write `data[:end]` (whole lines; all of `data` without `end`) from where it lies, no copy; a rotation
        only ever happens between two lines."""
        start, end = 0, len(data) if end is None else end
        view = memoryview(data)
        with self._lock:
            while start < end:
                room = self.max_bytes - self._size
                if end - start <= room:
                    cut = end
                else:
                    cut = data.rfind(b"\n", start, start + max(room, 0)) + 1  # 0: no line ends in the room
                    if cut == 0 and self._size == 0:  # one line longer than a whole file: it goes in whole
                        cut = data.find(b"\n", start, end) + 1 or end
                if cut > start:
                    self._handle.write(view[start:cut])
                    self._size += cut - start
                    start = cut
                if start < end:
                    self._rotate()

    def line(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.write(json.dumps({"time": stamp, "supervisor": text}).encode() + b"\n")

    def _rotate(self) -> None:
        self._handle.close()
        if self.files == 1:
            self.path.unlink(missing_ok=True)
        else:
            oldest = self.path.with_name(f"{self.path.name}.{self.files - 1}")
            oldest.unlink(missing_ok=True)
            for index in range(self.files - 2, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.rename(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        self._handle = self.path.open("ab", buffering=0)
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def rotated_files(path: Path) -> list[Path]:
    """A rotating log's files, oldest first, ending with `path` itself."""
    numbered = []
    for candidate in path.parent.glob(f"{path.name}.*"):
        suffix = candidate.name.removeprefix(f"{path.name}.")
        if suffix.isdigit():
            numbered.append((int(suffix), candidate))
    return [p for _, p in sorted(numbered, reverse=True)] + ([path] if path.exists() else [])


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return status


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.command: list[str] = args.command
        self.pid_file = Path(args.pid_file)
        self.status_file = Path(args.status)
        self.stop_signal = signal.Signals[f"SIG{args.stop_signal.upper().removeprefix('SIG')}"]
        self.stable_seconds = args.stable_seconds
        self.log = RotatingLog(Path(args.log), args.max_bytes, args.files)
        self.status: dict[str, Any] = {
            "state": "starting",
            "pid": None,
            "supervisor_pid": os.getpid(),
            "command": self.command,
            "starts": 0,
            "restarts": 0,
            "last_exit": None,
            "last_exit_at": None,
            "next_start_at": None,
            "log": str(self.log.path),
            "log_max_bytes": self.log.max_bytes,
            "log_files": self.log.files,
        }
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self.read_end, self.write_end = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.write_end, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)

    # ---- the output ----
    def _copy_output(self) -> None:
        """Copy the child's output to the log, whole lines, through one buffer read into again and again: a
        fresh buffer each read took fresh memory, page faults that on some machines cost more than the copy."""
        buffer = bytearray(_READ_BYTES)
        view = memoryview(buffer)
        kept = 0  # the bytes of an unfinished line, at the buffer's start
        while True:
            count = os.readv(self.read_end, [view[kept:]])
            if not count:
                break
            time.sleep(_READ_PAUSE_SECONDS)  # let the next writes gather in the pipe
            filled = kept + count
            # whole lines; a line longer than the whole buffer goes out in pieces
            end = buffer.rfind(b"\n", 0, filled) + 1 or (filled if filled == len(buffer) else 0)
            if end:
                self.log.write(buffer, end)
                view[: filled - end] = bytes(view[end:filled])
            kept = filled - end
        if kept:
            self.log.write(bytes(view[:kept]) + b"\n")

    # ---- the process ----
    def _start(self) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            deathsig.command(self.command), stdin=subprocess.DEVNULL, stdout=self.write_end, stderr=self.write_end
        )
        self.status["starts"] += 1
        self.status.update(pid=child.pid, state="running", next_start_at=None)
        self._save()  # before the pid file: a reader that finds the new pid also finds it running, never restarting
        temporary = self.pid_file.with_name(f".{self.pid_file.name}.{os.getpid()}")
        temporary.write_text(str(child.pid))
        os.replace(temporary, self.pid_file)
        return child

    def _save(self) -> None:
        temporary = self.status_file.with_name(f".{self.status_file.name}.{os.getpid()}")
        temporary.write_text(json.dumps(self.status, indent=2) + "\n")
        os.replace(temporary, self.status_file)

    def _on_signal(self, signum: int, frame: object) -> None:  # noqa: ARG002
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(self.stop_signal)
            killer = threading.Timer(STOP_TIMEOUT_SECONDS, _kill_if_running, args=(child,))
            killer.daemon = True
            killer.start()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        reader = threading.Thread(target=self._copy_output, name="supervisor-log", daemon=True)
        reader.start()
        quick_exits = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            self.child = self._start()
            if self.stopping.is_set():  # a stop that came while it started
                self._on_signal(signal.SIGTERM, None)
            code = self._wait(self.child)
            if self.stopping.is_set():
                break
            reason = _describe(code)
            lived = time.monotonic() - started
            quick_exits = quick_exits + 1 if lived < self.stable_seconds else 0
            delay = min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** max(0, quick_exits - 1))
            crash_loop = quick_exits >= CRASH_LOOP_EXITS
            self.status.update(
                pid=None,
                state="crash-loop" if crash_loop else "restarting",
                restarts=self.status["restarts"] + 1,
                last_exit=reason,
                last_exit_at=_now(),
                next_start_at=datetime.fromtimestamp(time.time() + delay, UTC).isoformat(timespec="milliseconds"),
            )
            self._save()
            what = f"crash loop ({quick_exits} exits in a row within {self.stable_seconds:g} s of a start)"
            self.log.line(
                f"{' '.join(self.command[:3])}: {reason} after {lived:.1f} s; "
                + (f"{what}; " if crash_loop else "")
                + f"starting it again in {delay:g} s"
            )
            self.stopping.wait(delay)
        self.status.update(state="stopped", pid=None, next_start_at=None)
        self._save()
        self.pid_file.unlink(missing_ok=True)
        os.close(self.write_end)
        reader.join(timeout=10)
        self.log.close()
        return 0

    def _wait(self, child: subprocess.Popen[bytes]) -> int:
        """Block until the child exits (no polling); a stop signal is handled meanwhile and the wait goes on."""
        return child.wait()


def _kill_if_running(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            child.kill()


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit {code}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def supervisor_command(
    command: list[str],
    *,
    pid_file: Path,
    status: Path,
    log: Path,
    max_bytes: int,
    files: int,
    stop_signal: str = "TERM",
    stable_seconds: float = 10.0,
) -> list[str]:
    """The command line that runs `command` under a supervisor."""
    return [
        sys.executable,
        "-m",
        MODULE,
        "--pid-file",
        str(pid_file),
        "--status",
        str(status),
        "--log",
        str(log),
        "--max-bytes",
        str(max_bytes),
        "--files",
        str(files),
        "--stop-signal",
        stop_signal,
        "--stable-seconds",
        str(stable_seconds),
        "--",
        *command,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--max-bytes", type=int, default=50 << 20)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--stop-signal", default="TERM")
    parser.add_argument("--stable-seconds", type=float, default=10.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command to supervise (after --)")
    return Supervisor(args).run()


if __name__ == "__main__":
    sys.exit(main())

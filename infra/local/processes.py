"""Long-lived helper processes (the endpoint server, Azurite, the Prefect server and worker): start detached, check, stop by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from infra.errors import BackendError


def spawn_detached(command: list[str], env: dict[str, str], log: Path) -> int:
    """Start a long-lived process in a session of its own, output appended to `log`; return its pid.

    `posix_spawn` leaves no `Popen` object behind to complain that the server outlives it.
    """
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(command[0], command, env, file_actions=actions, setsid=True)


def live_pid(pid_file: Path, *arguments: str) -> int | None:
    """The pid in `pid_file` when that process runs and its command line holds each of `arguments`, else None.

    The arguments tell our process from another: a stale pid file, or a pid the system has since
    given to another program, is not taken for the server.
    """
    try:
        pid = int(pid_file.read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if not all(argument.encode() in command for argument in arguments):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    """Whether the process runs (reaping it first if it is a finished child of ours)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def terminate(pid: int, timeout: float = 15, sig: signal.Signals = signal.SIGTERM) -> None:
    """`sig` (SIGTERM unless said), then SIGKILL after `timeout` seconds."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def await_start(
    pid: int,
    ready: Callable[[], bool],
    *,
    what: str,
    log: Path,
    hint: str,
    timeout: float,
    interval: float = 0.1,
    stop_on_timeout: bool = False,
) -> None:
    """Wait until `ready()` while the process `pid` lives; `BackendError` with its log's tail if it exits first.

    `what` names the process in the messages and `hint` says what to check when it exits (a taken port, say).
    Past `timeout` the process is stopped (with `stop_on_timeout`) and `BackendError` names the log.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:]) if log.is_file() else ""
            raise BackendError(f"{what} exited at start ({hint}):\n{tail}")
        if ready():
            return
        time.sleep(interval)
    if stop_on_timeout:
        terminate(pid)
    raise BackendError(f"{what} did not answer within {timeout:g} s; see {log}")

"""Long-lived helper processes (the endpoint server, Azurite, PostgreSQL, the Prefect server and worker, the
Azure ML emulator): started detached under a supervisor (`infra.services.supervisor`: restarted when they
die, output in a log rotated by size), checked by pid, stopped through their supervisor."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.errors import BackendError
from infra.services.supervisor import MODULE as SUPERVISOR_MODULE
from infra.services.supervisor import read_status, supervisor_command

DEFAULT_LOG_MAX_BYTES = 50 << 20
DEFAULT_LOG_FILES = 5


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
    """Whether the process runs (reaping it first if it is a finished child of ours). A zombie does not: it has
    exited, and only waits for its parent to collect its status. A detached process's parent is the machine's init,
    which may collect it late (every 2 s on this project's test machine), and every stop waited that long for it."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _exited(pid)


def _exited(pid: int) -> bool:
    """Whether `pid` is a zombie (state Z, or X while it is being removed), from /proc/<pid>/stat: the state
    follows the command's name in parentheses, which may itself hold spaces and parentheses."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux), or it has just gone: kill(pid, 0) said it was there
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] in ("Z", "X")


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


def supervisor_status_file(pid_file: Path) -> Path:
    """Where the supervisor of the process behind `pid_file` keeps its state."""
    return pid_file.with_name(f"{pid_file.stem}.supervisor.json")


def log_limits() -> tuple[int, int]:
    """(bytes per log file, files kept): MLOPS_LOG_MAX_BYTES and MLOPS_LOG_FILES."""
    from infra.errors import ConfigError
    from infra.settings import load_settings

    try:
        settings = load_settings()
    except ConfigError:
        return DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_FILES
    return settings.log_max_bytes, settings.log_files


def spawn_supervised(
    command: list[str],
    env: dict[str, str],
    *,
    log: Path,
    pid_file: Path,
    stop_signal: str = "TERM",
    timeout: float = 10,
) -> int:
    """Start `command` under a detached supervisor (restarted when it dies, its output in `log`, rotated);
    return the process's pid once the supervisor has written it to `pid_file`."""
    status = supervisor_status_file(pid_file)
    pid_file.unlink(missing_ok=True)
    status.unlink(missing_ok=True)
    max_bytes, files = log_limits()
    own_log = log.with_name(f"{log.name}.supervisor")
    supervisor = spawn_detached(
        supervisor_command(
            command,
            pid_file=pid_file,
            status=status,
            log=log,
            max_bytes=max_bytes,
            files=files,
            stop_signal=stop_signal,
        ),
        env,
        own_log,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(pid_file.read_text())
        if not alive(supervisor):
            tail = own_log.read_text(errors="replace").strip().splitlines()[-5:] if own_log.is_file() else []
            raise BackendError(f"the supervisor of {command[0]} exited at start: " + "\n".join(tail))
        time.sleep(0.02)
    terminate(supervisor)
    raise BackendError(f"the supervisor of {command[0]} started no process within {timeout:g} s; see {own_log}")


def supervisor_pid(pid_file: Path) -> int | None:
    """The live supervisor of the process behind `pid_file`, or None."""
    status = read_status(supervisor_status_file(pid_file)) or {}
    pid = status.get("supervisor_pid")
    if not isinstance(pid, int):
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if SUPERVISOR_MODULE.encode() not in command or str(pid_file).encode() not in command:
        return None
    return pid if alive(pid) else None


def stop_supervised(pid_file: Path, *arguments: str, timeout: float = 25) -> bool:
    """Stop the process behind `pid_file` through its supervisor (which stops it first), else by its own pid.
    False when neither ran. Either way its state says `stopped` after: a stop is never taken for a lost
    supervisor (`supervisor_lost`), even when the supervisor had to be killed."""
    supervisor = supervisor_pid(pid_file)
    if supervisor is not None:
        terminate(supervisor, timeout)
        _record_stopped(pid_file)
        return True
    pid = live_pid(pid_file, *arguments)
    if pid is None:
        _record_stopped(pid_file)
        return False
    terminate(pid, timeout)
    _record_stopped(pid_file)
    return True


def _record_stopped(pid_file: Path) -> None:
    pid_file.unlink(missing_ok=True)
    status_file = supervisor_status_file(pid_file)
    status = read_status(status_file)
    if status is not None and status.get("state") != "stopped":
        status.update(state="stopped", pid=None, next_start_at=None)
        temporary = status_file.with_name(f".{status_file.name}.{os.getpid()}")
        temporary.write_text(json.dumps(status, indent=2) + "\n")
        os.replace(temporary, status_file)


def boot_time() -> float:
    """When the machine started (epoch seconds), from /proc/stat; 0 when it cannot be read."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def supervisor_lost(pid_file: Path) -> dict[str, Any] | None:
    """How the supervisor of the process behind `pid_file` went, when it went without stopping it (`kill -9`, an
    out-of-memory kill, a reboot): its state file still says it supervises, and no such supervisor runs. Else None.

    `supervisor_pid` is the pid it had; `last_seen_at` its last sign of life (its state file's or its log's last
    write, whichever is newer: it died after that); `rebooted_at` the machine's start when that came later.
    """
    status_file = supervisor_status_file(pid_file)
    status = read_status(status_file)
    if status is None or status.get("state") in ("stopped", None) or supervisor_pid(pid_file) is not None:
        return None
    seen = [status_file]
    if isinstance(status.get("log"), str):
        seen.append(Path(status["log"]))
    last_seen = max((path.stat().st_mtime for path in seen if path.is_file()), default=0.0)
    booted = boot_time()
    return {
        "supervisor_pid": status.get("supervisor_pid"),
        "last_seen_at": _stamp(last_seen),
        "rebooted_at": _stamp(booted) if booted > last_seen else None,
    }


def lost_reason(lost: dict[str, Any]) -> str:
    """`supervisor pid 4242 died (killed?) after 2026-12-06T19:40:01.000+00:00, recording no stop`."""
    if lost["rebooted_at"]:
        return (
            f"supervisor pid {lost['supervisor_pid']} is gone: the machine restarted at {lost['rebooted_at']}"
            f" (last seen at {lost['last_seen_at']})"
        )
    return f"supervisor pid {lost['supervisor_pid']} died (killed?) after {lost['last_seen_at']}, recording no stop"


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def health(pid_file: Path, *arguments: str) -> dict[str, object]:
    """What `mlops status` says of one supervised process: its state, pid, restarts and last exit. A process
    whose supervisor went without stopping it is `down`, and `reason` says how (`supervisor_lost`)."""
    status = read_status(supervisor_status_file(pid_file)) or {}
    supervised = supervisor_pid(pid_file) is not None
    pid = live_pid(pid_file, *arguments)
    lost = None if supervised else supervisor_lost(pid_file)
    state = status.get("state", "stopped") if supervised else ("running (unsupervised)" if pid else "stopped")
    if lost is not None and pid is None:
        state = "down"
    report: dict[str, object] = {
        "state": state,
        "pid": pid,
        "supervised": supervised,
        "restarts": status.get("restarts", 0),
        "last_exit": status.get("last_exit"),
        "last_exit_at": status.get("last_exit_at"),
        "next_start_at": status.get("next_start_at") if supervised else None,
    }
    if lost is not None:
        report["reason"] = lost_reason(lost)
    return report


def start_supervised(
    command: list[str],
    env: dict[str, str],
    *,
    log: Path,
    pid_file: Path,
    ready: Callable[[int], bool],
    what: str,
    hint: str,
    timeout: float,
    interval: float = 0.1,
    stop_signal: str = "TERM",
) -> int:
    """Start `command` under a supervisor and wait until `ready(pid)`; return its pid.

    A process that exits before it was ever ready (a taken port, a bad setting) fails the start with its
    log's tail, and its supervisor is stopped: a restart would only fail again. Past `timeout` the same.
    """
    ours = supervisor_pid(pid_file) is None  # else its supervisor is between two starts: wait for it
    if ours:
        spawn_supervised(command, env, log=log, pid_file=pid_file, stop_signal=stop_signal)
    status_file = supervisor_status_file(pid_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(status_file) or {}
        if ours and status.get("restarts", 0) > 0:
            stop_supervised(pid_file)
            raise BackendError(f"{what} exited at start ({status.get('last_exit')}; {hint}):\n{log_tail(log)}")
        current = status.get("pid")
        if isinstance(current, int) and ready(current):
            return current
        time.sleep(interval)
    if ours:
        stop_supervised(pid_file)
        raise BackendError(f"{what} did not answer within {timeout:g} s; see {log}")
    raise BackendError(
        f"{what} is restarting and did not answer within {timeout:g} s ({status.get('state')}); see {log}"
    )


def log_tail(log: Path, lines: int = 8) -> str:
    """The last lines of a rotating log (its newest file that holds any)."""
    from infra.services.supervisor import rotated_files

    for path in reversed(rotated_files(log)):
        text = path.read_text(errors="replace").strip().splitlines()
        if text:
            return "\n".join(text[-lines:])
    return ""

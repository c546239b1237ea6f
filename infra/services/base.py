"""The one shape of a long-lived local process: the endpoint server, PostgreSQL, Azurite, the platform's Prefect
server and worker, and the Azure ML emulator.

Each lives in a folder of its own (or shares the platform's) as

    <folder>/<stem>.pid               its pid, written by its supervisor (`infra.services.supervisor`)
    <folder>/<stem>.supervisor.json   the supervisor's state: restarts, last exit
    <folder>/<stem>.log               its output, rotated by size

and is told from another program by arguments of its command line (`identity`): a stale pid file, or a pid
since given to another program, is not taken for it. A subclass sets `folder`, `stem` and `identity`, and
writes its own `start` (what to run, and how to tell it is ready) on top of `supervise`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from infra.services.processes import health, live_pid, start_supervised, stop_supervised


class SupervisedService(ABC):
    """A process started detached under a supervisor, checked by pid, stopped through its supervisor."""

    folder: Path
    stem: str
    stop_timeout: float = 25  # seconds from the stop signal to SIGKILL

    @abstractmethod
    def identity(self) -> tuple[str, ...]:
        """Arguments its command line holds, and no other program's would."""

    @property
    def pid_file(self) -> Path:
        return self.folder / f"{self.stem}.pid"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.stem}.log"

    def pid(self) -> int | None:
        """Its pid while it runs, else None."""
        return live_pid(self.pid_file, *self.identity())

    def health(self) -> dict[str, object]:
        """What `mlops status` says of it: its supervisor's state, pid, restarts and last exit."""
        return health(self.pid_file, *self.identity())

    def stop(self, timeout: float | None = None) -> bool:
        """Stop it through its supervisor (its stop signal, then SIGKILL after `timeout`, default `stop_timeout`
        seconds); False when it was not running."""
        return stop_supervised(
            self.pid_file, *self.identity(), timeout=self.stop_timeout if timeout is None else timeout
        )

    def supervise(
        self,
        command: list[str],
        env: dict[str, str],
        *,
        ready: Callable[[int], bool],
        what: str,
        hint: str,
        timeout: float,
        interval: float = 0.1,
        stop_signal: str = "TERM",
    ) -> int:
        """Start `command` under a supervisor, its pid and log in this service's files, and wait until `ready(pid)`;
        its pid. A process that exits before it was ever ready fails the start with its log's tail
        (`infra.services.processes.start_supervised`)."""
        return start_supervised(
            command,
            env,
            log=self.log,
            pid_file=self.pid_file,
            ready=ready,
            what=what,
            hint=hint,
            timeout=timeout,
            interval=interval,
            stop_signal=stop_signal,
        )

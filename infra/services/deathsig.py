"""Run a command that dies with the process that started it, even on that process's `kill -9`.

    python -S infra/services/deathsig.py PARENT_PID COMMAND...    (standard library only)

It sets its parent-death signal (`prctl(PR_SET_PDEATHSIG, SIGTERM)`), then checks that its parent is still
PARENT_PID, then replaces itself with COMMAND (`exec`: the same pid, and the signal is kept across it).

The check is the point. The signal is sent only for a parent that dies after it is set, so a parent killed
between the fork and the `prctl` leaves the child an orphan for good. util-linux's `setpriv --pdeathsig` has
that window (it does not check), and `kill -9` at the moment a command starts its server hit it: the
temporary Prefect server of a killed `mlops train` ran on, reparented to init (tests/e2e/
test_no_orphans.py). Here a child whose parent is already gone exits instead of starting COMMAND.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PARENT_GONE = 125  # the exit code when the parent died before the signal was set: COMMAND never ran


def command(argv: list[str], parent: int | None = None) -> list[str]:
    """`argv` wrapped to die with `parent` (default: this process). For `subprocess.Popen`."""
    here = str(Path(__file__).resolve())
    return [sys.executable, "-S", here, str(os.getpid() if parent is None else parent), *argv]


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: deathsig.py PARENT_PID COMMAND...", file=sys.stderr)  # noqa: T201
        return 2
    parent, program = int(argv[0]), argv[1:]
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        print(f"deathsig: prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)  # noqa: T201
        return 2
    if os.getppid() != parent:
        return _PARENT_GONE
    try:
        os.execvp(program[0], program)
    except OSError as error:
        print(f"deathsig: {program[0]}: {error.strerror}", file=sys.stderr)  # noqa: T201
        return 127
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

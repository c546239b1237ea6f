"""Run a command so that it, and every process it starts, dies with the caller, even on the caller's `kill -9`.

    python infra/services/guard.py --parent PID -- COMMAND...     (standard library only: no PYTHONPATH needed)

The guard sets its own parent-death signal (`prctl(PR_SET_PDEATHSIG)`), runs COMMAND in the
guard's process group (the caller starts the guard as a group leader), and when its parent dies kills the
whole group: the training command, and whatever it started (an R process, a shell's children).
The guard exits as COMMAND did, killed by the same signal when COMMAND was.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1


def _kill_group(signum: int, frame: object) -> None:  # noqa: ARG001
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--parent" or argv[2] != "--":
        print("usage: guard.py --parent PID -- COMMAND...", file=sys.stderr)  # noqa: T201
        return 2
    parent, command = int(argv[1]), argv[3:]
    signal.signal(signal.SIGTERM, _kill_group)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was set
        _kill_group(signal.SIGTERM, None)
    try:
        child = subprocess.Popen(command)
    except FileNotFoundError:
        print(f"error: {command[0]}: no such program", file=sys.stderr)  # noqa: T201
        return 127
    code = child.wait()
    if code < 0:  # killed by a signal: so are we, so the caller sees the same
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

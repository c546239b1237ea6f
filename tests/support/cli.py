"""`run_mlops`: the one way tests run the `mlops` command.

In this process by default (`cli.main.invoke`): a child process pays about 2.3 s of imports
before it does anything, and most tests are about what a command does, not about process boundaries.
With `in_process=False`, a child process as a user's shell would start, for the tests that are about
the process itself: exit codes after a kill, signals, a fresh clone, `mlops up` and the servers it leaves.

Either way the answer is a `subprocess.CompletedProcess` (returncode, stdout, stderr), stdout ending
with the command's summary as the program prints it, so a test reads the same in both modes.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

CODE_ROOT = Path(__file__).resolve().parents[2]


def run_mlops(
    *args: str,
    env: dict[str, str | None] | None = None,
    api_url: str | None = None,
    in_process: bool = True,
    inherit: bool = True,
    cwd: Path | None = None,
    timeout: float = 600,
    priority: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`mlops <args>` with `env` added to this process's environment (a None value: the variable unset;
    `inherit=False`: `env` is the whole environment of a child process) and, when given, PREFECT_API_URL. `priority`: the child (and what it
    starts) runs at the machine's normal priority, ahead of the other test workers (see `WORKER_NICENESS`)."""
    extra = {**(env or {}), **({"PREFECT_API_URL": api_url} if api_url else {})}
    if not in_process or not inherit or cwd is not None or priority:
        child = {**os.environ, **extra} if inherit else extra
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            capture_output=True,
            text=True,
            env={name: value for name, value in child.items() if value is not None},
            cwd=cwd,
            check=False,
            timeout=timeout,
            preexec_fn=_normal_priority if priority else None,
        )
    return _in_process(list(args), extra)


WORKER_NICENESS = 5  # xdist workers run at this niceness (tests/conftest.py); `priority` children at 0


def _normal_priority() -> None:
    """In the child before exec: back to niceness 0 (allowed to root; elsewhere it stays as it was)."""
    with contextlib.suppress(OSError):
        os.nice(-os.nice(0))


def _in_process(argv: list[str], env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    from cli.main import invoke

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                outcome = invoke(argv)
            except SystemExit as exc:  # argparse: a bad argument
                code = exc.code if isinstance(exc.code, int) else 2
                return subprocess.CompletedProcess(["mlops", *argv], code, out.getvalue(), err.getvalue())
    summary = "".join(f"{line}\n" for line in outcome.summary)
    return subprocess.CompletedProcess(["mlops", *argv], outcome.code, out.getvalue() + summary, err.getvalue())

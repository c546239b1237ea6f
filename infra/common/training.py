"""What both training backends and the Azure ML emulator's job runner share: attempt names, running a job's
command under the guard, a failed job's error, and reading a finished job's outputs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.backend import TrainOutput
from infra.services import guard
from model import layout

_LOG_TAIL_LINES = 20
MAX_ATTEMPTS = 100
GUARD = Path(guard.__file__).resolve()  # run by path: the standard library only


def run_logged(
    command: list[str],
    *,
    env: dict[str, str],
    log: Path,
    timeout: float,
    cwd: Path | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> int | None:
    """Run a job's command with its output in `log`; its exit code (negative: killed by that signal).

    None when it ran past `timeout` seconds or `cancelled()` turned true: it is stopped then, with its
    whole process group (a job's own children do not outlive it). The local backend and the Azure ML
    emulator both run jobs through here.
    """
    if shutil.which(command[0], path=env.get("PATH")) is None and not Path(command[0]).is_file():
        raise FileNotFoundError(command[0])
    # the job, and all it starts, dies with this process even on its kill -9 (infra.services.guard)
    # (run as a file: it needs no PYTHONPATH, so the job's environment is exactly `env`)
    command = [sys.executable, str(GUARD), "--parent", str(os.getpid()), "--", *command]
    with log.open("w") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    return process.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline or cancelled():
                        break
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return None


def attempt_name(base: str, attempt: int) -> str:
    """The job name of a training attempt: `base` first, then `base-r1`, `base-r2`, ... (both backends)."""
    return base if attempt == 0 else f"{base}-r{attempt}"


def job_error(log_text: str) -> str:
    """A failed job's own error: its last `error: ...` line (how `models.diabetes.train` reports bad input), else its log's tail."""
    tail = log_text.strip().splitlines()[-_LOG_TAIL_LINES:]
    errors = [line.removeprefix("error: ") for line in tail if line.startswith("error: ")]
    return errors[-1] if errors else "\n".join(tail)


def collect_outputs(job_name: str, outputs: Path, *, log: Path, reattached: bool) -> TrainOutput:
    """A finished job's result: the metrics, environment and training record in its `outputs` folder."""

    def read(name: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((outputs / name).read_text())
        return document

    return TrainOutput(
        job_name=job_name,
        outputs=outputs,
        metrics={k: float(v) for k, v in read(layout.METRICS_FILE).items()},
        environment=read(layout.ENVIRONMENT_FILE),
        training=read(layout.TRAINING_FILE),
        log=log,
        reattached=reattached,
    )

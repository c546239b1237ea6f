"""Local training jobs: the model package's training command in a subprocess, laid out like an Azure ML job.

    <home>/jobs/<job_name>/inputs/parameters.json
    <home>/jobs/<job_name>/outputs/            the model's files, metrics.json, environment.json, training.json
    <home>/jobs/<job_name>/user_logs/std_log.txt

A job whose outputs already exist is re-attached, not run again (as a retried Azure task would). A job
that failed keeps its folder (with `failed.txt`) and the next attempt runs as `<job_name>-r1`, as on
Azure ML, where a job name is never freed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from infra.backend import TrainOutput, TrainSpec
from infra.common.training import MAX_ATTEMPTS, attempt_name, collect_outputs, job_error, run_logged
from infra.errors import JobFailedError, TransientBackendError
from infra.settings import Settings
from model import layout
from model.package import ContractError, complete_outputs
from model.paths import command_environment

FAILED_FILE = "failed.txt"  # an attempt that ended without outputs: the next one gets a name of its own
_LOCKS: dict[Path, threading.Lock] = {}  # by job folder (base name): one run of a job at a time in this process
_LOCKS_GUARD = threading.Lock()
_TRAINED_AHEAD: set[Path] = set()  # job folders this process trained ahead of their flow (`LocalJobs.train_ahead`)


def _job_lock(job: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(job, threading.Lock())


def workspace_jobs(settings: Settings) -> LocalJobs:
    """The jobs of the workspace `settings` names (`<home>/jobs`): the local backend's, and `mlops run`'s early start's."""
    return LocalJobs(settings.home / "jobs")


class LocalJobs:
    """Runs training jobs under `root` (normally `<home>/jobs`) with the interpreter `python`."""

    def __init__(self, root: Path, python: str = sys.executable) -> None:
        self.root = root
        self.python = python

    def logged_metrics(self, job_name: str) -> dict[str, float] | None:
        """The job's `metrics.json`: what a local training run logs (no tracking server is needed here)."""
        path = self.root / job_name / "outputs" / layout.METRICS_FILE
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict):
            return None
        return {str(k): float(v) for k, v in document.items() if isinstance(v, int | float)}

    def train(self, spec: TrainSpec) -> TrainOutput:
        """Run `spec`'s job, or re-attach to its outputs. Within this process one call at a time runs a job name:
        a second waits, then re-attaches (or, after `train_ahead`, reports the job as trained by this run)."""
        with _job_lock(self.root / spec.job_name):
            name = self._attempt(spec.job_name)
            job = self.root / name
            if (job / "outputs" / layout.METRICS_FILE).is_file():
                return _collect(name, job, reattached=job not in _TRAINED_AHEAD)
            self._run_job(spec, name, job)
            return _collect(name, job, reattached=False)

    def train_ahead(self, spec: TrainSpec, keep: Callable[[], bool], stop: threading.Event | None = None) -> bool:
        """Run `spec`'s job before the flow that will ask for it (`cli.early`), when it was never tried here, while
        `keep()` decides in a thread beside it whether the job is wanted (the data checks): whether it trained and
        was kept. A job not kept, or still running when `stop` is set, is stopped, or removed once done; one that
        fails leaves nothing either (no `failed.txt`, so no `-r1`): the flow's own attempt runs it again and reports
        its failure."""
        with _job_lock(self.root / spec.job_name):
            name = self._attempt(spec.job_name)
            job = self.root / name
            if job.exists():  # the flow's call decides
                return False
            verdicts: list[bool] = []
            judge = threading.Thread(target=lambda: verdicts.append(_kept(keep)), name="mlops-train-keep", daemon=True)
            judge.start()
            stopped = stop or threading.Event()
            try:
                self._run_job(spec, name, job, cancelled=lambda: verdicts == [False] or stopped.is_set())
            except Exception:  # noqa: BLE001 - failed, stopped or not wanted: the flow's own attempt reports it
                verdicts.append(False)
            judge.join()
            if verdicts != [True]:
                shutil.rmtree(job, ignore_errors=True)
                return False
            _TRAINED_AHEAD.add(job)
            return True

    def _run_job(self, spec: TrainSpec, name: str, job: Path, cancelled: Callable[[], bool] = lambda: False) -> None:
        outputs = job / "outputs"
        (job / "inputs").mkdir(parents=True, exist_ok=True)
        (job / "user_logs").mkdir(exist_ok=True)
        params = job / "inputs" / "parameters.json"
        params.write_text(json.dumps({"training": spec.parameters}, indent=2, sort_keys=True) + "\n")
        staging = Path(tempfile.mkdtemp(prefix=".outputs-", dir=job))
        try:
            self._run(spec, name, params, staging, job / "user_logs" / "std_log.txt", cancelled)
            try:
                os.rename(staging, outputs)
            except OSError:
                if not (outputs / layout.METRICS_FILE).is_file():  # not a concurrent run finishing first
                    raise
        except Exception as exc:
            if not (outputs / layout.METRICS_FILE).is_file():
                (job / FAILED_FILE).write_text(f"{type(exc).__name__}: {exc}\n")
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _attempt(self, base: str) -> str:
        """The job folder to use, by Azure ML's rule (`infra.azureml.jobs`): a job name is never run twice, so
        after a failed attempt (its folder keeps its log and `failed.txt`) the next is `base-r1`, then `-r2`, ..."""
        for attempt in range(MAX_ATTEMPTS):
            name = attempt_name(base, attempt)
            if not (self.root / name / FAILED_FILE).is_file():
                return name
        msg = f"training job {base}: {MAX_ATTEMPTS} attempts failed; change the data, code or parameters"
        raise JobFailedError(msg)

    def _run(
        self, spec: TrainSpec, name: str, params: Path, out: Path, log: Path, cancelled: Callable[[], bool]
    ) -> None:
        package = spec.model_package()
        command = package.command(
            package.train_command,
            python=self.python,
            package=str(package.root),
            data=str(spec.data),
            params=str(params),
            out=str(out),
        )
        try:
            returncode = run_logged(
                command,
                env=command_environment(),
                log=log,
                timeout=spec.timeout_seconds,
                cwd=log.parents[1],
                cancelled=cancelled,
            )
        except FileNotFoundError:
            raise JobFailedError(f"training job {name}: {command[0]} is not installed here") from None
        if returncode is None:
            msg = f"training job {name} stopped after {spec.timeout_seconds:g} s (MLOPS_TRAIN_TIMEOUT_SECONDS); log: {log}"
            raise JobFailedError(msg)
        if returncode < 0:
            msg = f"training job {name} was killed by signal {-returncode}; log: {log}"
            raise TransientBackendError(msg)
        if returncode != 0:
            detail = job_error(log.read_text(errors="replace"))
            raise JobFailedError(f"training job {name} failed (exit {returncode}): {detail}")
        try:
            complete_outputs(package, out, data=spec.data, parameters=spec.parameters)
        except ContractError as exc:
            raise JobFailedError(f"training job {name} of package {package.name}: {exc}") from None


def _kept(keep: Callable[[], bool]) -> bool:
    try:
        return bool(keep())
    except Exception:  # noqa: BLE001 - not known to be wanted: not kept
        return False


def _collect(job_name: str, job: Path, *, reattached: bool) -> TrainOutput:
    return collect_outputs(job_name, job / "outputs", log=job / "user_logs" / "std_log.txt", reattached=reattached)

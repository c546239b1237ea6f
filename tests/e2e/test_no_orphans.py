"""`kill -9` of `mlops train` at several moments leaves no process behind (its temporary Prefect server, its
training job and the job's own children die with it), and the registry stays consistent."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.local.registry import LocalRegistry
from infra.settings import checkout_root

pytestmark = pytest.mark.slow
MODEL = "diabetes_regression_model.pkl"


def processes_of(home: Path) -> list[str]:
    """Every process (but this one) whose environment has MLOPS_HOME=home: what the command started."""
    marker = f"MLOPS_HOME={home}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    found.append(f"{entry.name}: {command}")
        except OSError:
            continue
    return found


class Train:
    """`mlops train` in a subprocess of its own (no PREFECT_API_URL: it starts its temporary server)."""

    def __init__(self, home: Path, package: Path | None = None) -> None:
        self.home = home
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env |= {"MLOPS_HOME": str(home), "PREFECT_HOME": str(home / "prefect")}
        if package is not None:
            env["MLOPS_MODEL_PACKAGE"] = str(package)
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "train"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.output)

    def kill_when(self, condition: Callable[[], bool], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, "".join(self.output)
            assert time.monotonic() < deadline, "".join(self.output)
            time.sleep(0.05)
        self.process.send_signal(signal.SIGKILL)
        self._close()

    def finish(self) -> int:
        return self._close(timeout=600)

    def _close(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        if self._reader.is_alive():
            # a process it started survived and holds its output open (closing the pipe now would block on
            # the reader): stop them, then fail naming them
            left = processes_of(self.home)
            for line in left:
                with contextlib.suppress(OSError):
                    os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
            self._reader.join(timeout=10)
            raise AssertionError(f"still running after `mlops train` ended: {left}\n{''.join(self.output)}")
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def _nothing_left(home: Path) -> None:
    deadline = time.monotonic() + 10
    while processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(home) == []


def _slow_package(tmp_path: Path) -> Path:
    """The diabetes package, with a training command that starts a child and waits: a job still running."""
    package = tmp_path / "slow"
    shutil.copytree(checkout_root() / "models" / "diabetes", package, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = package / "mlops-model.toml"
    text = manifest.read_text()
    old = 'command = ["{python}", "-m", "models.diabetes.train", "--data", "{data}", "--params", "{params}", "--out", "{out}"]'
    assert old in text
    manifest.write_text(
        text.replace(old, 'command = ["bash", "-c", "sleep 300 & wait", "{data}", "{params}", "{out}"]')
    )
    return package


def test_kill_9_of_mlops_train_at_any_moment_leaves_no_process_and_a_consistent_registry(
    tmp_path: Path, own_prefect_server: None
) -> None:
    home = tmp_path / "home"
    # 1. while its temporary Prefect server starts
    run = Train(home)
    run.kill_when(lambda: run.said("starting a temporary Prefect server"))
    _nothing_left(home)
    # 2. while its training job runs, the job having started a child of its own
    run = Train(home, _slow_package(tmp_path))
    run.kill_when(lambda: any((home / "jobs").glob("*/user_logs/std_log.txt")) and len(processes_of(home)) >= 4)
    _nothing_left(home)
    # 3. the moment its job's outputs exist: the flow is registering
    run = Train(home)
    run.kill_when(lambda: any((home / "jobs").glob("*/outputs/metrics.json")), timeout=300)
    _nothing_left(home)
    # the registry: whole versions only, numbered without a gap; the next train completes and numbers on
    registry = LocalRegistry(home / "registry.db")
    before = [v.version for v in registry.list(MODEL)] if (home / "registry.db").exists() else []
    assert before == list(range(1, len(before) + 1))
    for version in before:
        assert (Path(registry.get(MODEL, version).path) / "metrics.json").is_file()
    final = Train(home)
    assert final.finish() == 0, "".join(final.output)
    # the same data, code and parameters: version 1, whether the killed run had registered it or not
    assert [v.version for v in registry.list(MODEL)] == [1]
    _nothing_left(home)

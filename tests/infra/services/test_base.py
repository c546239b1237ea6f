"""The six long-lived local processes share one base (infra/services/base.py): the endpoint server, PostgreSQL,
Azurite, the platform's Prefect server and worker, and the Azure ML emulator; each keeps its former files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from azureml_emulator.process import MODULE, EmulatorProcess
from deployments.platform import PREFECT, Platform, PrefectProcess
from infra.endpoint_server import EndpointConfig, LocalEndpoints
from infra.endpoint_server.process import SERVER_MODULE, EndpointProcess
from infra.errors import BackendError
from infra.services.azurite import Azurite
from infra.services.base import SupervisedService
from infra.services.postgres import Postgres
from infra.settings import load_settings
from model.paths import command_environment


def test_each_long_lived_process_is_a_supervised_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    settings = load_settings()
    platform = Platform(settings)
    services: dict[str, object] = {
        "endpoint": LocalEndpoints(tmp_path / "endpoints", EndpointConfig(port=1)).process("e"),
        "postgres": platform.postgres(),
        "azurite": platform.azurite(),
        "server": platform.prefect("server"),
        "worker": platform.prefect("worker"),
        "emulator": EmulatorProcess.from_settings(settings),
    }
    assert all(isinstance(service, SupervisedService) for service in services.values())
    for cls in (EndpointProcess, Postgres, Azurite, PrefectProcess, EmulatorProcess):
        assert issubclass(cls, SupervisedService)


def test_each_keeps_its_pid_file_log_and_identity(tmp_path: Path) -> None:
    endpoint = EndpointProcess(tmp_path / "e", name="e", config=EndpointConfig(port=1, max_body_bytes=1))
    postgres = Postgres(tmp_path / "pg", 5)
    azurite = Azurite(tmp_path / "az", 6)
    server, worker = PrefectProcess(tmp_path, "server"), PrefectProcess(tmp_path, "worker")
    emulator = EmulatorProcess(tmp_path / "em", 7, [])
    expected = [
        (endpoint, tmp_path / "e" / "server", (SERVER_MODULE, str(tmp_path / "e"))),
        (postgres, tmp_path / "pg" / "postgres", (str(tmp_path / "pg" / "data"),)),
        (azurite, tmp_path / "az" / "azurite", ("--blobPort", "6")),
        (server, tmp_path / "server", (PREFECT, "server")),
        (worker, tmp_path / "worker", (PREFECT, "worker")),
        (emulator, tmp_path / "em" / "emulator", (MODULE, str(tmp_path / "em"))),
    ]
    for service, stem, identity in expected:
        assert (service.pid_file, service.log) == (stem.with_suffix(".pid"), stem.with_suffix(".log"))
        assert service.identity() == identity
        assert service.pid() is None
        assert service.health()["state"] == "stopped"
    assert (postgres.stop_timeout, server.stop_timeout, azurite.stop_timeout, emulator.stop_timeout) == (60, 40, 25, 25)


class Sleeper(SupervisedService):
    stem = "sleeper"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def identity(self) -> tuple[str, ...]:
        return (str(self.folder),)

    def start(self, *, stays: bool = True) -> int:
        """A process that prints `up` and then sleeps (`stays`) or exits; ready once `up` is in its log."""
        code = "import sys, time; print('up', flush=True); time.sleep(300 if sys.argv[1] else 0)"
        command = [sys.executable, "-c", code, str(self.folder) if stays else ""]
        return self.supervise(
            command,
            command_environment(),
            ready=lambda _pid: stays and self.log.is_file() and "up" in self.log.read_text(),
            what="the sleeper",
            hint="see its log",
            timeout=10,
            interval=0.05,
        )


def test_a_service_starts_supervised_reports_its_health_and_stops(tmp_path: Path) -> None:
    sleeper = Sleeper(tmp_path)
    pid = sleeper.start()
    try:
        assert sleeper.pid() == pid
        assert sleeper.pid_file.read_text().strip() == str(pid)
        health = sleeper.health()
        assert (health["state"], health["pid"], health["supervised"]) == ("running", pid, True)
    finally:
        stopped = sleeper.stop()
    assert stopped
    assert sleeper.pid() is None
    assert sleeper.health()["state"] == "stopped"
    assert not sleeper.stop()
    assert "up" in sleeper.log.read_text()


def test_a_service_that_exits_at_start_fails_with_its_log(tmp_path: Path) -> None:
    sleeper = Sleeper(tmp_path)
    with pytest.raises(BackendError, match=r"^the sleeper exited at start \(exit 0; see its log\):\n") as failed:
        sleeper.start(stays=False)
    assert str(failed.value).endswith("\nup")  # the log's tail
    assert sleeper.pid() is None


def test_an_exited_process_its_parent_has_not_collected_is_not_alive() -> None:
    """A zombie has exited: a stop that waited for it to vanish waited for its parent (for a detached service, the
    machine's init, which may collect it seconds later) and every `mlops platform down` took 2 s a service."""
    import subprocess
    import time

    from infra.services.processes import alive

    # `sleep 30` (our child, bash replaced by it) is the parent of a `sleep 0.2` that exits after that replacement
    # and that `sleep 30` never collects
    parent = subprocess.Popen(["bash", "-c", "sleep 0.2 & echo $!; exec sleep 30"], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        zombie = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert not alive(zombie)
        assert alive(parent.pid)  # a running process still is
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
    assert not alive(parent.pid)

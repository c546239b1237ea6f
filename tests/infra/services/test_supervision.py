"""Supervision and bounded logs: a killed endpoint serves again within 5 s with its deployments, a crash loop
is reported, a log stays under its bound without losing a line, a supervised process dies with its supervisor,
and an endpoint whose supervisor was killed is reported down and started again with everything it served."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local import LocalBackend
from infra.services import supervisor
from infra.services.processes import (
    boot_time,
    health,
    spawn_supervised,
    stop_supervised,
    supervisor_pid,
    supervisor_status_file,
)
from infra.services.supervisor import RotatingLog, rotated_files
from infra.settings import load_settings
from tests.support.cli import run_mlops
from tests.support.helpers import MODEL, SMOKE, LoadGenerator, clone_home, free_port

ENDPOINT = "supervised-endpoint"


def _until(condition, timeout: float, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited, its parent gone: nothing runs


class TestRotatingLog:
    def test_the_files_stay_under_their_bound_and_keep_a_contiguous_tail(self, tmp_path: Path) -> None:
        log = RotatingLog(tmp_path / "server.log", max_bytes=4096, files=3)
        for first in range(0, 5000, 37):  # uneven chunks of whole lines, as the pipe delivers them
            log.write(b"".join(b"line %06d\n" % i for i in range(first, min(first + 37, 5000))))
        log.close()
        files = rotated_files(tmp_path / "server.log")
        assert [p.name for p in files] == ["server.log.2", "server.log.1", "server.log"]
        assert all(p.stat().st_size <= 4096 for p in files)
        lines = [line for p in files for line in p.read_text().splitlines()]
        numbers = [int(line.split()[1]) for line in lines]
        assert numbers == list(range(numbers[0], 5000))  # no line lost or cut at any rotation
        assert len(numbers) > 2 * 4096 // 12

    def test_a_line_longer_than_a_file_is_kept_whole(self, tmp_path: Path) -> None:
        log = RotatingLog(tmp_path / "x.log", max_bytes=1024, files=2)
        log.write(b"a" * 3000 + b"\n")
        log.write(b"short\n")
        log.close()
        assert (tmp_path / "x.log.1").read_bytes() == b"a" * 3000 + b"\n"
        assert (tmp_path / "x.log").read_bytes() == b"short\n"

    def test_a_write_takes_only_the_given_end_of_a_buffer(self, tmp_path: Path) -> None:
        log = RotatingLog(tmp_path / "x.log", max_bytes=1024, files=2)
        buffer = bytearray(b"one\ntwo\nthr")
        log.write(buffer, 8)
        log.write(bytearray(b"ee\n" * 400), 1200)  # past the file's bound: rotated between two lines
        log.close()
        assert (tmp_path / "x.log.1").read_bytes() + (tmp_path / "x.log").read_bytes() == b"one\ntwo\n" + b"ee\n" * 400


def test_the_output_is_copied_byte_for_byte_through_a_reused_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines shorter and longer than the read buffer, sent in uneven pieces, and an unfinished last line: the
    log holds every byte in order (the unfinished line ended), whatever the reads' boundaries."""
    monkeypatch.setattr(supervisor, "_READ_BYTES", 64)
    monkeypatch.setattr(supervisor, "_READ_PAUSE_SECONDS", 0)
    args = argparse.Namespace(
        command=["true"],
        pid_file=str(tmp_path / "x.pid"),
        status=str(tmp_path / "x.status"),
        stop_signal="TERM",
        stable_seconds=1.0,
        log=str(tmp_path / "out.log"),
        max_bytes=1 << 20,
        files=2,
    )
    copier = supervisor.Supervisor(args)
    rng = random.Random(7)
    data = b"".join(b"%d:" % i + b"x" * rng.randrange(0, 200) + b"\n" for i in range(300)) + b"unfinished"

    def send() -> None:
        at = 0
        while at < len(data):
            piece = rng.randrange(1, 150)
            os.write(copier.write_end, data[at : at + piece])
            at += piece
        os.close(copier.write_end)

    sender = threading.Thread(target=send)
    sender.start()
    copier._copy_output()
    sender.join()
    copier.log.close()
    assert (tmp_path / "out.log").read_bytes() == data + b"\n"


class TestSupervisor:
    def test_a_killed_process_is_started_again_and_dies_with_its_supervisor(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "sleeper.pid"
        first = spawn_supervised(["sleep", "300"], dict(os.environ), log=tmp_path / "sleeper.log", pid_file=pid_file)
        os.kill(first, signal.SIGKILL)
        second = _until(lambda: (p := int(pid_file.read_text() or 0)) != first and p, timeout=5)
        state = _until(lambda: health(pid_file, "sleep") if health(pid_file, "sleep")["pid"] else None, timeout=5)
        assert (state["state"], state["restarts"], state["last_exit"]) == ("running", 1, "killed by SIGKILL")
        supervisor = supervisor_pid(pid_file)
        assert supervisor is not None
        os.kill(supervisor, signal.SIGKILL)
        _until(lambda: _gone(second), timeout=5)  # the parent-death signal

    def test_a_crash_loop_is_reported_and_slowed_down(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "crasher.pid"
        spawn_supervised(
            ["bash", "-c", "echo failing; exit 3"], dict(os.environ), log=tmp_path / "c.log", pid_file=pid_file
        )
        try:
            state = _until(lambda: (h := health(pid_file, "bash"))["state"] == "crash-loop" and h, timeout=15)
            assert state["last_exit"] == "exit 3"
            assert state["restarts"] >= 3
            assert state["next_start_at"]
            # the command's own output, once per start (the log is written a few times a second)
            log = _until(
                lambda: (
                    (text := (tmp_path / "c.log").read_text()).splitlines().count("failing") >= state["restarts"]
                    and text
                ),
                timeout=5,
            )
            assert "crash loop (3 exits in a row" in log
        finally:
            assert stop_supervised(pid_file, "bash")
        assert health(pid_file, "bash")["state"] == "stopped"


@pytest.fixture
def served(seeded_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBackend]:
    monkeypatch.setenv("MLOPS_LOG_MAX_BYTES", "20000")
    monkeypatch.setenv("MLOPS_LOG_FILES", "3")
    home = clone_home(seeded_template, tmp_path / "home")
    backend = LocalBackend(load_settings(home=home, endpoint_port=free_port()))
    backend.endpoints.ensure(ENDPOINT)
    try:
        backend.endpoints.add_deployment(ENDPOINT, "blue", backend.bundles.build(backend.registry.get(MODEL, 1)))
        backend.endpoints.set_traffic(ENDPOINT, {"blue": 100})
        yield backend
    finally:
        backend.endpoints.stop(ENDPOINT)


def test_a_killed_endpoint_serves_again_within_5_s_with_its_deployments(served: LocalBackend) -> None:
    process = served.endpoints.process(ENDPOINT)
    url, key = f"{process.url()}/score", served.endpoints.key(ENDPOINT)
    with LoadGenerator(url, key, max_seconds=60) as load:
        _until(lambda: sum(1 for r in load.results if r[2] == 200) >= 50, timeout=30)
        victim = process.pid()
        assert victim is not None
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        _until(lambda: any(r[0] > killed_at and r[2] == 200 for r in load.results), timeout=10)
        time.sleep(2)  # keep scoring after the recovery
    recovered_at = min(r[1] for r in load.results if r[0] > killed_at and r[2] == 200)
    assert recovered_at - killed_at < 5.0
    after = [r for r in load.results if r[0] >= recovered_at]
    assert len(after) > 20
    assert {r[2] for r in after} == {200}  # no request sent after the recovery failed
    state = served.endpoints.get(ENDPOINT)
    assert state is not None
    assert state.running
    assert {n: d.traffic for n, d in state.deployments.items()} == {"blue": 100}  # its saved state
    assert state.health is not None
    assert (state.health["restarts"], state.health["last_exit"]) == (1, "killed by SIGKILL")
    assert process.pid() != victim


def test_a_crash_looping_endpoint_is_reported_by_mlops_endpoint_status(served: LocalBackend, tmp_path: Path) -> None:
    process = served.endpoints.process(ENDPOINT)
    state_file = process.folder / "state.json"
    saved = json.loads(state_file.read_text())
    saved["deployments"]["blue"]["bundle"] = str(tmp_path / "deleted-bundle")  # it will not load at a restart
    state_file.write_text(json.dumps(saved))
    victim = process.pid()
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    env = {
        **os.environ,
        "MLOPS_HOME": str(served.settings.home),
        "MLOPS_ENDPOINT_NAME": ENDPOINT,
        "MLOPS_ENDPOINT_PORT": str(served.settings.endpoint_port),
    }

    def status() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "endpoint", "status"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        return result.stdout

    def crash_looping() -> str | None:
        out = status()
        return out if "crash-loop" in out else None

    text = _until(crash_looping, timeout=30, interval=0.5)
    assert f"endpoint {ENDPOINT}: stopped" in text
    assert "server: crash-loop (supervised; " in text
    assert "last: exit 3" in text
    assert "deleted-bundle" in process.log.read_text()  # the reason, in its log


def test_the_request_log_stays_under_its_bound(served: LocalBackend) -> None:
    process = served.endpoints.process(ENDPOINT)
    url, key = f"{process.url()}/score", served.endpoints.key(ENDPOINT)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    with httpx.Client(timeout=10, trust_env=False) as client:
        for i in range(600):  # about 150 KB of log lines: more than 3 files of 20 KB hold
            response = client.post(url, content=SMOKE, headers={**headers, "x-ms-request-id": f"req-{i:05d}"})
            assert response.status_code == 200
    expected_last = "req-00599"

    def logged() -> list[Path] | None:
        files = rotated_files(process.log)
        return files if files and expected_last in files[-1].read_text() else None

    files = _until(logged, timeout=10)
    assert len(files) == 3
    assert sum(p.stat().st_size for p in files) <= 3 * 20000
    ids = [
        json.loads(line)["request_id"]
        for p in files
        for line in p.read_text().splitlines()
        if line.startswith("{") and '"request_id"' in line and "req-" in line
    ]
    numbers = [int(i.removeprefix("req-")) for i in ids]
    assert numbers == list(range(numbers[0], 600))  # the newest requests, none lost across the rotations
    assert numbers[0] > 0  # the oldest were rotated away


def _served_state(backend: LocalBackend) -> dict[str, Any]:
    """What the running server holds: each deployment's model, bundle and traffic, and the mirror."""
    process = backend.endpoints.process(ENDPOINT)
    headers = {"authorization": f"Bearer {process.keys()['admin']}"}
    answer: dict[str, Any] = httpx.get(f"{process.url()}/management/state", headers=headers, timeout=10).json()
    return answer


class TestSupervisorKilled:
    """`kill -9` of the endpoint's supervisor (its server dies with it): said by `mlops endpoint status`, undone by
    `mlops endpoint start` or, under `mlops platform up`, by the watchdog (tests/e2e/test_platform.py there)."""

    def test_status_says_why_and_endpoint_start_restores_deployments_traffic_mirror_and_keys(
        self, served: LocalBackend
    ) -> None:
        endpoints, process = served.endpoints, served.endpoints.process(ENDPOINT)
        green = served.bundles.build(served.registry.get(MODEL, 2))
        endpoints.add_deployment(ENDPOINT, "green", green)
        endpoints.add_deployment(ENDPOINT, "shadow", green)
        endpoints.set_traffic(ENDPOINT, {"blue": 70, "green": 30})
        endpoints.set_mirror(ENDPOINT, {"shadow": 20})
        key = endpoints.regenerate_key(ENDPOINT, "primary")["primary"]
        before = _served_state(served)
        supervisor, server = supervisor_pid(process.pid_file), process.pid()
        assert supervisor is not None
        assert server is not None
        os.kill(supervisor, signal.SIGKILL)
        _until(lambda: _gone(server), timeout=5)  # the parent-death signal
        env = {
            "MLOPS_HOME": str(served.settings.home),
            "MLOPS_ENDPOINT_NAME": ENDPOINT,
            "MLOPS_ENDPOINT_PORT": str(served.settings.endpoint_port),
        }
        down = run_mlops("endpoint", "status", env=env).stdout
        assert f"endpoint {ENDPOINT}: down at http://127.0.0.1:{served.settings.endpoint_port}/score\n" in down
        assert f"  server: down (supervisor pid {supervisor} died (killed?) after 20" in down
        assert "  green: diabetes_regression_model.pkl:2 (30 %)\n" in down  # what it will serve, from state.json
        assert "run `mlops endpoint start`" in down
        # a reboot leaves the same files, older than the machine's start: the status says that instead
        booted = boot_time()
        for path in (supervisor_status_file(process.pid_file), process.log):
            os.utime(path, (booted - 60, booted - 60))
        rebooted = json.loads(run_mlops("endpoint", "status", "--json", env=env).stdout)["health"]
        assert rebooted["state"] == "down"
        assert rebooted["reason"].startswith(f"supervisor pid {supervisor} is gone: the machine restarted at ")

        started = run_mlops("endpoint", "start", env=env)
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith(f"endpoint {ENDPOINT}: started at http://127.0.0.1:")
        assert "  blue: diabetes_regression_model.pkl:1 (70 %)\n" in started.stdout
        assert _served_state(served) == before  # the same deployments, bundles, traffic and mirror
        assert endpoints.keys(ENDPOINT)["primary"] == key
        scored = httpx.post(
            f"{process.url()}/score",
            content=SMOKE,
            headers={"authorization": f"Bearer {key}", "azureml-model-deployment": "green"},
            timeout=10,
        )
        assert (scored.status_code, scored.headers["azureml-model-deployment"]) == (200, "green")
        health = endpoints.get(ENDPOINT).health  # type: ignore[union-attr]
        assert health is not None
        assert (health["state"], health["supervised"], "reason" in health) == ("running", True, False)

        pid = process.pid()
        again = run_mlops("endpoint", "start", env=env)
        assert again.returncode == 0
        assert again.stdout == f"endpoint {ENDPOINT}: already running at {process.url()}/score; nothing to do\n"
        assert process.pid() == pid  # nothing was started
        assert endpoints.stop(ENDPOINT)  # a stop is a stop, never a lost supervisor
        assert endpoints.get(ENDPOINT).health["state"] == "stopped"  # type: ignore[union-attr,index]

    def test_an_endpoint_never_created_is_not_started(self, tmp_path: Path) -> None:
        result = run_mlops("endpoint", "start", env={"MLOPS_HOME": str(tmp_path / "home")})
        assert result.returncode == 1
        assert result.stdout == "endpoint diabetes-endpoint: not created yet (run `mlops deploy`)\n"
        assert not (tmp_path / "home" / "endpoints").exists()

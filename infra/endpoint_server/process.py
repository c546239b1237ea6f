"""Start and stop an endpoint server process; its pid, log and keys live in the endpoint's folder.

<home>/endpoints/<name>/keys.json     scoring (primary, secondary) and admin keys, mode 0600
<home>/endpoints/<name>/state.json    deployments and traffic, written by the server
<home>/endpoints/<name>/server.pid    the running server's pid (written by its supervisor)
<home>/endpoints/<name>/server.supervisor.json  the supervisor's state: restarts, last exit
<home>/endpoints/<name>/server.json   its port and URL
<home>/endpoints/<name>/server.log    one JSON line per request, and the server's own messages; rotated by
                                      size into server.log.1 ... (MLOPS_LOG_MAX_BYTES, MLOPS_LOG_FILES)

The server runs under `infra.services.supervisor`: killed or crashed, it is started again within a
second with its saved deployments and traffic, and it dies with its supervisor. A supervisor that went
without stopping it (`kill -9`, a reboot) leaves its state file saying so (`supervisor_lost`); a start
then brings the server back with the same saved state (`mlops endpoint start`, and the platform's
watchdog, `deployments/watchdog.py`). Starts are serialised by a lock on `.start.lock`: the watchdog, a
deploy and `mlops endpoint start` at once start one server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import time
from pathlib import Path

import httpx

from infra.endpoint_server.config import EndpointConfig
from infra.errors import BackendError
from infra.services.base import SupervisedService
from infra.services.processes import (
    log_tail,
    spawn_supervised,
    supervisor_lost,
    supervisor_pid,
    supervisor_status_file,
)
from infra.services.supervisor import read_status
from model.paths import command_environment

SERVER_MODULE = "infra.endpoint_server.server"


class EndpointProcess(SupervisedService):
    """The server process of one endpoint folder.

    Its pid file, log, pid, health and stop are the base's; its start is its own: it writes the endpoint's keys
    and `server.json` first, and a server is up only when the process of the pid file answers (the
    `x-endpoint-pid` header), not another program on the port. A start that finds the server supervised
    but between two starts waits for it, and a server that exits again there fails the start too (counted
    from the restarts seen when the wait began), where `supervise` would only wait.
    """

    stem = "server"

    def __init__(self, folder: Path, *, name: str, config: EndpointConfig) -> None:
        self.folder = folder
        self.name = name
        self.config = config

    def keys(self) -> dict[str, str]:
        """The endpoint's keys, created (readable by the owner only) the first time."""
        path = self.folder / "keys.json"
        if not path.is_file():
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            keys = {kind: secrets.token_urlsafe(32) for kind in ("primary", "secondary", "admin")}
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(keys, handle)
        stored: dict[str, str] = json.loads(path.read_text())
        return stored

    def url(self) -> str:
        """The running server's base URL (its recorded port), else the configured one."""
        recorded = self.folder / "server.json"
        port = json.loads(recorded.read_text())["port"] if recorded.is_file() and self.pid() else self.config.port
        return f"{self.config.scheme}://127.0.0.1:{port}"

    def identity(self) -> tuple[str, ...]:
        return (SERVER_MODULE, str(self.folder))

    def running(self) -> bool:
        """The server answers, and no supervisor of it went missing (a server whose supervisor died is on its way
        out: the parent-death signal stopped it)."""
        pid = self.pid()
        return pid is not None and supervisor_lost(self.pid_file) is None and _answers(self.url(), pid)

    def start(self, timeout: float = 60) -> str:
        """Start the server unless it runs; return its URL once it answers."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.folder / ".start.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._start(timeout)

    def _start(self, timeout: float) -> str:
        if self.running():
            return self.url()
        self._end_orphan()
        self.keys()
        command, env = self.command(), self.environment()
        (self.folder / "server.json").write_text(json.dumps({"port": self.config.port}))
        if supervisor_pid(self.pid_file) is not None:  # supervised, between two starts: wait for it
            self._wait_until_up(timeout)
            return self.url()
        spawn_supervised(command, env, log=self.log, pid_file=self.pid_file)
        try:
            self._wait_until_up(timeout)
        except BackendError:
            self.stop()
            raise
        return self.url()

    def _end_orphan(self) -> None:
        """A server left by a supervisor that died is stopped (it got SIGTERM with that death; SIGKILL after
        5 s), so that the new one gets its port."""
        orphan = self.pid()
        if orphan is None or supervisor_lost(self.pid_file) is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGTERM)
        for grace, last in ((5.0, signal.SIGKILL), (2.0, None)):
            deadline = time.monotonic() + grace
            while self.pid() == orphan and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.pid() != orphan or last is None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(orphan, last)

    def command(self) -> list[str]:
        """The server's command line."""
        server = [self.config.python, "-m", SERVER_MODULE, "--dir", str(self.folder), "--name", self.name]
        return [*server, *self.config.server_arguments()]

    def environment(self) -> dict[str, str]:
        return command_environment()

    def _wait_until_up(self, timeout: float) -> None:
        """Until the server answers; a server that exits before it ever answered fails the start (with its log)."""
        deadline = time.monotonic() + timeout
        restarts = (read_status(supervisor_status_file(self.pid_file)) or {}).get("restarts", 0)
        while time.monotonic() < deadline:
            status = read_status(supervisor_status_file(self.pid_file)) or {}
            pid = self.pid()
            listening = pid is not None and _listening(self.config.port)
            if pid is not None and listening and _answers(f"{self.config.scheme}://127.0.0.1:{self.config.port}", pid):
                return
            if status.get("restarts", 0) > restarts and status.get("last_exit"):
                tail = log_tail(self.log)
                msg = f"endpoint {self.name!r} exited at start ({status['last_exit']}; port taken? set {self.config.port_variable}):\n{tail}"
                raise BackendError(msg)
            # a refused connection costs microseconds: the server's start is seen within 10 ms of it (not 100);
            # a port that answers as another program (taken) is asked less often
            time.sleep(0.1 if listening else 0.01)
        raise BackendError(f"endpoint {self.name!r} did not answer within {timeout:g} s; see {self.log}")


def loopback_client(timeout: float) -> httpx.Client:
    """An HTTP client for 127.0.0.1: no TLS context to build, no proxy variables to obey."""
    return httpx.Client(verify=False, trust_env=False, timeout=timeout)


def _listening(port: int) -> bool:
    """Whether something accepts connections on the loopback port (before asking it over HTTP who it is)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _answers(url: str, pid: int) -> bool:
    """True when the server at `url` is alive and is the process `pid` (not another program on the port)."""
    try:
        with loopback_client(2) as client:
            response = client.get(url + "/")
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.headers.get("x-endpoint-pid") == str(pid)

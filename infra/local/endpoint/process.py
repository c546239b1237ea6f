"""Start and stop an endpoint server process; its pid, log and keys live in the endpoint's folder.

<home>/endpoints/<name>/keys.json     scoring (primary, secondary) and admin keys, mode 0600
<home>/endpoints/<name>/state.json    deployments and traffic, written by the server
<home>/endpoints/<name>/server.pid    the running server's pid
<home>/endpoints/<name>/server.json   its port and URL
<home>/endpoints/<name>/server.log    one JSON line per request, and the server's own messages
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

import httpx

import infra
from infra.local.processes import await_start, live_pid, spawn_detached, terminate

SERVER_MODULE = "infra.local.endpoint.server"


class EndpointProcess:
    """The server process of one endpoint folder."""

    def __init__(
        self,
        folder: Path,
        *,
        name: str,
        port: int,
        max_body_bytes: int,
        python: str = sys.executable,
        tls: tuple[Path, Path] | None = None,
        port_variable: str = "MLOPS_ENDPOINT_PORT",
        telemetry_dir: Path | None = None,
        collect_percent: float = 100,
    ) -> None:
        """`tls` (certificate, key) makes the server answer HTTPS instead of HTTP; `telemetry_dir` is where its
        spans go as files (default: MLOPS_HOME/telemetry of its environment)."""
        self.folder = folder
        self.telemetry_dir = telemetry_dir
        self.collect_percent = collect_percent
        self.tls = tls
        self.port_variable = port_variable
        self.name = name
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.python = python

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

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
        port = json.loads(recorded.read_text())["port"] if recorded.is_file() and self.pid() else self.port
        return f"{self.scheme}://127.0.0.1:{port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def pid(self) -> int | None:
        """The pid of this folder's live server, or None (a stale pid file is ignored)."""
        return live_pid(self.folder / "server.pid", SERVER_MODULE, str(self.folder))

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and _answers(self.url(), pid)

    def start(self, timeout: float = 60) -> str:
        """Start the server unless it runs; return its URL once it answers."""
        if self.running():
            return self.url()
        self.keys()
        command = [self.python, "-m", SERVER_MODULE, "--dir", str(self.folder), "--port", str(self.port)]
        command += ["--name", self.name, "--max-body-bytes", str(self.max_body_bytes)]
        if self.tls:
            command += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        if self.telemetry_dir:
            command += ["--telemetry-dir", str(self.telemetry_dir)]
        command += ["--collect-percent", str(self.collect_percent)]
        code_root = str(Path(infra.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [code_root, os.environ.get("PYTHONPATH")]))}
        pid = spawn_detached(command, env, self.log)
        (self.folder / "server.pid").write_text(str(pid))
        (self.folder / "server.json").write_text(json.dumps({"port": self.port}))
        self._wait_until_up(pid, timeout)
        return self.url()

    def _wait_until_up(self, pid: int, timeout: float) -> None:
        await_start(
            pid,
            lambda: _answers(f"{self.scheme}://127.0.0.1:{self.port}", pid),
            what=f"endpoint {self.name!r}",
            log=self.log,
            hint=f"port taken? set {self.port_variable}",
            timeout=timeout,
            stop_on_timeout=True,
        )

    def stop(self, timeout: float = 15) -> bool:
        """Stop the server by its pid (SIGTERM, then SIGKILL). False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        terminate(pid, timeout)
        (self.folder / "server.pid").unlink(missing_ok=True)
        return True


def loopback_client(timeout: float) -> httpx.Client:
    """An HTTP client for 127.0.0.1: no TLS context to build, no proxy variables to obey."""
    return httpx.Client(verify=False, trust_env=False, timeout=timeout)


def _answers(url: str, pid: int) -> bool:
    """True when the server at `url` is alive and is the process `pid` (not another program on the port)."""
    try:
        with loopback_client(2) as client:
            response = client.get(url + "/")
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.headers.get("x-endpoint-pid") == str(pid)

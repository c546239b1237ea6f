"""The local platform behind `mlops up` / `mlops down`: PostgreSQL, a Prefect server on it, the work pool,
every deployment of `prefect.yaml`, a process worker, Azurite when `MLOPS_BLOB_EMULATOR=azurite`, and on the local
backend the endpoint's watchdog (`deployments/watchdog.py`: the endpoint comes back when its supervisor is killed).

The server's database is a PostgreSQL cluster of the workspace's own (`MLOPS_PREFECT_DATABASE=postgres`,
the default), an existing PostgreSQL (`MLOPS_PREFECT_DATABASE_URL`), or SQLite in the platform's
Prefect home (`MLOPS_PREFECT_DATABASE=sqlite`). Only the server is given the database URL.

Everything binds 127.0.0.1; pids, logs and the database live in `MLOPS_HOME/platform/`.
`up` twice is harmless (running parts are kept, deployments are updated); `down` stops by pid, the watchdog
first, the worker before the server, the server before its database, then Azurite and the endpoints (this
environment's, and those of the environments promoted into: `promote_from` in environments.toml).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

from deployments.emulator import emulator_process
from deployments.prefect_database import NewDatabase, configured_sqlite_file
from deployments.watchdog import Watchdog
from infra import environments
from infra.endpoint_server import EndpointConfig, LocalEndpoints
from infra.errors import BackendError
from infra.services.azurite import Azurite
from infra.services.base import SupervisedService
from infra.services.postgres import Postgres
from infra.settings import Settings, checkout_root, load_settings

PREFECT = str(Path(sys.executable).parent / "prefect")


def flow_run_command() -> str:
    """How the worker starts a flow run: the engine, in this environment's Python. Prefect's process worker,
    given no command, starts a workspace supervisor that then starts the engine: a second Python process
    importing Prefect for every flow run (about 5 s of CPU and 2 s of waiting each, measured here) to
    resolve a workspace the deployments do not use (their entrypoints are modules of the installed
    project; `prefect.yaml` has no pull steps). `deployments.engine` runs Prefect's engine and ends without the
    interpreter's ~0.7 s collection at exit."""
    return f"{sys.executable} -m deployments.engine"


def work_pool_name() -> str:
    """The work pool `prefect.yaml` deploys to (its `definitions`, the one place that names it)."""
    document = yaml.safe_load((checkout_root() / "prefect.yaml").read_text())
    return str(document["definitions"]["work_pools"]["local"]["name"])


class PrefectProcess(SupervisedService):
    """The platform's Prefect `server` or `worker` (`prefect <name> start ...`): `<name>.pid` and `<name>.log` in
    the platform's folder."""

    stop_timeout = 40

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.stem = name

    def identity(self) -> tuple[str, ...]:
        return (PREFECT, self.stem)


class Platform:
    """The processes `mlops up` starts for one workspace."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder = settings.platform_dir

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.prefect_port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.prefect_port}"

    def azurite(self) -> Azurite:
        return Azurite(self.folder / "azurite", self.settings.azurite_port)

    def prefect(self, name: str) -> PrefectProcess:
        """The Prefect `server` or `worker` of the platform."""
        return PrefectProcess(self.folder, name)

    def postgres(self) -> Postgres:
        return Postgres(self.folder / "postgres", self.settings.postgres_port, self.settings.postgres_bin)

    def database(self) -> dict[str, str]:
        """The server's database as `mlops status` shows it: kind, and a URL with no password in it."""
        if self.settings.prefect_database_url is not None:
            return {"kind": "postgres", "managed_by": "you", "url": _hide_password(self._external_url())}
        if self.settings.prefect_database == "postgres":
            return {"kind": "postgres", "managed_by": "mlops up", "url": self.postgres().shown_url}
        return {
            "kind": "sqlite",
            "managed_by": "mlops up",
            "url": f"sqlite:///{self.folder / 'prefect' / 'prefect.db'}",
        }

    def _external_url(self) -> str:
        assert self.settings.prefect_database_url is not None
        url = self.settings.prefect_database_url.get_secret_value()
        for plain in ("postgresql://", "postgres://"):  # Prefect's server speaks asyncpg
            if url.startswith(plain):
                return "postgresql+asyncpg://" + url.removeprefix(plain)
        return url

    def env(self) -> dict[str, str]:
        """The environment of the worker and the flow runs it starts (the server's adds its database)."""
        inherited = {k: v for k, v in os.environ.items() if k != "PREFECT_API_DATABASE_CONNECTION_URL"}
        return {
            **inherited,
            "PREFECT_HOME": str(self.folder / "prefect"),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "true",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "MLOPS_HOME": str(self.settings.home),
            "MLOPS_ENV": environments.current(),  # flow runs load the environment `mlops --env NAME platform up` chose
        }

    # ---- up ----
    def server_env(self) -> dict[str, str]:
        """The worker's environment, plus the database URL, and a log line for every request the server
        answers 503 (Prefect stays silent on those by default: a locked or lost database would go unseen)."""
        env = {**self.env(), "PREFECT_SERVER_LOG_RETRYABLE_ERRORS": "true"}
        if self.settings.prefect_database_url is not None:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self._external_url()
        elif self.settings.prefect_database == "postgres":
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.postgres().url
        return env

    def up(self) -> list[str]:
        """Start what is not running; return one line per part saying what happened."""
        self.folder.mkdir(parents=True, exist_ok=True)
        report = []
        database = self.database()
        if database["managed_by"] == "you":
            report.append(f"database: your PostgreSQL at {database['url']}")
        elif database["kind"] == "postgres":
            state = self.postgres().start()
            report.append(f"database: PostgreSQL {state} on 127.0.0.1:{self.settings.postgres_port}")
        else:
            report.append(f"database: SQLite at {database['url'].removeprefix('sqlite:///')}")
        if self.settings.blob_emulator == "azurite":
            running = self.azurite().pid() is not None
            self.azurite().start()
            report.append(
                f"Azurite blob storage: {'running' if running else 'started'} on 127.0.0.1:{self.settings.azurite_port}"
            )
        if self.settings.local_emulator:
            emulator = emulator_process(self.settings)
            running = emulator.pid() is not None
            emulator.start()
            report.append(f"Azure ML emulator: {'running' if running else 'started'} at {emulator.url}")
        server_env = self.server_env()
        with NewDatabase(configured_sqlite_file(server_env) if database["kind"] == "sqlite" else None) as new:
            server = self._start("server", self._server_command(), server_env, wait_for_server=True)
            new.started()
        report.append(f"Prefect server: {server} at {self.ui_url}")
        report.append(f"work pool {work_pool_name()}: {self._ensure_pool()}")
        # the worker starts (and proves it keeps running) while `prefect deploy` runs: it only polls the pool
        with ThreadPoolExecutor(1, thread_name_prefix="prefect-deploy") as pool:
            deploying = pool.submit(self._deploy)
            worker = self._start("worker", self._worker_command(), self.env(), wait_for_server=False)
            report.append(f"deployments: {deploying.result()}")
        report.append(f"worker: {worker}")
        report.extend(self._restart_endpoint())
        if self.settings.backend == "local":
            report.append(f"endpoint watchdog: {self.watchdog().start(self.env())}")
        self._provision()
        report.append("provision: completed on the worker (workspace, registry, and blob storage when configured)")
        return report

    def watchdog(self) -> Watchdog:
        """What brings the endpoint back when its supervisor is gone (`deployments/watchdog.py`)."""
        return Watchdog(self.folder)

    def endpoints(self) -> LocalEndpoints:
        return LocalEndpoints(self.settings.home / "endpoints", EndpointConfig.from_settings(self.settings))

    def _restart_endpoint(self) -> list[str]:
        """The endpoints `down` stopped serve again, with the deployments and traffic they had: this environment's,
        and those of the environments promoted into (`promote_from` in environments.toml)."""
        lines = []
        for environment, endpoints, name in [("", self.endpoints(), self.settings.endpoint_name), *self._chained()]:
            state = endpoints.get(name)
            if state is None or state.running or not state.deployments:
                continue
            state = endpoints.ensure(name)
            serving = ", ".join(f"{n}: {d.model} {d.traffic} %" for n, d in state.deployments.items())
            of = f" of {environment}" if environment else ""
            lines.append(f"endpoint {name}{of}: started again at {state.scoring_url} ({serving})")
        return lines

    def _chained(self) -> list[tuple[str, LocalEndpoints, str]]:
        """(environment, endpoints, endpoint name) of each local environment promoted into (`promote_from`), with a
        MLOPS_HOME of its own: the platform's worker starts their endpoints when it promotes."""
        chained = []
        for environment in environments.load_environments().known.values():
            if environment.promote_from is None or environment.name == environments.current():
                continue
            with environments.using(environment.name):
                settings = load_settings()
            if settings.backend == "local" and settings.home != self.settings.home:
                endpoints = LocalEndpoints(settings.home / "endpoints", EndpointConfig.from_settings(settings))
                chained.append((environment.name, endpoints, settings.endpoint_name))
        return chained

    def _server_command(self) -> list[str]:
        return [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.settings.prefect_port)]

    def _worker_command(self) -> list[str]:
        """The pool's type is given, not asked of the server: a worker its supervisor restarts while the server
        is down too (both killed, the machine rebooting) starts and waits for the server instead of exiting."""
        return [PREFECT, "worker", "start", "--pool", work_pool_name(), "--type", "process"]

    def _start(self, name: str, command: list[str], env: dict[str, str], *, wait_for_server: bool) -> str:
        process = self.prefect(name)
        if process.pid() is not None:
            return "running"
        started = time.monotonic()
        process.supervise(
            command,
            env,
            # the worker has nothing to ask: it is ready when it still runs after 2 s
            ready=(lambda _pid: self._server_ready())
            if wait_for_server
            else (lambda _pid: time.monotonic() - started > 2),
            what=f"the Prefect {name}",
            hint="port taken? set MLOPS_PREFECT_PORT" if wait_for_server else "see its log",
            timeout=120,
            interval=0.5 if wait_for_server else 0.1,
        )
        return "started"

    def _server_ready(self) -> bool:
        try:
            with httpx.Client(trust_env=False, timeout=2) as client:
                return client.get(f"{self.api_url}/health").status_code == 200
        except httpx.HTTPError:
            return False

    def _ensure_pool(self) -> str:
        """The process work pool, created with the flow-run command set (see `flow_run_command`). A pool that
        exists is left as it is: its template may be yours."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectNotFound
        from prefect.settings import PREFECT_API_URL, temporary_settings
        from prefect.workers.process import ProcessWorker

        pool = work_pool_name()
        template = ProcessWorker.get_default_base_job_template()
        template["variables"]["properties"]["command"]["default"] = flow_run_command()
        with temporary_settings({PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            try:
                client.read_work_pool(pool)
                return "exists"
            except ObjectNotFound:
                client.create_work_pool(WorkPoolCreate(name=pool, type="process", base_job_template=template))
        return "created (process)"

    def _provision(self) -> None:
        """One run of `provision/manual` on the worker, waited for (polled every half second)."""
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            run = run_deployment("provision/manual", timeout=600, poll_interval=0.5, as_subflow=False)
        assert isinstance(run, FlowRun)  # called outside an event loop: run_deployment ran synchronously
        if run.state is None or not run.state.is_completed():
            state = run.state.name if run.state else "no state"
            raise BackendError(f"provision/manual is {state} (flow run {run.id}); see {self.folder / 'worker.log'}")

    def _deploy(self) -> str:
        output = self._prefect("--no-prompt", "deploy", "--all").stdout
        count = output.count("successfully created with id")
        return f"{count} deployed from prefect.yaml"

    def _prefect(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [PREFECT, *args],
            cwd=checkout_root(),
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise BackendError(
                f"`prefect {' '.join(args)}` failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result

    # ---- down ----
    def down(self) -> list[str]:
        """Stop the endpoint's watchdog, the worker, then the server, then Azurite and the endpoint; say what was
        stopped."""
        report = []
        if self.watchdog().stop():
            report.append("stopped the endpoint watchdog")
        for name in ("worker", "server"):
            pid = self.pid(name)
            if self.prefect(name).stop():
                report.append(f"stopped the Prefect {name}" + (f" (pid {pid})" if pid else " (it was restarting)"))
        if self.postgres().stop():
            report.append("stopped PostgreSQL")
        if self.azurite().stop():
            report.append("stopped Azurite")
        if self.settings.local_emulator and emulator_process(self.settings).stop():
            report.append("stopped the Azure ML emulator")
        if self.endpoints().stop(self.settings.endpoint_name):
            report.append(f"stopped endpoint {self.settings.endpoint_name}")
        for environment, endpoints, name in self._chained():
            if endpoints.stop(name):
                report.append(f"stopped endpoint {name} of {environment}")
        return report or ["nothing was running"]

    def pid(self, name: str) -> int | None:
        """The pid of the platform's Prefect `server` or `worker` (`prefect <name> start ...`), if it runs."""
        return self.prefect(name).pid()

    def running(self) -> bool:
        return self.pid("server") is not None and self._server_ready()

    def describe(self) -> dict[str, object]:
        """The platform as `mlops status --json` shows it: whether it runs, where, and on which database."""
        database: dict[str, object] = {**self.database()}
        if database["managed_by"] == "mlops up" and database["kind"] == "postgres":
            database["pid"] = self.postgres().pid()
        return {
            "running": self.running(),
            "api_url": self.api_url,
            "database": database,
            "pids": {name: self.pid(name) for name in ("server", "worker")},
            "processes": self.health(),
        }

    def health(self) -> dict[str, dict[str, object]]:
        """Each process of the platform: its supervisor's state (running, restarting, crash-loop, stopped),
        pid, restarts and last exit."""
        processes = {name: self.prefect(name).health() for name in ("server", "worker")}
        if self.settings.backend == "local":
            processes["watchdog"] = self.watchdog().health()
        if self.database()["managed_by"] == "mlops up" and self.database()["kind"] == "postgres":
            processes["postgres"] = self.postgres().health()
        if self.settings.blob_emulator == "azurite":
            processes["azurite"] = self.azurite().health()
        if self.settings.local_emulator:
            processes["emulator"] = emulator_process(self.settings).health()
        return processes


def _hide_password(url: str) -> str:
    """`scheme://user:***@host/...` for a URL that carries a password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{place}"

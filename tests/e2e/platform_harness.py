"""A platform under test: the `mlops` command in a workspace of its own with free ports, and reading its
Prefect server back with Prefect's own HTTP client (retries with backoff, not one fixed timeout)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prefect.client.base import PrefectHttpxSyncClient

from tests.support.cli import run_mlops
from tests.support.helpers import free_port

FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
T = TypeVar("T")


class Platform:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.prefect_port, self.endpoint_port, self.azurite_port = free_port(), free_port(), free_port()
        self.postgres_port = free_port()
        self.extra: dict[str, str] = {}  # settings of this platform beyond the ports
        self.api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.ui = f"http://127.0.0.1:{self.prefect_port}"
        self._http: PrefectHttpxSyncClient | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        return {
            **env,
            "MLOPS_HOME": str(self.home),
            "MLOPS_PREFECT_PORT": str(self.prefect_port),
            "MLOPS_ENDPOINT_PORT": str(self.endpoint_port),
            "MLOPS_BLOB_EMULATOR": "azurite",  # blob storage configured: `up` runs Azurite, batch scoring uses it
            "MLOPS_AZURITE_PORT": str(self.azurite_port),
            "MLOPS_POSTGRES_PORT": str(self.postgres_port),
            **self.extra,
            **extra,
        }

    def mlops(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`mlops` with this platform's environment. `status` reads and starts nothing: it runs in this process.
        Every other command in a child process (the platform's processes outlive it), at the machine's normal
        priority: the platform is measured (the soak's 2 s API limit), and the other test files' workers,
        running at a lower priority, must not starve it."""
        words = args[1:2] if args[0] == "platform" else args[:1]  # `mlops platform down` or its alias `mlops down`
        if words == ("down",):
            self.close()  # the HTTP client of the polls: the server it talks to goes
        if args[0] == "status" or args[:2] == ("platform", "status"):
            settings = {k: v for k, v in self.env().items() if k.startswith("MLOPS_")}
            return run_mlops(*args, env={**settings, "PREFECT_API_URL": None}, timeout=timeout)
        return run_mlops(*args, env=self.env(), inherit=False, timeout=timeout, priority=True)

    def api_post(self, path: str, body: dict[str, Any]) -> Any:
        """POST to the server with Prefect's own client: a slow moment or a timeout is retried with backoff
        (PREFECT_CLIENT_MAX_RETRIES), as every Prefect client does, instead of failing the test."""
        return self._client().post(path, json=body).json()

    def api_get(self, path: str) -> Any:
        return self._client().get(path).json()

    def _client(self) -> PrefectHttpxSyncClient:
        """One client for the test's many polls (each new client loads the CA bundle again: 20 ms of CPU), used
        from the test's thread only; closed with the platform (`close`)."""
        if self._http is None:
            self._http = PrefectHttpxSyncClient(base_url=self.api, timeout=30)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def wait_for_state(self, run_id: str, states: tuple[str, ...], timeout: float = 600) -> dict[str, Any]:
        """The flow run once its state type is one of `states`."""

        def reached() -> dict[str, Any] | None:
            run: dict[str, Any] = self.api_get(f"/flow_runs/{run_id}")
            return run if run["state_type"] in states else None

        return self._until(reached, timeout, f"flow run {run_id} did not reach {states}")

    def wait_for_runs(self, flow: str, parameter: str, values: set[int], timeout: float = 600) -> list[dict[str, Any]]:
        """Every deployment run of `flow` whose `parameter` is in `values`, once there is at least one per value
        and all are final."""

        def finished() -> list[dict[str, Any]] | None:
            runs = [r for r in self.runs(flow, limit=200) if int(r["parameters"].get(parameter) or 0) in values]
            every_value = {int(r["parameters"][parameter]) for r in runs} == values
            return runs if every_value and all(r["state_type"] in FINAL for r in runs) else None

        return self._until(finished, timeout, f"not every {flow} run for {sorted(values)} finished")

    def wait_for_run(self, flow: str, after: float, timeout: float = 240) -> dict[str, Any]:
        """The first run of `flow` created after `after` (epoch seconds) to reach a final state."""

        def finished() -> dict[str, Any] | None:
            done = (r for r in self.runs(flow) if _epoch(r["created"]) >= after and r["state_type"] in FINAL)
            return next(done, None)

        return self._until(finished, timeout, f"no {flow} run finished")

    def wait_for_runs_matching(
        self, flow: str, after: float, matches: Callable[[dict[str, Any]], bool], timeout: float = 240
    ) -> dict[str, Any]:
        """The first run of `flow` created after `after` for which `matches(run)`, once it is final."""

        def finished() -> dict[str, Any] | None:
            runs = (r for r in self.runs(flow) if _epoch(r["created"]) >= after and matches(r))
            return next((r for r in runs if r["state_type"] in FINAL), None)

        return self._until(finished, timeout, f"no matching {flow} run finished")

    def until(self, check: Callable[[], T | None], timeout: float, failure: str) -> T:
        """`check()`'s first answer that is not None (polled every half second)."""
        return self._until(check, timeout, failure)

    def _until(self, check: Callable[[], T | None], timeout: float, failure: str) -> T:
        """`check()`'s first answer that is not None, polled every half second; the worker's log if none comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (answer := check()) is not None:
                return answer
            time.sleep(0.5)
        worker_log = (self.home / "platform" / "worker.log").read_text()[-3000:]
        raise AssertionError(f"{failure} within {timeout:g} s; worker log:\n{worker_log}")

    def blobs(self, container: str) -> dict[str, bytes]:
        from azure.storage.blob import BlobServiceClient

        from infra.services.azurite import connection_string

        with BlobServiceClient.from_connection_string(connection_string(self.azurite_port)) as service:
            client = service.get_container_client(container)
            return {blob.name: client.download_blob(blob.name).readall() for blob in client.list_blobs()}

    def runs(self, flow: str, limit: int = 50) -> list[dict[str, Any]]:
        """Flow runs of a flow that belong to a deployment (scheduled future runs left out), newest first."""
        runs = self.api_post(
            "/flow_runs/filter", {"flows": {"name": {"any_": [flow]}}, "sort": "START_TIME_DESC", "limit": limit}
        )
        return [r for r in runs if r["deployment_id"] and r["state_type"] != "SCHEDULED"]


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

"""Start, stop and describe the emulator process (`mlops emulator up|down|status`, and the test fixtures).

<MLOPS_HOME>/emulator/state.db          the emulator's state (workspaces, assets, jobs, blobs' properties)
<MLOPS_HOME>/emulator/tls/ca-bundle.pem certifi's bundle + the emulator's CA: REQUESTS_CA_BUNDLE for clients
<MLOPS_HOME>/emulator/emulator.pid|log  the running server
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.request
from pathlib import Path
from typing import Any

from azureml_emulator.core.registries import add_registry
from azureml_emulator.core.store import Store
from azureml_emulator.tls import BUNDLE_FILE, CA_FILE, ensure_certificates
from infra.services.base import SupervisedService
from infra.settings import Settings
from model.paths import command_environment

MODULE = "azureml_emulator"


class EmulatorProcess(SupervisedService):
    """The emulator's server process: its pid and log in its home folder."""

    stem = "emulator"

    def __init__(
        self,
        home: Path,
        port: int,
        workspaces: list[str],
        *,
        max_jobs: int = 2,
        endpoint_port: int | None = None,
        lro_scale: float = 0.0,
        identity_datastores: bool = False,
        registries: list[str] | None = None,
    ) -> None:
        self.home = self.folder = home
        self.registries = registries or []  # SUB/RG/NAME of each Azure ML registry it holds
        self.port = port
        self.endpoint_port = endpoint_port or port + 1
        self.workspaces = workspaces
        self.max_jobs = max_jobs
        self.lro_scale = lro_scale
        self.identity_datastores = identity_datastores

    @classmethod
    def from_settings(cls, settings: Settings, *, max_jobs: int = 2) -> EmulatorProcess:
        subscription = settings.azure_subscription_id or "00000000-0000-0000-0000-000000000000"
        scope = f"{subscription}/{settings.azure_resource_group}/{settings.azure_workspace_name}"
        return cls(
            settings.emulator_dir.resolve(),  # the process is known by its folder's real path (a link to it is fine)
            settings.azureml_emulator_port,
            [scope],
            max_jobs=max_jobs,
            endpoint_port=settings.azureml_emulator_endpoint_port,
            lro_scale=settings.azureml_emulator_lro_scale,
            identity_datastores=settings.azureml_emulator_identity_datastores,
            registries=[
                f"{subscription}/{settings.azure_resource_group}/{name}"
                for name in [settings.azureml_registry_name]
                if name
            ],
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def bundle(self) -> Path:
        return self.home / "tls" / BUNDLE_FILE

    def identity(self) -> tuple[str, ...]:
        return (MODULE, str(self.home))

    def start(self, timeout: float = 30) -> str:
        """Start unless it runs (the workspaces are added either way); return its URL once it answers."""
        if self.pid() is not None and self._answers():
            if self.workspaces or self.registries:
                self._add_workspaces()
            return self.url
        ensure_certificates(self.home / "tls")
        command = [sys.executable, "-m", MODULE, "--home", str(self.home), "--port", str(self.port)]
        command += ["--max-jobs", str(self.max_jobs), "--endpoint-port", str(self.endpoint_port)]
        command += ["--lro-scale", str(self.lro_scale)]
        if self.identity_datastores:
            command.append("--identity-datastores")
        for scope in self.workspaces:
            command += ["--workspace", scope]
        for scope in self.registries:
            command += ["--registry", scope]
        self.supervise(
            command,
            command_environment(),
            ready=lambda _pid: self._answers(),
            what=f"the Azure ML emulator on port {self.port}",
            hint="port taken? set MLOPS_AZUREML_EMULATOR_PORT",
            timeout=timeout,
        )
        return self.url

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.home / "tls" / CA_FILE))

    def get(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": "Bearer mlops-emulator-status"})
        with urllib.request.urlopen(request, context=self._context(), timeout=5) as answer:
            return json.loads(answer.read())

    def _answers(self) -> bool:
        try:
            return bool(self.get("/emulator/health").get("home") == str(self.home))
        except (OSError, ValueError):
            return False

    def _add_workspaces(self) -> None:
        store = Store(self.home / "state.db")
        for scope in self.workspaces:
            store.add_workspace(scope)
        for scope in self.registries:
            add_registry(store, scope)

    def requests(self, *, bodies: bool = False) -> list[dict[str, Any]]:
        """The request log: method, path, api-version, status and user agent of every request served (and with
        `bodies`, each JSON request's body)."""
        value: list[dict[str, Any]] = self.get("/emulator/requests" + ("?bodies=true" if bodies else ""))["value"]
        return value

    def describe(self) -> dict[str, Any]:
        pid = self.pid()
        running = pid is not None and self._answers()
        return {
            "running": running,
            "url": self.url,
            "pid": pid if running else None,
            "home": str(self.home),
            "ca_bundle": str(self.bundle),
            "workspaces": self.workspaces,
            "registries": self.registries,
        }

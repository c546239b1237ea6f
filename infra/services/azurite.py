"""Azurite, the Azure Storage emulator: real blob storage on 127.0.0.1 for local use and the tests.

Installed by `make azurite` (npm, pinned to 3.35.0 in `infra/azurite/package-lock.json`; newer
releases need Node 22). Started with `--skipApiVersionCheck` (azure-storage-blob speaks a newer API
version than Azurite knows), `--disableTelemetry` and `--loose`.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

import infra
from infra.errors import ConfigError
from infra.services.base import SupervisedService

INSTALL_DIR = Path(infra.__file__).resolve().parent / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same for every installation; not a secret).
DEVELOPMENT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int) -> str:
    """The connection string of an Azurite blob service on 127.0.0.1:`port`."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEVELOPMENT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


class Azurite(SupervisedService):
    """An Azurite blob service whose pid and log live in `folder`; data in memory, or in `folder/data`."""

    stem = "azurite"

    def __init__(self, folder: Path, port: int, *, in_memory: bool = False) -> None:
        self.folder = folder
        self.port = port
        self.in_memory = in_memory

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def identity(self) -> tuple[str, ...]:
        return ("--blobPort", str(self.port))

    def start(self, timeout: float = 60) -> str:
        """Start unless running; return the connection string once the service answers."""
        if self.pid() is not None and self._answers():
            return connection_string(self.port)
        binary = INSTALL_DIR / "node_modules" / ".bin" / "azurite-blob"
        if not binary.is_file():
            raise ConfigError(f"Azurite is not installed ({binary} is missing): run `make azurite`")
        self.folder.mkdir(parents=True, exist_ok=True)
        storage = ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.folder / "data")]
        command = [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), *storage]
        command += ["--disableTelemetry", "--skipApiVersionCheck", "--loose"]
        self.supervise(
            command,
            dict(os.environ),
            ready=lambda _pid: self._answers(),
            what=f"Azurite on port {self.port}",
            hint="port taken? set MLOPS_AZURITE_PORT",
            timeout=timeout,
            interval=0.2,
        )
        return connection_string(self.port)

    def _answers(self) -> bool:
        try:
            with httpx.Client(verify=False, trust_env=False, timeout=2) as client:
                client.get(f"{self.url}?comp=list")
        except httpx.HTTPError:
            return False
        return True

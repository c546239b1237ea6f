"""The local platform (`mlops up`): Prefect server, its database, Azurite, and the logs of these processes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from infra.sections import Section


class PlatformSettings(Section):
    """Ports, the database, PostgreSQL's programs, the blob emulator, and log rotation."""

    prefect_port: int = Field(
        4200, ge=1, le=65535, description="Port of the Prefect server `mlops up` starts on 127.0.0.1."
    )
    prefect_database: Literal["postgres", "sqlite"] = Field(
        "postgres",
        description="Database of the platform's Prefect server: `postgres` (a cluster `mlops up` runs) or `sqlite`.",
    )
    prefect_database_url: SecretStr | None = Field(
        None,
        description="An existing PostgreSQL for the platform's Prefect server (postgresql://user:pw@host:port/db); "
        "`mlops up` then starts no database.",
    )
    postgres_port: int = Field(
        55432, ge=1, le=65535, description="Port of the PostgreSQL cluster `mlops up` runs on 127.0.0.1."
    )
    postgres_bin: Path | None = Field(
        None,
        description="Folder of PostgreSQL's programs (initdb, postgres). Unset: the newest /usr/lib/postgresql/*/bin, "
        "else initdb on PATH.",
    )
    blob_emulator: Literal["none", "azurite"] = Field(
        "none", description="`azurite`: `mlops up` runs Azurite as blob storage."
    )
    azurite_port: int = Field(10000, ge=1, le=65535, description="Port of Azurite's blob service on 127.0.0.1.")

    # ---- logs of the long-lived processes (endpoint, Prefect server and worker, PostgreSQL, Azurite, emulator) ----
    log_max_bytes: int = Field(
        50 << 20, ge=1024, description="A process's log is rotated when it reaches this size (bytes)."
    )
    log_files: int = Field(5, ge=1, le=100, description="Files kept per log: the current one and the rotated ones.")

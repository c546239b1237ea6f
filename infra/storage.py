"""Where batch inputs come from and outputs go: a local path, or `blob://<container>/<path>` in Azure Blob Storage.

Blob access goes through prefect-azure's blocks. Credentials come from a saved
`AzureBlobStorageCredentials` block (`MLOPS_BLOB_CREDENTIALS_BLOCK`), a connection string
(`MLOPS_BLOB_CONNECTION_STRING` or `AZURE_STORAGE_CONNECTION_STRING`), or an account URL with
azure-identity (`MLOPS_BLOB_ACCOUNT_URL`) - never from a command line, and never logged.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from infra.errors import BackendError, ConfigError, MissingResourceError
from infra.settings import Settings

if TYPE_CHECKING:
    from prefect_azure import AzureBlobStorageCredentials

BLOB_SCHEME = "blob://"


@dataclass(frozen=True)
class BlobLocation:
    """A container and a path (a blob, or a folder-like prefix) inside it."""

    container: str
    path: str

    def __str__(self) -> str:
        return f"{BLOB_SCHEME}{self.container}/{self.path}".rstrip("/")


def parse_location(text: str) -> Path | BlobLocation:
    """`blob://container/path` is a blob location; anything else a local path."""
    if not text.startswith(BLOB_SCHEME):
        return Path(text).expanduser()
    container, _, path = text.removeprefix(BLOB_SCHEME).partition("/")
    if not container:
        raise ConfigError(f"{text!r}: a blob location is blob://<container>/<path>")
    return BlobLocation(container, path.strip("/"))


class Storage:
    """Fetches inputs to local files and publishes outputs, for local paths and blob containers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def fetch(self, location: Path | BlobLocation, into: Path) -> list[Path]:
        """The CSV files at `location`, as local paths: a file, every `*.csv` of a folder, or blobs downloaded into `into`."""
        if isinstance(location, Path):
            return _local_csvs(location)
        container = self._container(location.container)
        names = _matching_blobs(container.list_blobs(), location.path)
        if not names:
            raise MissingResourceError(f"no CSV blob at {location}")
        paths = []
        for name in names:
            target = into / name
            try:
                container.download_object_to_path(name, target)
            except RuntimeError as exc:  # prefect-azure's wrapping of the SDK's not-found
                raise MissingResourceError(f"cannot download {BlobLocation(location.container, name)}: {exc}") from exc
            paths.append(target)
        return paths

    def publish(self, file: Path, location: Path | BlobLocation, name: str) -> str:
        """Copy `file` to `location` under the relative `name` (a hard link when a local folder shares its file
        system); return where it went."""
        if isinstance(location, Path):
            target = location / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(file, target)
            return str(target)
        destination = BlobLocation(
            location.container, str(PurePosixPath(location.path) / name) if location.path else name
        )
        container = self._container(location.container)
        try:
            container.upload_from_path(file, destination.path)
        except Exception as exc:
            msg = f"upload of {file} to {destination} failed ({type(exc).__name__}: {exc}); the scored file is kept at {file}"
            raise BackendError(msg) from exc
        return str(destination)

    def ensure_container(self, name: str) -> bool:
        """Create the blob container unless it exists; True when it was created."""
        credentials = self.credentials()

        async def ensure() -> bool:
            async with credentials, credentials.get_client() as client:
                container = client.get_container_client(name)
                if await container.exists():
                    return False
                await container.create_container()
                return True

        try:
            return asyncio.run(ensure())
        except Exception as exc:  # the SDK raises several types
            raise BackendError(f"cannot create blob container {name!r}: {type(exc).__name__}: {exc}") from exc

    def _container(self, name: str) -> Any:  # the block's methods are sync_compatible: typed as coroutines
        from prefect_azure.blob_storage import AzureBlobStorageContainer

        return AzureBlobStorageContainer(container_name=name, credentials=self.credentials())

    def credentials(self) -> AzureBlobStorageCredentials:
        """The blob credentials the settings name; `ConfigError` when none are configured."""
        from prefect_azure import AzureBlobStorageCredentials

        settings = self.settings
        if settings.blob_credentials_block:
            loaded: AzureBlobStorageCredentials = AzureBlobStorageCredentials.load(
                settings.blob_credentials_block, _sync=True
            )  # type: ignore[assignment,call-arg]
            return loaded
        if settings.blob_connection_string is not None:
            return AzureBlobStorageCredentials(connection_string=settings.blob_connection_string)
        if settings.blob_account_url:
            return AzureBlobStorageCredentials(account_url=settings.blob_account_url)
        if settings.blob_emulator == "azurite":
            from infra.services.azurite import connection_string

            return AzureBlobStorageCredentials(connection_string=connection_string(settings.azurite_port))
        msg = (
            "a blob:// location needs blob storage: set MLOPS_BLOB_CONNECTION_STRING, MLOPS_BLOB_ACCOUNT_URL, "
            "MLOPS_BLOB_CREDENTIALS_BLOCK, or MLOPS_BLOB_EMULATOR=azurite"
        )
        raise ConfigError(msg)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link on the same file system (the scored file is never changed, so it costs no second write), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _local_csvs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if found:
            return found
        raise MissingResourceError(f"{path}: the folder holds no .csv file")
    raise MissingResourceError(f"{path}: no such file or folder")


def _matching_blobs(names: list[str], path: str) -> list[str]:
    """The blob named `path`, else the `.csv` blobs under the prefix `path/` (the whole container for "")."""
    if path in names:
        return [path]
    prefix = f"{path}/" if path else ""
    return sorted(n for n in names if n.startswith(prefix) and n.lower().endswith(".csv"))

"""The state and services behind the server, which every handler reaches through its request's `Context`."""

from __future__ import annotations

from pathlib import Path

from azureml_emulator.core.arm import STORAGE_ACCOUNT, STORAGE_SUFFIX
from azureml_emulator.core.blobs import BlobService
from azureml_emulator.core.store import Store


class Emulator:
    """The state and services behind the server: one folder, `home`."""

    def __init__(
        self,
        home: Path,
        port: int,
        *,
        endpoint_port: int | None = None,
        lro_scale: float = 0.0,
        identity_datastores: bool = False,
    ) -> None:
        self.home = home
        self.port = port
        self.lro_scale = lro_scale  # long-running operations: Azure's recorded durations times this (0: at once)
        self.endpoint_port = endpoint_port or port + 1  # online endpoints' servers: this port and up
        # identity-based datastores (a workspace whose systemDatastoresAuthMode is "identity"): no secrets, and
        # blob access with the caller's own token
        self.identity_datastores = identity_datastores
        self.store = Store(home / "state.db")
        self.blobs = BlobService(home / "blobs", self.store, identity=identity_datastores)
        self.base_url = f"https://127.0.0.1:{port}"

    def storage_account(self) -> str:
        """The account name the datastores give, which the SDK turns into a path-style URL on this server."""
        return f"127.0.0.1:{self.port}/{STORAGE_ACCOUNT}"

    @property
    def blob_base(self) -> str:
        return f"{self.base_url}/{STORAGE_ACCOUNT}.blob.{STORAGE_SUFFIX}"

"""Blob storage (prefect-azure): one way to reach it; never passed on a command line."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from infra.sections import ENV_PREFIX, Section


class StorageSettings(Section):
    """A connection string, an account URL (azure-identity) or a saved credentials block."""

    blob_connection_string: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(f"{ENV_PREFIX}BLOB_CONNECTION_STRING", "AZURE_STORAGE_CONNECTION_STRING"),
        description="Storage connection string (Azurite's for local use).",
    )
    blob_account_url: str | None = Field(None, description="Storage account URL, authenticated with azure-identity.")
    blob_credentials_block: str | None = Field(None, description="Name of a saved AzureBlobStorageCredentials block.")

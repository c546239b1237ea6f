"""Names and ids the resource families share: Azure ML's provider, the region, storage, the store's kinds, asset ids."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

PROVIDER = "Microsoft.MachineLearningServices"
LOCATION = "eastus"
STORAGE_SUFFIX = "emulator.local"
STORAGE_ACCOUNT = "mlopsemulator"
STORAGE_KEY = "ZW11bGF0b3Itc3RvcmFnZS1rZXk="  # the account key `listSecrets` gives (base64, as Azure's keys are)
BLOB_CONTAINER = "azureml-blobstore"
ARTIFACT_CONTAINER = "azureml"
DATASTORE_CONTAINERS = {"workspaceblobstore": BLOB_CONTAINER, "workspaceartifactstore": ARTIFACT_CONTAINER}

# Kinds of the store's asset table that more than one resource family reads.
ONLINE, ONLINE_DEPLOYMENTS = "onlineEndpoints", "onlineDeployments"
BATCH, BATCH_DEPLOYMENTS = "batchEndpoints", "batchDeployments"
COMPUTES = "computes"
OPERATIONS_SCOPE, OPERATIONS = "-", "operations"
# whether the caller holds a data role on the storage account (`PUT /emulator/storage-data-role`)
DATA_ROLE = "storageDataRole"
TAKEN = "takenEndpointNames"  # names "someone else" holds in the region (`PUT /emulator/taken-endpoint-names/{name}`)

_ARM_ASSET = re.compile(
    r"(?:azureml:)?/subscriptions/[^/]+/resource[gG]roups/[^/]+/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/[^/]+/(?P<kind>codes|data|environments|models)/(?P<name>[^/]+)/versions/(?P<version>[^/]+)"
)
# Curated environments: the SDK sends the short id as given (`azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:33`,
# answered 201 and echoed: command_job/...test_command_job_invalid_datastore.json, ...serverless.json), which the
# service resolves in the `azureml` registry; registry ids are taken as they are too (Microsoft Learn, "Manage
# environments": azureml://registries/azureml/environments/<name>/versions/<v> or /labels/latest).
_CURATED = re.compile(
    r"azureml:AzureML-[A-Za-z0-9_.\-]+:\d+|azureml://registries/[^/]+/environments/[^/]+/(versions|labels)/[^/]+"
)


def workspace_guid(scope: str) -> str:
    return str(uuid.UUID(hashlib.sha256(scope.encode()).hexdigest()[:32]))


def system_data(created: str, modified: str | None = None) -> dict[str, Any]:
    return {
        "createdAt": created,
        "createdBy": "mlops-emulator",
        "createdByType": "User",
        "lastModifiedAt": modified or created,
        "lastModifiedBy": "mlops-emulator",
        "lastModifiedByType": "User",
    }


def curated_environment(value: str) -> bool:
    """Whether an environment id names a curated or registry environment (not an asset of the workspace)."""
    return bool(_CURATED.fullmatch(value))


def asset_reference(value: str) -> tuple[str, str, str] | None:
    """(kind, name, version) of an ARM asset id, else None."""
    match = _ARM_ASSET.fullmatch(value)
    return (match["kind"], match["name"], match["version"]) if match else None

"""Identity-based datastores (issue 22, point 10), proven against the emulator only: started with
`--identity-datastores`, it answers as a workspace whose system datastores use Microsoft Entra ID (no secrets,
blobs with the caller's own token), and our client trains, registers and downloads through it; a caller
without a data role on the storage account gets an error that names the account and the role to grant."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.ai.ml.entities._credentials import NoneCredentialConfiguration

from infra.azureml import AzureMLBackend
from infra.backend import TrainSpec
from infra.errors import ConfigError
from infra.factory import open_backend
from model import layout
from models.diabetes.data import write_sample_csv
from tests.support.emulator import Emulated, start_emulated

API = {"api-version": "2024-07-01-preview"}


@pytest.fixture(scope="module")
def identity(own_emulator: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulated]:
    with pytest.MonkeyPatch.context() as patch:
        emulated = start_emulated(tmp_path_factory.mktemp("identity") / "mlops", patch, identity_datastores=True)
        try:
            yield emulated
        finally:
            emulated.process.stop()


def _backend(emulated: Emulated) -> AzureMLBackend:
    backend = open_backend(emulated.settings())
    assert isinstance(backend, AzureMLBackend)
    return backend


def _http(emulated: Emulated, token: str | None = "t") -> httpx.Client:
    trust = ssl.create_default_context(cafile=str(emulated.home / "emulator" / "tls" / "ca.pem"))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=emulated.process.url, verify=trust, headers=headers)


def _folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "weights.txt").write_text(f"{name}\n")
    (folder / layout.METRICS_FILE).write_text('{"mse": 1.0}\n')
    return folder


def test_the_datastore_has_no_secret_and_storage_takes_the_callers_token(identity: Emulated) -> None:
    datastore = _backend(identity).client.datastores.get_default()
    assert isinstance(datastore.credentials, NoneCredentialConfiguration)
    blob = f"/mlopsemulator.blob.emulator.local/{datastore.container_name}/none/such.txt"
    with _http(identity) as client:
        secrets = client.post(
            f"{identity.workspace}/datastores/workspaceblobstore/listSecrets",
            params=API,
            json={"expirableSecret": True, "expireAfterHours": 1},
        )
        assert secrets.status_code == 400
        assert secrets.json()["error"]["code"] == "UserError"
        assert secrets.json()["error"]["message"] == "No secrets for credentials of type None."
        workspace = client.get(identity.workspace, params=API).json()
        assert workspace["properties"]["systemDatastoresAuthMode"] == "identity"
        assert client.get(blob).headers["x-ms-error-code"] == "BlobNotFound"  # the token is taken
    with _http(identity, token=None) as anonymous:
        refused = anonymous.get(blob)
    assert refused.status_code == 401
    assert refused.headers["x-ms-error-code"] == "NoAuthenticationInformation"


def test_training_registration_and_downloads_go_through_with_the_callers_token(identity: Emulated) -> None:
    backend = _backend(identity)
    start = len(identity.process.requests())  # the module's other tests share the emulator's log
    data = identity.home / "data" / "diabetes.csv"
    write_sample_csv(data)
    output = backend.jobs.train(TrainSpec(job_name="identity-train", data=data, parameters={"alpha": 0.4}))
    assert (output.outputs / "model.joblib").is_file()  # the job's outputs came back
    registration = backend.registry.register("identity-model", _folder(identity.home, "m1"), tags={}, properties={})
    assert "LocalUpload" in registration.model.path  # uploaded by the client, not a job output
    files = backend.bundles.files(registration.model)
    assert (files / "weights.txt").read_text() == "m1\n"
    served = [(r["method"], r["path"]) for r in identity.process.requests()[start:]]
    assert any(method == "PUT" and "/LocalUpload/" in path for method, path in served)  # data and model uploaded
    assert not any(path.endswith("/listSecrets") for _, path in served)  # no secret asked of an identity datastore


def test_without_the_data_role_the_error_names_the_storage_account_and_the_role(identity: Emulated) -> None:
    backend = _backend(identity)
    registered = backend.registry.register("identity-denied", _folder(identity.home, "m2"), tags={}, properties={})
    identity.storage_data_role(granted=False)
    try:
        with pytest.raises(ConfigError) as upload:
            backend.registry.register("identity-denied", _folder(identity.home, "m3"), tags={}, properties={})
        with pytest.raises(ConfigError) as download:
            _backend(identity).bundles.files(registered.model)
        with _http(identity) as client:
            blob = client.get(f"/mlopsemulator.blob.emulator.local/azureml-blobstore/{registered.model.path}")
    finally:
        identity.storage_data_role(granted=True)
    for refused in (upload.value, download.value):
        assert "storage account 'mlopsemulator'" in str(refused)
        assert "Storage Blob Data Contributor" in str(refused)
        assert "AuthorizationPermissionMismatch" in str(refused)
    assert blob.status_code == 403
    assert blob.headers["x-ms-error-code"] == "AuthorizationPermissionMismatch"

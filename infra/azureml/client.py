"""The one factory of `MLClient`, and the translation of Azure's errors into the project's.

Real Azure: `DefaultAzureCredential` (az login, a managed identity, or AZURE_CLIENT_ID/SECRET/TENANT_ID)
and the public cloud. The emulator (`MLOPS_AZUREML_EMULATOR`): a static token and a cloud of its
own, passed as `cloud=` + `cloud_metadata=` (the SDK's supported way to name another cloud), and
`REQUESTS_CA_BUNDLE` extended with the emulator's CA (for an emulator elsewhere, set it yourself).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import certifi
from azure.ai.ml import MLClient
from azure.ai.ml.exceptions import MlException, ValidationException
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from infra.errors import BackendError, ConfigError, MissingResourceError, TransientBackendError
from infra.settings import Settings

EMULATOR_CLOUD = "MlopsEmulator"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Storage's answers to a caller without a data role on the account (Microsoft Learn, "Shared access signature error
# codes" and "Authorize access to blobs using Microsoft Entra ID"): what an identity-based datastore meets
STORAGE_ROLE_CODES = frozenset({"AuthorizationPermissionMismatch", "AuthorizationFailure"})
_BLOB_ACCOUNT = re.compile(r"[/.]([a-z0-9]{3,24})\.blob\.")


class EmulatorCredential(TokenCredential):
    """A fixed bearer token for the emulator, for any scope (batch invoke asks for its own scope)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:  # noqa: ARG002 - any scope
        return AccessToken("mlops-emulator-token", int(time.time()) + 3600)


def trust_emulator(settings: Settings) -> str:
    """Point `REQUESTS_CA_BUNDLE` at a bundle that trusts the emulator's CA.

    With the emulator on this machine and no other HTTPS destination for requests (no Application Insights,
    no https OTLP endpoint, no bundle of your own), the bundle is the emulator's CA alone: requests loads
    its bundle again for every new TLS connection, 28 ms of CPU for certifi's 140 CAs against 0.5 ms for
    one, and the SDK opens a connection for most calls and every blob. Otherwise the bundle already named
    there (a system or corporate one), else certifi's, is kept and the emulator's CA appended, in
    `<emulator>/tls/client-<hash>.pem`. A bundle that holds the CA already is kept as it is.
    """
    ca_file = settings.emulator_dir / "tls" / "ca.pem"
    if not ca_file.is_file():
        msg = f"the Azure ML emulator's CA ({ca_file}) is missing: start it with `mlops emulator up` (or `mlops up`)"
        raise ConfigError(msg)
    ca = ca_file.read_bytes()
    current = os.environ.get("REQUESTS_CA_BUNDLE") or ""
    ours = not current or _emulator_ca(Path(current))  # nothing set, or an emulator's CA alone (set here before)
    if settings.local_emulator and ours and not _other_https():
        os.environ["REQUESTS_CA_BUNDLE"] = str(ca_file)
        return str(ca_file)
    current = certifi.where() if ours else current
    try:
        trusted = Path(current).read_bytes()
    except OSError:
        trusted = Path(certifi.where()).read_bytes()
    if ca in trusted:
        return current
    combined = ca_file.parent / f"client-{hashlib.sha256(current.encode() + trusted).hexdigest()[:12]}.pem"
    if not combined.is_file():
        temporary = combined.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(trusted.rstrip(b"\n") + b"\n" + ca)
        os.replace(temporary, combined)
    os.environ["REQUESTS_CA_BUNDLE"] = str(combined)
    return str(combined)


def _emulator_ca(path: Path) -> bool:
    """Whether a bundle is an emulator's CA alone (set by this function before), not a bundle of the user's."""
    return path.parent.name == "tls" and path.name == "ca.pem"


def _other_https() -> bool:
    """Whether this process may send requests-based HTTPS elsewhere: the span exporters' destinations."""
    otlp = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    return bool(os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING")) or otlp.startswith("https://")


def make_client(settings: Settings, *, registry: str | None = None) -> MLClient:
    """The `MLClient` of the configured workspace, or of the Azure ML registry `registry` (`registry_name=`: the
    SDK finds its subscription and resource group by the registry's discovery), with the same credential and cloud:
    the emulator's when `MLOPS_AZUREML_EMULATOR` is set, else Azure's."""
    subscription = settings.azure_subscription_id or "00000000-0000-0000-0000-000000000000"
    where: dict[str, Any] = (
        {"registry_name": registry} if registry else {"workspace_name": settings.azure_workspace_name}
    )
    url = settings.emulator_url
    if url is None:
        from azure.identity import DefaultAzureCredential

        credential: TokenCredential = DefaultAzureCredential()
        telemetry = os.environ.get("DO_NOT_TRACK", "").lower() not in ("1", "true", "yes")
        return MLClient(
            credential,
            subscription,
            settings.azure_resource_group,
            **where,
            show_progress=False,
            enable_telemetry=telemetry,
        )
    if settings.local_emulator:
        trust_emulator(settings)
    metadata = {
        "azure_portal": f"{url}/portal/",
        "resource_manager": f"{url}/",
        "active_directory": f"{url}/aad/",
        "aml_resource_id": f"{url}/",
        "storage_endpoint": "emulator.local",
        "registry_discovery_endpoint": f"{url}/",
    }
    return MLClient(
        EmulatorCredential(),
        subscription,
        settings.azure_resource_group,
        **where,
        cloud=f"{EMULATOR_CLOUD}-{hashlib.sha256(url.encode()).hexdigest()[:8]}",  # the SDK keeps a cloud's first URLs
        cloud_metadata=metadata,
        show_progress=False,
        enable_telemetry=False,
    )


def describe_target(settings: Settings) -> str:
    where = settings.emulator_url or "Azure"
    return (
        f"workspace {settings.azure_workspace_name!r} in resource group {settings.azure_resource_group!r} "
        f"of subscription {settings.azure_subscription_id or '(emulator default)'} on {where}"
    )


def storage_refusal(exc: BaseException) -> tuple[str, str] | None:
    """(storage account, error code) when `exc`, or an error it was raised from, is Storage refusing the caller
    for want of a data role; else None. azure-ai-ml wraps Storage's 403 (an upload's in a ValidationException,
    a download's in an MlException: `_artifacts/_blob_storage_helper.py`), so the chain is searched."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(seen, HttpResponseError) and seen.status_code == 403 and response is not None:
            code = getattr(seen, "error_code", None) or response.headers.get("x-ms-error-code")
            account = _BLOB_ACCOUNT.search(str(response.request.url))
            if account and code in STORAGE_ROLE_CODES:
                return account.group(1), str(code)
        seen = seen.__cause__ or seen.__context__
    return None


def _caller() -> str:
    client_id = os.environ.get("AZURE_CLIENT_ID")
    return f"service principal {client_id} (AZURE_CLIENT_ID)" if client_id else "the identity you signed in as"


@contextmanager
def _storage_refusals(action: str) -> Iterator[None]:
    """A storage 403 for want of a data role becomes a ConfigError naming the account, the role and the caller."""
    try:
        yield
    except (HttpResponseError, MlException) as exc:
        refused = storage_refusal(exc)
        if refused is None:
            raise
        account, code = refused
        msg = (
            f"{action}: storage account {account!r} refused {_caller()} ({code}). The datastore is identity-based, "
            f"so azure-ai-ml reaches it with your own Microsoft Entra token: grant that identity the role "
            f"'Storage Blob Data Contributor' on storage account {account!r} ('Storage Blob Data Reader' is "
            "enough to download)"
        )
        raise ConfigError(msg) from exc


@contextmanager
def translated(settings: Settings, action: str) -> Iterator[None]:
    """Raise Azure's failures as the project's errors: transient ones retryable, the rest naming what to fix."""
    try:
        with _storage_refusals(action):
            yield
    except ClientAuthenticationError as exc:
        msg = (
            f"{action}: Azure refused the credential ({first_line(exc)}). Sign in with `az login`, or set "
            "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID for a service principal"
        )
        raise ConfigError(msg) from exc
    except ResourceNotFoundError as exc:
        if "ResourceGroupNotFound" in str(exc):
            msg = (
                f"{action}: resource group {settings.azure_resource_group!r} does not exist; check AZURE_RESOURCE_GROUP"
            )
            raise ConfigError(msg) from exc
        if "SubscriptionNotFound" in str(exc):
            raise ConfigError(f"{action}: subscription not found; check AZURE_SUBSCRIPTION_ID") from exc
        if workspace_missing(settings, exc):
            raise ConfigError(_workspace_missing(settings, action)) from exc
        raise MissingResourceError(f"{action}: {first_line(exc)}") from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientBackendError(f"{action}: could not reach Azure ML ({first_line(exc)})") from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        if status in RETRYABLE_STATUS:
            raise TransientBackendError(f"{action}: Azure ML answered {status} ({first_line(exc)})") from exc
        if status == 401 or status == 403:
            msg = f"{action}: Azure ML answered {status} ({first_line(exc)}); check the credential's role on the {describe_target(settings)}"
            raise ConfigError(msg) from exc
        if status < 400:  # a long-running operation's poll that reports its failure
            raise BackendError(f"{action} failed: {first_line(exc)}") from exc
        raise BackendError(f"{action}: Azure ML answered {status}: {first_line(exc)}") from exc
    except ValidationException as exc:
        raise BackendError(f"{action}: azure-ai-ml refused the request: {first_line(exc)}") from exc
    except MlException as exc:
        raise BackendError(f"{action}: {first_line(exc)}") from exc


def finished(poller: Any, timeout: float, action: str) -> Any:
    """Wait up to `timeout` s for a long-running operation; its result, or a BackendError that says it is not done.

    Not `poller.result(timeout)`: on an operation still running, azure-core parses the last status poll as the
    resource, and the SDK's deserializer fails with an AttributeError (seen against the emulator's realistic mode).
    """
    poller.wait(timeout=timeout)
    if not poller.done():
        raise BackendError(f"{action}: not finished after {timeout:g} s (MLOPS_AZUREML_DEPLOY_TIMEOUT_SECONDS)")
    return poller.result()


def workspace_missing(settings: Settings, exc: BaseException) -> bool:
    """Whether a not-found error is about the workspace itself (not a resource in it)."""
    text = str(exc)
    return "ResourceNotFound" in text and "workspaces/" + settings.azure_workspace_name in text


def _workspace_missing(settings: Settings, action: str) -> str:
    return (
        f"{action}: the {describe_target(settings)} does not exist; check AZUREML_WORKSPACE_NAME "
        "(or MLOPS_AZUREML_WORKSPACE_NAME), AZURE_RESOURCE_GROUP and AZURE_SUBSCRIPTION_ID"
    )


def first_line(exc: BaseException) -> str:
    """An Azure error's first line of text (its message, without the SDK's trailing details)."""
    text = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__

"""Managed online endpoints and the bundles they serve, on Azure ML.

- **Bundles** are the local backend's: the registered version's files are downloaded once
  (`models.download`) and packed by `infra.common.bundles`, so both backends serve the same
  `code/score.py`, model files and pinned conda file.
- **Deployments** are `ManagedOnlineDeployment`s of a bundle: `code_configuration` = its `code/` and
  `score.py`, the registered model version, the bundle's conda file on Azure ML's inference image,
  instance type and count from settings. A deployment that fails to start is deleted again, so a
  failed rollout leaves nothing behind; one still `Creating` when the wait ends is left in place
  (deleting it would throw away its image build) and the run fails saying so.
- **Traffic and mirror traffic** are the endpoint's `traffic` / `mirror_traffic`, set with one
  endpoint update each.
- **Waits** are the SDK's pollers (`client.finished`: wait, then the result), bounded by
  `MLOPS_AZUREML_DEPLOY_TIMEOUT_SECONDS`, plus `MLOPS_AZUREML_IMAGE_BUILD_SECONDS` for a deployment whose
  scoring environment was just created. A write that Azure refuses with 409 Conflict because another
  operation on the endpoint or deployment is still running is sent again once it may have finished,
  within the same bound (endpoint and deployment writes only: elsewhere a 409 is not transient).
- **Invoke** is a plain HTTPS POST to the scoring URI with the key (`get_keys`), or the token in
  `aml_token` mode, exactly as any client would call it.
- **Collected scoring data**: none (`collected` answers None); the deployments enable no data collector.
- The YAML of every endpoint and deployment sent is written to `MLOPS_HOME/azureml/yaml/`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from azure.ai.ml import MLClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from infra.azureml import entities
from infra.azureml.client import finished, first_line, translated, workspace_missing
from infra.backend import SHARED_MODEL, Bundle, Collected, DeploymentInfo, EndpointState, Invocation, ModelVersion
from infra.common.bundles import BundleBuilder
from infra.errors import BackendError, ConfigError, MissingResourceError, TransientBackendError
from infra.settings import Settings
from model import layout

_log = logging.getLogger(__name__)
_KEY_SECONDS = 300
_CONFLICT_FIRST_WAIT = 1.0  # s: after a 409 "operation in progress"; doubled each time, up to
_CONFLICT_LONGEST_WAIT = 30.0  # recorded operations take 50-390 s (azureml_emulator/endpoints.py)


class AzureMLBundles:
    """Bundles of registered versions, built from the files `models.download` fetches."""

    def __init__(self, client: MLClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.local = BundleBuilder(settings.home / "azureml" / "packages", settings.package)
        self.models = settings.home / "azureml" / "models"

    def build(self, model: ModelVersion) -> Bundle:
        return self.local.build(model.model_copy(update={"path": str(self.files(model))}))

    def files(self, model: ModelVersion, *, fresh: bool = False) -> Path:
        """The version's files on this machine (downloaded once): the folder holding the model and its lock.
        `fresh`: downloaded again even if a copy is here (`make azure-smoke` proves the download itself)."""
        target = self.models / model.name / str(model.version)
        if fresh or not (target / layout.METRICS_FILE).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
            try:
                with translated(self.settings, f"downloading {model.id}"):
                    self.client.models.download(model.name, version=str(model.version), download_path=str(staging))
                found = sorted(staging.rglob(layout.METRICS_FILE))
                if not found:
                    raise BackendError(f"{model.id}: its files on Azure ML hold no {layout.METRICS_FILE}")
                shutil.rmtree(target, ignore_errors=True)
                os.rename(found[0].parent, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return target


_STILL_RUNNING = ("Creating", "Updating")  # an operation on the deployment has not finished


class AzureMLEndpoints:
    def __init__(self, client: MLClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.yaml = settings.home / "azureml" / "yaml"
        self._keys: dict[str, tuple[float, str, str]] = {}
        self._tls = _tls_context()  # after make_client, which adds the emulator's CA to REQUESTS_CA_BUNDLE
        self._keys_lock = threading.Lock()

    # ---- reading ----
    def get(self, name: str) -> EndpointState | None:
        with translated(self.settings, f"reading online endpoint {name}"):
            try:
                endpoint = self.client.online_endpoints.get(name)
            except ResourceNotFoundError as exc:
                if workspace_missing(self.settings, exc):
                    raise
                return None
            deployments = list(self.client.online_deployments.list(name))
        traffic = {k: int(v) for k, v in (endpoint.traffic or {}).items()}
        return EndpointState(
            name=name,
            url=str(endpoint.scoring_uri or "").removesuffix("/score"),
            running=endpoint.provisioning_state == "Succeeded",
            deployments={
                # the tag names the workspace's version also when the model is a registry's (promoted)
                str(d.name): DeploymentInfo(
                    model=(d.tags or {}).get("mlops.model") or model_id(str(d.model)),
                    traffic=traffic.get(str(d.name), 0),
                )
                for d in deployments
                if d.provisioning_state == "Succeeded"
            },
        )

    def _state(self, name: str) -> EndpointState:
        state = self.get(name)
        if state is None:
            raise MissingResourceError(f"online endpoint {name!r} does not exist on Azure ML")
        return state

    # ---- changing ----
    def ensure(self, name: str) -> EndpointState:
        if self.get(name) is None:
            endpoint = entities.online_endpoint(self.settings, name)
            entities.write_yaml(endpoint, self.yaml, "online-endpoint")
            _log.info("creating online endpoint %s", name)
            try:
                self._wait(
                    lambda: self.client.online_endpoints.begin_create_or_update(endpoint),
                    f"creating online endpoint {name}",
                )
            except BackendError as exc:
                if name_taken(exc):
                    raise ConfigError(name_taken_message("MLOPS_ENDPOINT_NAME", name)) from None
                raise
        return self._state(name)

    def add_deployment(self, name: str, deployment: str, bundle: Bundle) -> EndpointState:
        environment, new_image = ensure_environment(self.client, self.settings, bundle)
        entity = entities.online_deployment(
            self.settings, name, deployment, bundle, environment, model=self._shared_model(bundle.model)
        )
        entities.write_yaml(entity, self.yaml, f"online-deployment-{name}")
        # a new environment's image is built before the deployment starts: wait for that too
        timeout = self.settings.aml_deploy_timeout_seconds + (self.settings.aml_image_build_seconds if new_image else 0)
        _log.info("creating deployment %s/%s serving %s", name, deployment, bundle.model)
        try:
            self._wait(
                lambda: self.client.online_deployments.begin_create_or_update(entity),
                f"creating deployment {name}/{deployment}",
                timeout=timeout,
            )
        except BackendError as failure:
            if isinstance(failure, TransientBackendError):
                raise
            state = self._deployment_state(name, deployment)
            if state in _STILL_RUNNING:
                # Deleting it would throw away its image build and start, and Azure may refuse a delete meanwhile
                raise BackendError(
                    f"deployment {name}/{deployment} is still {state} on Azure ML after {timeout:g} s "
                    "(MLOPS_AZUREML_DEPLOY_TIMEOUT_SECONDS, plus MLOPS_AZUREML_IMAGE_BUILD_SECONDS for a new environment): "
                    "it is left in place, not deleted, and takes no traffic; deploy again once it has finished"
                ) from failure
            self._delete_failed(name, deployment)
            raise
        return self._state(name)

    def _shared_model(self, model: str) -> str | None:
        """The registry version (`azureml://registries/...`) a workspace version was promoted from, which the
        deployment then serves (the registry's files, as Microsoft Learn's "Share models across workspaces with
        registries" deploys one); None for a version of the workspace's own."""
        name, _, version = model.rpartition(":")
        with translated(self.settings, f"reading model {model}"):
            found = self.client.models.get(name, version=version)
        reference = str((found.properties or {}).get(SHARED_MODEL, ""))
        return reference if reference.startswith("azureml://registries/") else None

    def _deployment_state(self, name: str, deployment: str) -> str | None:
        """A deployment's provisioning state, or None when it does not exist or cannot be read."""
        try:
            found = self.client.online_deployments.get(name=deployment, endpoint_name=name)
        except HttpResponseError:
            return None
        state = found.provisioning_state  # the REST model's str enum: its value, not str() of it ("…State.CREATING")
        return str(getattr(state, "value", state)) if state else None

    def _delete_failed(self, name: str, deployment: str) -> None:
        """A deployment that failed to start is removed: Azure ML keeps it (and bills it) otherwise."""
        try:
            self.client.online_deployments.begin_delete(name=deployment, endpoint_name=name).result(
                timeout=self.settings.aml_deploy_timeout_seconds
            )
            _log.warning("deleted the failed deployment %s/%s", name, deployment)
        except HttpResponseError as exc:
            _log.warning("could not delete the failed deployment %s/%s: %s", name, deployment, exc)

    def set_traffic(self, name: str, traffic: dict[str, int]) -> EndpointState:
        self._update(name, f"setting the traffic of {name} to {traffic}", traffic=traffic)
        return self._state(name)

    def set_mirror(self, name: str, mirror: dict[str, int]) -> dict[str, int]:
        live = sorted(d for d, share in mirror.items() if share and self._live_traffic(name).get(d))
        if live:  # Azure ML refuses it; said here, as the local endpoint says it, instead of dropping the share
            raise BackendError(
                f"online endpoint {name!r}: deployment(s) {', '.join(live)} take live traffic and cannot also "
                "receive mirror traffic"
            )
        endpoint = self._update(name, f"setting the mirror traffic of {name} to {mirror}", mirror_traffic=mirror)
        return {k: int(v) for k, v in (endpoint.mirror_traffic or {}).items() if v}

    def _live_traffic(self, name: str) -> dict[str, int]:
        with translated(self.settings, f"reading online endpoint {name}"):
            return {d: int(share) for d, share in (self.client.online_endpoints.get(name).traffic or {}).items()}

    def _update(self, name: str, action: str, **changes: dict[str, int]) -> Any:
        def start() -> Any:  # read again before each attempt: a write refused as in conflict must not undo another's
            endpoint = self.client.online_endpoints.get(name)
            for field, value in changes.items():
                setattr(endpoint, field, value)
            # Azure ML refuses a deployment both live and mirrored: one that now takes traffic stops being mirrored
            live = {d for d, share in (endpoint.traffic or {}).items() if share}
            endpoint.mirror_traffic = {d: p for d, p in (endpoint.mirror_traffic or {}).items() if p and d not in live}
            entities.write_yaml(endpoint, self.yaml, "online-endpoint")
            return self.client.online_endpoints.begin_create_or_update(endpoint)

        return self._wait(start, action)

    def remove_deployment(self, name: str, deployment: str) -> EndpointState:
        action = f"deleting deployment {name}/{deployment}"
        self._wait(lambda: self.client.online_deployments.begin_delete(name=deployment, endpoint_name=name), action)
        return self._state(name)

    def delete(self, name: str) -> bool:
        """Delete the endpoint and its deployments (teardown); False if it did not exist."""
        if self.get(name) is None:
            return False
        self._wait(lambda: self.client.online_endpoints.begin_delete(name=name), f"deleting online endpoint {name}")
        return True

    def _wait(self, start: Callable[[], Any], action: str, *, timeout: float | None = None) -> Any:
        """Start a long-running operation and wait for its poller, within the deploy timeout (or `timeout`); the
        SDK's progress dots on stdout go to the debug log. While another operation on the same endpoint or
        deployment runs, Azure refuses the write with 409 Conflict: it is sent again after a back-off of 1 s
        doubling to 30 s (or the answer's Retry-After if longer; azure-core has already followed it three times),
        until the same deadline."""
        limit = self.settings.aml_deploy_timeout_seconds if timeout is None else timeout
        deadline = time.monotonic() + limit
        printed = io.StringIO()
        backoff = _CONFLICT_FIRST_WAIT
        try:
            with translated(self.settings, action), contextlib.redirect_stdout(printed):
                while True:
                    try:
                        poller = start()
                    except HttpResponseError as exc:
                        delay = _conflict_delay(exc, backoff)
                        if delay is None or time.monotonic() + delay > deadline:
                            raise
                        _log.info(
                            "%s: another operation is in progress (%s); trying again in %.1f s",
                            action,
                            first_line(exc),
                            delay,
                        )
                        time.sleep(delay)
                        backoff = min(backoff * 2, _CONFLICT_LONGEST_WAIT)
                        continue
                    return finished(poller, max(deadline - time.monotonic(), 0.0), action)
        finally:
            if printed.getvalue().strip():
                _log.debug("azure-ai-ml printed: %s", printed.getvalue().strip())

    # ---- calling ----
    def key(self, name: str) -> str:
        return self._caller(name)[0]

    def _caller(self, name: str) -> tuple[str, str]:
        """The endpoint's key (or token) and scoring URI, read once and kept for a few minutes: a rollout
        step sends many requests, and each must not cost two control-plane calls."""
        with self._keys_lock:
            cached = self._keys.get(name)
            if cached and time.monotonic() - cached[0] < _KEY_SECONDS:
                return cached[1], cached[2]
        with translated(self.settings, f"reading the keys of {name}"):
            credentials = self.client.online_endpoints.get_keys(name)
            scoring_uri = str(self.client.online_endpoints.get(name).scoring_uri or "")
        value = getattr(credentials, "primary_key", None) or getattr(credentials, "access_token", None)
        if not value or not scoring_uri:
            raise BackendError(f"online endpoint {name!r} returned no key or token, or no scoring URI")
        with self._keys_lock:
            self._keys[name] = (time.monotonic(), str(value), scoring_uri)
        return str(value), scoring_uri

    def invoke(
        self, name: str, body: bytes, *, deployment: str | None = None, headers: dict[str, str] | None = None
    ) -> Invocation:
        key, scoring_uri = self._caller(name)
        sent = {"authorization": f"Bearer {key}", "content-type": "application/json", **(headers or {})}
        if deployment:
            sent["azureml-model-deployment"] = deployment
        started = time.perf_counter()
        try:
            with httpx.Client(verify=self._tls, timeout=60) as client:
                response = client.post(scoring_uri, content=body, headers=sent)
        except httpx.TransportError as exc:
            raise TransientBackendError(f"online endpoint {name!r} at {scoring_uri} did not answer: {exc}") from exc
        return Invocation(
            status=response.status_code,
            body=response.content,
            headers=dict(response.headers),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def stop(self, name: str) -> bool:
        """Managed online endpoints are not stopped, only deleted (`mlops cleanup --teardown`): nothing to do here."""
        _log.info("online endpoint %s on Azure ML keeps running; delete it with `mlops cleanup --teardown`", name)
        return False

    def collected(self, name: str, since: float) -> Collected | None:  # noqa: ARG002 - the protocol's
        """None: our deployments enable no data collector (Azure ML collects a deployment's scoring data only when
        its scoring script calls `azureml-ai-monitoring`'s `Collector` and the deployment turns collection on, into
        the workspace's blob store), so on Azure ML the drift monitor compares batch scoring data only
        (infra/azureml/monitoring.py)."""
        return None


def _conflict_delay(error: HttpResponseError, backoff: float) -> float | None:
    """How long to wait before sending a write again that met another operation in progress (409 Conflict), or
    None for any other error (a name taken in the region is final, whatever its status)."""
    if error.status_code != 409 or name_taken(error):
        return None
    response = getattr(error, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    try:  # never sooner than the back-off: a Retry-After of 0 must not make a busy loop
        return max(float(header), backoff) if header else backoff
    except ValueError:  # an HTTP date: not sent by Azure ML as far as is known; the back-off instead
        return backoff


def name_taken(error: BaseException) -> bool:
    """Whether Azure refused an endpoint name held elsewhere in the region (online and batch word it differently)."""
    return bool(re.search(r"unique within (a|the) region", str(error)))


def name_taken_message(setting: str, name: str) -> str:
    return (
        f"{setting}={name!r}: that endpoint name is taken in this Azure region (endpoint names are unique per "
        f"region across all Azure customers); set {setting} to another name, or unset it for the default with a "
        "suffix of this workspace's own"
    )


def ensure_environment(
    client: MLClient, settings: Settings, bundle: Bundle, *, batch: bool = False
) -> tuple[str, bool]:
    """The bundle's scoring environment on Azure ML (created once per content): its `azureml:name:version`, and
    whether it was created now (its image is then built by the first deployment that uses it)."""
    environment = entities.scoring_environment(settings, bundle.path / "conda.yml", batch=batch)
    created = False
    with translated(settings, f"creating the scoring environment of {bundle.model}"):
        try:
            client.environments.get(environment.name, version=environment.version)
        except ResourceNotFoundError:
            entities.write_yaml(environment, settings.home / "azureml" / "yaml", "environment")
            client.environments.create_or_update(environment)
            created = True
    return f"azureml:{environment.name}:{environment.version}", created


def _tls_context() -> ssl.SSLContext:
    """Trust what the SDK trusts: `REQUESTS_CA_BUNDLE` when set (the emulator's CA is added there), else the system's."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    return ssl.create_default_context(cafile=bundle) if bundle else ssl.create_default_context()


def model_id(reference: str) -> str:
    """`name:version` of a deployment's model, given as an ARM id (`.../models/<name>/versions/<v>`) or `azureml:name:version`."""
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-2] == "versions":
        return f"{parts[-3]}:{parts[-1]}"
    return reference.removeprefix("azureml:")

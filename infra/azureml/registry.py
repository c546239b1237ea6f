"""The model registry on Azure ML: model versions with the local registry's tags, properties and semantics.

- **Idempotent on content.** The SHA-256 of the model folder (as the local registry computes it) is the
  version's property `mlops.content_hash`; registering bytes that a version already holds returns it.
- **No re-upload.** A folder downloaded from a training job is registered from the job's output,
  `azureml://jobs/<job>/outputs/model/paths/model/`, which also records the lineage (`jobName`).
- **Versions** are explicit: the next integer after the newest. Of two registrations racing for one
  number, the loser's write is refused as a write of an existing version's path (Azure's UserError
  "Asset paths cannot be updated.", which azure-ai-ml raises as `AssetPathException` when the text
  matches exactly, else as a 400), and it looks again (finding the winner's version when the bytes
  are the same).
- **Aliases.** Azure ML has none, so an alias is a tag on the version, `mlops.alias.<alias>`, whose value
  is the time it was set. The alias points at the version whose tag is newest. Moving it is one write
  (the new version's tag), so readers see the old or the new version, never none or a mix. The old
  versions' tags are then removed as tidying; until then they are simply older.
- Tags and properties named `mlops.*` are the registry's own and are not shown in `ModelVersion.tags`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.ai.ml import MLClient
from azure.ai.ml.constants import AssetTypes, ListViewType
from azure.ai.ml.entities import Model
from azure.ai.ml.exceptions import AssetPathException
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from infra.azureml.client import make_client, translated
from infra.azureml.jobs import OUTPUT
from infra.backend import ModelVersion, Registration
from infra.common.hashing import folder_sha256
from infra.errors import BackendError, ConfigError, MissingResourceError
from infra.settings import Settings

CONTENT_HASH = "mlops.content_hash"
ALIAS_PREFIX = "mlops.alias."
_OWN = "mlops."
_ATTEMPTS = 5
ASSET_PATH_REFUSED = "Asset paths cannot be updated."  # Azure's UserError for a second write of a version


class AzureMLRegistry:
    def __init__(self, client: MLClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.downloads = settings.home / "azureml" / "jobs"

    def register(self, name: str, source: Path, *, tags: dict[str, str], properties: dict[str, str]) -> Registration:
        content_hash = folder_sha256(source)
        with translated(self.settings, f"registering {name}"):
            for _ in range(_ATTEMPTS):
                held = [
                    m
                    for m in self._models(name, archived=True)
                    if (m.properties or {}).get(CONTENT_HASH) == content_hash
                ]
                if held:
                    return Registration(model=self._version(held[0]), created=False)
                version = 1 + max(
                    (int(m.version) for m in self._models(name, archived=True) if str(m.version).isdigit()), default=0
                )
                entity = Model(
                    name=name,
                    version=str(version),
                    path=self._path(source, properties),
                    type=AssetTypes.CUSTOM_MODEL,
                    description=f"{name} {version}, registered by mlops",
                    tags=dict(tags),
                    properties={**properties, CONTENT_HASH: content_hash},
                )
                try:
                    created = self.client.models.create_or_update(entity)
                except AssetPathException:
                    continue  # another writer took this version: look again
                except HttpResponseError as exc:
                    if exc.status_code == 400 and ASSET_PATH_REFUSED in str(exc):
                        continue
                    raise
                return Registration(model=self._version(created), created=True)
        raise BackendError(
            f"registering {name}: {_ATTEMPTS} concurrent writers kept taking the next version; try again"
        )

    def _path(self, source: Path, properties: dict[str, str]) -> str:
        """The job output when `source` is a training job's download (no upload), else the folder (uploaded)."""
        job = properties.get("job_name", "")
        downloaded = self.downloads / job / "download" / "named-outputs" / OUTPUT / "model"
        if job and source.resolve() == downloaded.resolve():
            return f"azureml://jobs/{job}/outputs/{OUTPUT}/paths/model/"
        return str(source)

    def _models(self, name: str, *, archived: bool = False) -> list[Any]:
        view = ListViewType.ALL if archived else ListViewType.ACTIVE_ONLY
        try:
            return list(self.client.models.list(name=name, list_view_type=view))
        except ResourceNotFoundError:
            return []

    def get(self, name: str, version: int) -> ModelVersion:
        with translated(self.settings, f"reading model {name}:{version}"):
            try:
                return self._version(self.client.models.get(name, version=str(version)))
            except ResourceNotFoundError:
                known = [
                    str(m.version) for m in sorted(self._models(name, archived=True), key=lambda m: int(m.version))
                ]
                msg = f"model {name!r} has no version {version} (registered versions: {', '.join(known) or 'none'})"
                raise MissingResourceError(msg) from None

    def list(self, name: str | None = None, *, include_archived: bool = False) -> list[ModelVersion]:
        with translated(self.settings, "listing models"):
            names = [name] if name is not None else sorted(str(c.name) for c in self.client.models.list())
            versions = [self._version(m) for n in names for m in self._models(n, archived=include_archived)]
        return sorted(versions, key=lambda v: (v.name, v.version))

    def set_alias(self, name: str, alias: str, version: int) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        key = ALIAS_PREFIX + alias
        with translated(self.settings, f"moving alias {alias} of {name} to version {version}"):
            try:
                target = self.client.models.get(name, version=str(version))
            except ResourceNotFoundError:
                self.get(name, version)  # raises, naming the versions there are
                raise
            target.tags = {**(target.tags or {}), key: stamp}
            self.client.models.create_or_update(target)  # the one write that moves the alias
            for other in self._models(name, archived=True):
                if str(other.version) != str(version) and key in (other.tags or {}):
                    with contextlib.suppress(HttpResponseError):
                        other.tags = {k: v for k, v in other.tags.items() if k != key}
                        self.client.models.create_or_update(other)

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        version = self.aliases(name).get(alias)
        return None if version is None else self.get(name, version)

    def aliases(self, name: str) -> dict[str, int]:
        newest: dict[str, tuple[str, int]] = {}
        with translated(self.settings, f"reading the aliases of {name}"):
            for m in self._models(name, archived=True):
                for key, stamp in (m.tags or {}).items():
                    if key.startswith(ALIAS_PREFIX):
                        alias = key.removeprefix(ALIAS_PREFIX)
                        if alias not in newest or stamp > newest[alias][0]:
                            newest[alias] = (stamp, int(m.version))
        return {alias: version for alias, (_, version) in sorted(newest.items())}

    def archive(self, name: str, version: int) -> bool:
        current = self.get(name, version)
        if current.archived:
            return False
        with translated(self.settings, f"archiving {name}:{version}"):
            self.client.models.archive(name, version=str(version))
        return True

    def _version(self, model: Any) -> ModelVersion:
        properties = dict(model.properties or {})
        created = getattr(model.creation_context, "created_at", None) or datetime.now(UTC)
        return ModelVersion(
            name=str(model.name),
            version=int(model.version),
            content_hash=str(properties.get(CONTENT_HASH, "")),
            path=str(model.path),
            tags={k: str(v) for k, v in (model.tags or {}).items() if not k.startswith(_OWN)},
            properties={k: str(v) for k, v in properties.items() if not k.startswith(_OWN)},
            created_time=created,
            archived=str(getattr(model, "stage", "")) == "Archived",
        )


class AzureMLSharedRegistry(AzureMLRegistry):
    """An Azure ML registry the environments share (`MLClient(registry_name=...)`), with the same rules as a
    workspace's registry: explicit consecutive versions, tags, properties, idempotent on the content hash. A
    version's files are uploaded where the registry says (its temporary data reference), not to a workspace."""

    def __init__(self, client: MLClient, settings: Settings, registry: str) -> None:
        super().__init__(client, settings)
        self.registry = registry

    def asset_id(self, model: ModelVersion) -> str:
        """The version as a deployment names it: `azureml://registries/<registry>/models/<name>/versions/<v>`."""
        return f"azureml://registries/{self.registry}/models/{model.name}/versions/{model.version}"


def shared_registry(settings: Settings) -> AzureMLSharedRegistry:
    """The registry `MLOPS_AZUREML_REGISTRY_NAME` names, reached with the workspace's credential and cloud; its
    discovery runs here, so a registry that does not exist or cannot be reached fails before anything is written."""
    name = settings.azureml_registry_name
    if not name:
        raise ConfigError(
            "promoting into an Azure ML workspace goes through an Azure ML registry: set MLOPS_AZUREML_REGISTRY_NAME "
            "(in the target environment's table of environments.toml, or in .env)"
        )
    with translated(settings, f"reaching Azure ML registry {name!r}"):
        client = make_client(settings, registry=name)
    return AzureMLSharedRegistry(client, settings, name)

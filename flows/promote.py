"""The promote flow: a source environment's champion (or a given version) → the shared registry (once, with its
lineage) → the target environment's registry → blue/green deploy there (smoke test, rollback, approval when the
target asks for one) → the target's champion, announced with `mlops.model.promoted`, recorded (since when, by whom)
and published with every environment side by side (the `environments` artifact)."""

from __future__ import annotations

from prefect import get_run_logger
from pydantic import BaseModel, ConfigDict

from flows._flow import flow
from flows.deploy import DEFAULT_ROLLOUT, DeployResult, deploy
from infra import environments
from infra.backend import ModelVersion
from infra.errors import ConfigError
from infra.factory import open_backend, open_shared_registry
from infra.settings import load_settings
from infra.telemetry import annotate
from tasks.environments_view import publish_environments, record_promotion
from tasks.promote import (
    crown_in_target,
    lineage,
    reach_target,
    register_in_target,
    share_model,
    shared_reference,
    source_version,
)
from tasks.rollout import RolloutPolicy


class PromoteResult(BaseModel):
    """What a promote run did: the source version, its copies (shared, target), whether each was new, the target's
    deployment, and whether the target's champion moved (False also when a reviewer rejected it)."""

    model_config = ConfigDict(frozen=True)

    source: ModelVersion
    source_environment: str
    target_environment: str
    shared: ModelVersion
    shared_created: bool
    target: ModelVersion
    target_created: bool
    deployment: DeployResult
    crowned: bool
    lineage: dict[str, str]


@flow(name="promote")
def promote(
    to: str,
    source: str = environments.DEFAULT,
    version: int | None = None,
    rollout: RolloutPolicy = DEFAULT_ROLLOUT,
    approval_timeout_seconds: int = 3600,
) -> PromoteResult:
    """Promote `source`'s champion (or `version`) into environment `to`.

    Everything is checked before anything is written: both environments exist and load, the source is on the local
    backend, the target (local, or an Azure ML workspace sharing through the Azure ML registry
    `MLOPS_AZUREML_REGISTRY_NAME`) and its registry can be reached, and the version passed its gate and is not
    archived. Promoting the same version again registers nothing new and deploys nothing.
    """
    annotate({"mlops.flow": "promote"})
    found = environments.load_environments()
    if to == source:
        raise ConfigError(f"promote --to {to!r} names the source environment itself")
    target_environment = found.get(to)
    with environments.using(source):
        source_settings = load_settings()
    with environments.using(to):
        target_settings = load_settings()
    if source_settings.backend != "local":
        raise ConfigError(
            f"environment {source!r} is on {source_settings.backend}: promotion takes its versions from an environment "
            "on the local backend only (the target may be local or azureml)"
        )
    if target_settings.home == source_settings.home:
        raise ConfigError(
            f"environments {source!r} and {to!r} share MLOPS_HOME {source_settings.home}: give each its own"
        )
    name = source_settings.model_name
    model = source_version(open_backend(source_settings), name, version, source)
    target = open_backend(target_settings)
    target_settings.home.mkdir(parents=True, exist_ok=True)  # the target can be written, before anything is
    shared_registry = open_shared_registry(target_settings)  # an Azure ML registry is discovered (reached) here
    if target_settings.backend != "local":
        reach_target(target, target_settings, to)
    found_lineage = lineage(model, source, source_settings)
    shared = share_model(shared_registry, model, found_lineage)
    reference = shared_reference(shared_registry, shared.model)
    registered = register_in_target(target, shared.model, found_lineage, to, model, reference)
    with environments.using(to):
        deployed = deploy(
            version=registered.model.version,
            model_name=name,
            rollout=rollout,
            require_approval=target_environment.approval,
            approval_timeout_seconds=approval_timeout_seconds,
        )
        rejected = deployed.note.startswith("rejected")
        crowned = False if rejected else crown_in_target(target, registered.model, source, to)
    if crowned:
        record_promotion(target_settings.home, registered.model, source)  # since when, by whom
    publish_environments()  # the `environments` artifact: which version serves where, after this promotion
    if rejected:
        get_run_logger().warning("%s not promoted to %r: %s", model.id, to, deployed.note)
    return PromoteResult(
        source=model,
        source_environment=source,
        target_environment=to,
        shared=shared.model,
        shared_created=shared.created,
        target=target.registry.get(name, registered.model.version),
        target_created=registered.created,
        deployment=deployed,
        crowned=crowned,
        lineage=found_lineage,
    )

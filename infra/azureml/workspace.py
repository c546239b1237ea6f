"""Provision and teardown on Azure ML: the workspace and what it needs, created once, deleted on request.

`ensure()` (the provision flow) checks every name first, then creates what is missing, and says what
it created (nothing, the second time):
- the workspace (`workspaces.begin_create`: Azure ML adds its storage account, key vault and
  App Insights; the container registry is created on the first image build),
- the training and scoring compute clusters (`AmlCompute`, min nodes from settings, 0 by default),
- the training environment (the lock's pinned libraries).
The default blob datastore comes with the workspace; a workspace without one is an error.

`tidy()` (the cleanup flow) scales idle clusters to 0 nodes. `delete()` (cleanup's teardown) deletes
the online and batch endpoints, the clusters and the workspace with its storage and key vault.
"""

from __future__ import annotations

import logging
import re

from azure.ai.ml import MLClient
from azure.core.exceptions import ResourceNotFoundError

from infra.azureml import entities
from infra.azureml.batch import delete_batch_endpoint, ensure_batch_endpoint
from infra.azureml.client import describe_target, finished, translated
from infra.azureml.endpoints import AzureMLEndpoints
from infra.azureml.jobs import AzureMLJobs
from infra.errors import BackendError, ConfigError
from infra.settings import Settings

_log = logging.getLogger(__name__)
_RULES = {
    "AZUREML_WORKSPACE_NAME": (r"[A-Za-z0-9][A-Za-z0-9_\-]{2,32}", "3-33 letters, digits, '-' or '_'"),
    "AZURE_RESOURCE_GROUP": (
        r"[-\w.()]{0,89}[-\w()]",
        "1-90 letters, digits, '-', '_', '.' or '()', not ending in '.'",
    ),
    "AZURE_LOCATION": (r"[a-z0-9]+", "an Azure region name such as eastus"),
    "MLOPS_AZUREML_BASE_NAME": (r"[A-Za-z0-9]{3,10}", "3-10 letters or digits"),
    "MLOPS_AZUREML_TRAIN_CLUSTER_NAME": (
        r"[A-Za-z][A-Za-z0-9\-]{1,15}",
        "2-16 letters, digits or '-', starting with a letter",
    ),
    "MLOPS_AZUREML_SCORE_CLUSTER_NAME": (
        r"[A-Za-z][A-Za-z0-9\-]{1,15}",
        "2-16 letters, digits or '-', starting with a letter",
    ),
}


def check_names(settings: Settings) -> None:
    """Every name provision will send, checked before any call: a `ConfigError` naming the first bad one."""
    values = {
        "AZUREML_WORKSPACE_NAME": settings.azure_workspace_name,
        "AZURE_RESOURCE_GROUP": settings.azure_resource_group,
        "AZURE_LOCATION": settings.azure_location,
        "MLOPS_AZUREML_BASE_NAME": settings.base_name,
        "MLOPS_AZUREML_TRAIN_CLUSTER_NAME": settings.aml_compute_cluster_name,
        "MLOPS_AZUREML_SCORE_CLUSTER_NAME": settings.aml_compute_cluster_name_scoring,
    }
    for variable, value in values.items():
        pattern, rule = _RULES[variable]
        if not re.fullmatch(pattern, value):
            raise ConfigError(f"{variable}={value!r} is not a valid name: use {rule}")


class AzureMLWorkspace:
    def __init__(self, client: MLClient, settings: Settings, endpoints: AzureMLEndpoints, jobs: AzureMLJobs) -> None:
        self.client = client
        self.settings = settings
        self.endpoints = endpoints
        self.jobs = jobs
        self.yaml = settings.home / "azureml" / "yaml"

    def ensure(self) -> list[str]:
        settings = self.settings
        check_names(settings)
        changes: list[str] = []
        timeout = settings.aml_deploy_timeout_seconds
        with translated(settings, "checking the workspace"):
            try:
                self.client.workspaces.get(settings.azure_workspace_name)
            except ResourceNotFoundError:
                workspace = entities.workspace(settings)
                entities.write_yaml(workspace, self.yaml, "workspace")
                _log.info("creating the %s", describe_target(settings))
                created = finished(self.client.workspaces.begin_create(workspace), timeout, "creating the workspace")
                extras = [
                    part for part in (created.storage_account, created.key_vault, created.application_insights) if part
                ]
                changes.append(
                    f"created workspace {settings.azure_workspace_name} in {settings.azure_resource_group} "
                    f"({settings.azure_location}) with {', '.join(e.rsplit('/', 1)[-1] for e in extras) or 'its resources'}"
                )
        with translated(settings, "checking the compute clusters"):
            for scoring in (False, True):
                cluster = entities.compute_cluster(settings, scoring=scoring)
                try:
                    self.client.compute.get(cluster.name)
                except ResourceNotFoundError:
                    entities.write_yaml(cluster, self.yaml, "compute")
                    finished(
                        self.client.compute.begin_create_or_update(cluster),
                        timeout,
                        f"creating compute cluster {cluster.name}",
                    )
                    changes.append(
                        f"created compute cluster {cluster.name} ({cluster.size}, "
                        f"{cluster.min_instances}-{cluster.max_instances} nodes)"
                    )
        with translated(settings, "checking the default datastore"):
            try:
                self.client.datastores.get_default()
            except ResourceNotFoundError:
                raise BackendError(f"the {describe_target(settings)} has no default datastore") from None
        with translated(settings, "checking the training environment"):
            environment, created_now = self.jobs.ensure_environment()
        if created_now:
            changes.append(f"created environment {environment.removeprefix('azureml:')}")
        changes += self.reserve_names()
        return changes

    def reserve_names(self) -> list[str]:
        """Create the online and batch endpoints (no deployment: nothing billed) so that their names, unique per
        Azure region across all customers, are known to be ours before anything trains; a name held elsewhere is
        a ConfigError naming its setting."""
        settings, changes = self.settings, []
        online = settings.endpoint_name
        if self.endpoints.get(online) is None:
            self.endpoints.ensure(online)
            changes.append(f"created online endpoint {online} (no deployment yet)")
        with translated(settings, f"checking batch endpoint {settings.aml_batch_endpoint_name}"):
            _, created = ensure_batch_endpoint(self.client, settings)
        if created:
            changes.append(f"created batch endpoint {settings.aml_batch_endpoint_name} (no deployment yet)")
        return changes

    def tidy(self) -> list[str]:
        """Clusters kept warm (min nodes above 0) with no node busy go back to 0 nodes.

        The update is a fresh `AmlCompute` (this cluster's size and maximum, minimum 0), not the fetched
        entity: azure-ai-ml 1.35.2 cannot send back a cluster it read (it reads network settings with no
        subnet and then fails turning that subnet into an id).
        """
        changes = []
        with translated(self.settings, "scaling idle compute"):
            for scoring in (False, True):
                wanted = entities.compute_cluster(self.settings, scoring=scoring)
                try:
                    cluster = self.client.compute.get(wanted.name)
                except ResourceNotFoundError:
                    continue
                if not cluster.min_instances:
                    continue
                nodes = self.client.compute.list_nodes(wanted.name)
                if any(str(node.node_state).lower() != "idle" for node in nodes):
                    continue
                wanted.size, wanted.max_instances, wanted.min_instances = cluster.size, cluster.max_instances, 0
                self.client.compute.begin_create_or_update(wanted).result(
                    timeout=self.settings.aml_deploy_timeout_seconds
                )
                changes.append(f"scaled idle compute cluster {wanted.name} from {cluster.min_instances} to 0 nodes")
        return changes

    def delete(self) -> list[str]:
        """Delete what provision (and the flows) created: endpoints, clusters, the workspace and its resources."""
        settings, timeout = self.settings, self.settings.aml_deploy_timeout_seconds
        changes = []
        with translated(settings, "checking the workspace"):
            try:
                self.client.workspaces.get(settings.azure_workspace_name)
            except ResourceNotFoundError:
                return []
        if self.endpoints.delete(settings.endpoint_name):
            changes.append(f"deleted online endpoint {settings.endpoint_name}")
        with translated(settings, "deleting the batch endpoint"):
            if delete_batch_endpoint(self.client, settings):
                changes.append(f"deleted batch endpoint {settings.aml_batch_endpoint_name}")
        with translated(settings, "deleting the compute clusters"):
            for name in (settings.aml_compute_cluster_name, settings.aml_compute_cluster_name_scoring):
                try:
                    finished(self.client.compute.begin_delete(name), timeout, f"deleting compute cluster {name}")
                    changes.append(f"deleted compute cluster {name}")
                except ResourceNotFoundError:
                    pass
        with translated(settings, "deleting the workspace"):
            # permanently: a soft-deleted workspace holds its name for 14 days, and `provision` after a teardown
            # (the usual reset) would fail until then (Microsoft Learn, "Workspace soft deletion")
            finished(
                self.client.workspaces.begin_delete(
                    settings.azure_workspace_name, delete_dependent_resources=True, permanently_delete=True
                ),
                timeout,
                "deleting the workspace",
            )
        changes.append(
            f"deleted workspace {settings.azure_workspace_name} permanently (not recoverable; its name is free"
            " at once) with its storage account and key vault"
        )
        return changes

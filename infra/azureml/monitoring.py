"""Azure ML's own drift monitor of the online deployment: a `MonitorSchedule` with a data drift signal.

The `monitor` flow computes drift itself on either backend; on Azure ML it also keeps this schedule in
place, so the workspace's monitoring page tracks the same thing: the serving deployment's inputs (the
scoring data asset) against the serving version's training data (its `reference.csv`, registered as an
MLTable data asset), PSI per feature at MLOPS_DRIFT_PSI_THRESHOLD, daily.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from azure.ai.ml import MLClient
from azure.core.exceptions import ResourceNotFoundError

from infra.azureml import entities
from infra.azureml.client import translated
from infra.azureml.endpoints import AzureMLEndpoints
from infra.backend import ModelVersion, Packages
from infra.errors import MissingResourceError
from infra.settings import Settings
from model.layout import REFERENCE_FILE

_log = logging.getLogger(__name__)


class AzureMLMonitoring:
    def __init__(self, client: MLClient, settings: Settings, packages: Packages, endpoints: AzureMLEndpoints) -> None:
        self.client = client
        self.settings = settings
        self.packages = packages
        self.endpoints = endpoints

    def ensure(self, model: ModelVersion, thresholds: dict[str, float]) -> str | None:
        """Create or update the schedule for the deployment serving `model`; None (and why, in the log) when no
        deployment serves it or no scoring data asset exists yet."""
        endpoint = self.settings.endpoint_name
        state = self.endpoints.get(endpoint)
        serving = [n for n, d in (state.deployments if state else {}).items() if d.model == model.id and d.traffic]
        if not serving:
            _log.info("no deployment of %s serves %s: no Azure ML monitor to keep", endpoint, model.id)
            return None
        production = self._production_data()
        if production is None:
            return None
        reference = self._reference_data(model)
        schedule = entities.monitor_schedule(
            self.settings,
            endpoint,
            serving[0],
            reference,
            production,
            list(self.settings.package.features),
            thresholds["psi"],
        )
        entities.write_yaml(schedule, self.settings.home / "azureml" / "yaml", "monitor")
        with translated(self.settings, f"creating the model monitor {schedule.name}"):
            self.client.schedules.begin_create_or_update(schedule).result(
                timeout=self.settings.aml_deploy_timeout_seconds
            )
        return str(schedule.name)

    def _production_data(self) -> str | None:
        name = self.settings.scoring_dataset_name
        with translated(self.settings, f"reading the scoring data asset {name}"):
            try:
                asset = self.client.data.get(name, label="latest")
            except ResourceNotFoundError:
                _log.info("no scoring data asset %s yet (batch-score creates it): no Azure ML monitor yet", name)
                return None
        return f"azureml:{asset.name}:{asset.version}"

    def _reference_data(self, model: ModelVersion) -> str:
        """The version's baseline as an MLTable data asset (registered once per version)."""
        name = entities.reference_asset_name(model.name)
        with translated(self.settings, f"registering the drift baseline of {model.id}"):
            try:
                asset = self.client.data.get(name, version=str(model.version))
            except ResourceNotFoundError:
                source = self.packages.build(model).path / "model" / REFERENCE_FILE
                if not source.is_file():
                    raise MissingResourceError(
                        f"{model.id} has no {REFERENCE_FILE} (trained before drift monitoring): train a new version"
                    ) from None
                with tempfile.TemporaryDirectory(prefix="mlops-reference-") as folder:
                    data = entities.reference_table(model.name, model.version, source, Path(folder))
                    asset = self.client.data.create_or_update(data)
        return f"azureml:{asset.name}:{asset.version}"

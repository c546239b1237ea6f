"""Azure ML's own model monitor: not created, because the data it would need does not exist.

A `MonitorSchedule` reads its production data either from what the online deployment's data collector writes
(`azureml-ai-monitoring`'s `Collector` called in the scoring script, the collections enabled on the
deployment) or, for data of your own, through a preprocessing component that turns each data window into an
MLTable. Our scoring data is neither: it is batch input, CSV part files in a `uri_folder`, with no timestamps.
Azure ML accepts such a schedule and then fails every daily run of it (each one billed on serverless Spark);
the first versions of this project created one (`<endpoint>-drift`). Drift is the `monitor` flow's own work on
both backends (`tasks/monitor.py`), with the same thresholds, on every batch and daily.

What is left here: a schedule that an earlier version created (tagged `mlops.managed`) is disabled, so it stops
failing and costing, and is kept with its run history. Sources: Microsoft Learn, "Monitor performance of models
deployed to production" (custom production data needs `pre_processing_component`), and the azureml-examples
monitoring README; the emulator refuses the configuration (`azureml_emulator/handlers/schedules.py`).
"""

from __future__ import annotations

import logging

from azure.ai.ml import MLClient
from azure.core.exceptions import ResourceNotFoundError

from infra.azureml.client import finished, translated
from infra.backend import ModelVersion
from infra.settings import Settings

_log = logging.getLogger(__name__)


def legacy_schedule_name(endpoint: str) -> str:
    """The name earlier versions gave Azure ML's drift monitor of `endpoint`."""
    return f"{endpoint}-drift"


class AzureMLMonitoring:
    def __init__(self, client: MLClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def ensure(self, model: ModelVersion, thresholds: dict[str, float]) -> str | None:  # noqa: ARG002
        """No Azure ML monitor is kept (see the module's docstring): disable the one an earlier version created,
        if it is still enabled. Returns None: the `monitor` flow is the monitor."""
        name = legacy_schedule_name(self.settings.endpoint_name)
        with translated(self.settings, f"reading the model monitor {name}"):
            try:
                schedule = self.client.schedules.get(name)
            except ResourceNotFoundError:
                return None
        if (schedule.tags or {}).get("mlops.managed") != "true" or not schedule.is_enabled:
            return None
        with translated(self.settings, f"disabling the model monitor {name}"):
            finished(
                self.client.schedules.begin_disable(name),
                self.settings.aml_deploy_timeout_seconds,
                f"disabling the model monitor {name}",
            )
        _log.warning(
            "disabled Azure ML's model monitor %s, which an earlier version created: every run of it fails (its "
            "production data is batch input, which Azure ML reads as data collector output); drift of %s is the "
            "monitor flow's own. Delete it in the studio when you no longer need its history.",
            name,
            model.id,
        )
        return None

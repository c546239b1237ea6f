"""The Azure ML model monitor earlier versions of the project created, built as they built it (for the tests of
what the monitor step and the emulator do with one left behind)."""

from __future__ import annotations

from azure.ai.ml import Input
from azure.ai.ml.constants import AssetTypes, MonitorDatasetContext
from azure.ai.ml.entities import (
    BaselineDataRange,
    DataDriftMetricThreshold,
    DataDriftSignal,
    MonitorDefinition,
    MonitoringTarget,
    MonitorSchedule,
    NumericalDriftMetrics,
    ProductionData,
    RecurrencePattern,
    RecurrenceTrigger,
    ReferenceData,
    ServerlessSparkCompute,
)

from infra.azureml import AzureMLBackend


def earlier_monitor(
    backend: AzureMLBackend,
    *,
    name: str = "",
    endpoint: str | None = None,
    component: str | None = None,
    managed: bool = True,
) -> MonitorSchedule:
    """The scoring data asset (batch input, CSV parts in a `uri_folder`) as production and reference data, a daily
    recurrence, `<endpoint>:blue` as target; `component` its preprocessing component (None: none, as they had)."""
    endpoint = endpoint or backend.settings.endpoint_name
    scoring = backend.client.data.get(backend.settings.scoring_dataset_name, label="latest")
    data = Input(type=AssetTypes.URI_FOLDER, path=f"azureml:{scoring.name}:{scoring.version}")
    signal = DataDriftSignal(
        production_data=ProductionData(
            input_data=data,
            data_context=MonitorDatasetContext.MODEL_INPUTS,
            data_window=BaselineDataRange(lookback_window_size="P1D", lookback_window_offset="P0D"),
            pre_processing_component=component,
        ),
        reference_data=ReferenceData(input_data=data, data_context=MonitorDatasetContext.TRAINING),
        features=["age", "bmi"],
        metric_thresholds=DataDriftMetricThreshold(numerical=NumericalDriftMetrics(population_stability_index=0.2)),
        alert_enabled=False,
    )
    return MonitorSchedule(
        name=name or f"{backend.settings.endpoint_name}-drift",
        trigger=RecurrenceTrigger(frequency="day", interval=1, schedule=RecurrencePattern(hours=7, minutes=0)),
        create_monitor=MonitorDefinition(
            compute=ServerlessSparkCompute(instance_type="standard_e4s_v3", runtime_version="3.4"),
            monitoring_target=MonitoringTarget(ml_task="regression", endpoint_deployment_id=f"azureml:{endpoint}:blue"),
            monitoring_signals={"data-drift": signal},
        ),
        tags={"mlops.managed": "true"} if managed else {"owner": "someone"},
    )

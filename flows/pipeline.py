"""The end-to-end pipeline: train-register, deploy the champion (a no-op when it already serves), batch-score,
monitor the scored data for drift."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from flows._flow import flow
from flows.batch_score import batch_score
from flows.deploy import DEFAULT_ROLLOUT, DeployResult, deploy
from flows.monitor import monitor
from flows.train_register import TrainRegisterResult, train_register
from infra.telemetry import annotate
from model.gate import GatePolicy
from tasks.batch import BatchSummary
from tasks.monitor import DriftSummary
from tasks.rollout import RolloutPolicy


class PipelineResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    training: TrainRegisterResult
    deployment: DeployResult
    batch: BatchSummary
    drift: DriftSummary


@flow(name="pipeline")
def pipeline(
    alpha: float | None = None,
    gate: GatePolicy | None = None,
    force: bool = False,
    rollout: RolloutPolicy = DEFAULT_ROLLOUT,
) -> PipelineResult:
    """Train, gate and register; package, deploy with blue/green traffic and smoke-test the champion; batch-score
    the default input with the version now serving; compare the scored data with that version's training data."""
    annotate({"mlops.flow": "pipeline"})
    # Train, evaluate, register
    training = train_register(alpha=alpha, gate=gate, force=force)
    # Package, deploy, smoke test
    deployment = deploy(rollout=rollout)
    # Batch score
    batch = batch_score(model_version=deployment.model.version)
    # Drift of the scored data (a drift event here triggers nothing: the pipeline is one run)
    drift = monitor(
        scored=batch.scored,
        output=batch.output,
        inputs=batch.inputs,
        model_version=deployment.model.version,
        include_online=False,
    )
    return PipelineResult(training=training, deployment=deployment, batch=batch, drift=drift)

"""The end-to-end pipeline: train-register, then deploy the champion (a no-op when it already serves) beside
batch-scoring with it and monitoring the scored data for drift.

The order is the data's, not one step after another: the local endpoint's process starts beside training,
since deploy needs it whatever training decides; batch-score scores with the champion's files from
the registry, not through the endpoint, so it and the monitor run while deploy rolls the same version out.
A failed deploy still fails the run, after the batch and monitor runs have ended.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

from prefect import flow
from pydantic import BaseModel, ConfigDict

from flows.batch_score import batch_score
from flows.deploy import DEFAULT_ROLLOUT, DeployResult, deploy
from flows.monitor import monitor
from flows.train_register import TrainRegisterResult, train_register
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import annotate
from model.gate import GatePolicy
from tasks.batch import BatchSummary
from tasks.deploy import ensure_endpoint
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
    the default input with that version; compare the scored data with that version's training data."""
    annotate({"mlops.flow": "pipeline"})
    settings = load_settings()
    # The local endpoint's process starts beside training; deploy's own ensure-endpoint finds it up (or reports
    # why it is not). On Azure ML, train-register's reserve-endpoint-names creates the endpoint before training.
    starting = (
        ensure_endpoint.submit(open_backend(settings), settings.endpoint_name) if settings.backend == "local" else None
    )
    # Train, evaluate, register
    training = train_register(alpha=alpha, gate=gate, force=force)
    if starting is not None:
        starting.wait()
    champion = training.champion.version if training.champion else None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline-deploy") as beside:
        # Package, deploy, smoke test: in a thread of its own, as a sub-flow of this run (its context copied)
        deploying = beside.submit(contextvars.copy_context().run, deploy, rollout=rollout)
        # Batch score with the champion, then the drift of the scored data (a drift event here triggers nothing:
        # the pipeline is one run)
        batch = batch_score(model_version=champion)
        drift = monitor(
            scored=batch.scored,
            output=batch.output,
            inputs=batch.inputs,
            model_version=champion,
            include_online=False,
        )
        deployment = deploying.result()
    return PipelineResult(training=training, deployment=deployment, batch=batch, drift=drift)

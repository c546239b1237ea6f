"""The end-to-end pipeline: train-register, then deploy the champion (a no-op when it already serves)."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, ConfigDict

from flows.deploy import DEFAULT_ROLLOUT, DeployResult, deploy
from flows.train_register import DEFAULT_GATE, TrainRegisterResult, train_register
from model.gate import GatePolicy
from tasks.rollout import RolloutPolicy


class PipelineResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    training: TrainRegisterResult
    deployment: DeployResult


@flow(name="pipeline")
def pipeline(
    alpha: float | None = None,
    gate: GatePolicy = DEFAULT_GATE,
    force: bool = False,
    rollout: RolloutPolicy = DEFAULT_ROLLOUT,
) -> PipelineResult:
    """Train, gate and register; then package, deploy with blue/green traffic and smoke-test the champion."""
    # Train, evaluate, register
    training = train_register(alpha=alpha, gate=gate, force=force)
    # Package, deploy, smoke test
    deployment = deploy(rollout=rollout)
    return PipelineResult(training=training, deployment=deployment)

"""Prefect tasks: one pipeline step each, thin wrappers over the backend with their retry and cache policy."""

from infra.common.train_inputs import TrainRequest
from tasks.evaluate import Champion, evaluate_model, find_champion
from tasks.register import promote_model, register_model
from tasks.report import publish_evaluation, publish_model_card, publish_model_json
from tasks.train import (
    check_training_data,
    reserve_endpoint_names,
    resolve_training_inputs,
    train_model,
)

__all__ = [
    "Champion",
    "TrainRequest",
    "check_training_data",
    "evaluate_model",
    "find_champion",
    "promote_model",
    "publish_evaluation",
    "publish_model_card",
    "publish_model_json",
    "register_model",
    "reserve_endpoint_names",
    "resolve_training_inputs",
    "train_model",
]

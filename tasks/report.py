"""Tasks that publish what a run decided: the evaluation, the model card and `model.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from infra.backend import ModelVersion, TrainOutput
from infra.common.train_inputs import TrainRequest
from model.gate import Decision
from tasks.evaluate import Champion


@task(name="publish-evaluation", cache_policy=NO_CACHE)
def publish_evaluation(
    request: TrainRequest, candidate: TrainOutput, champion: Champion | None, decision: Decision, cache_hit: bool
) -> str:
    """A markdown artifact with both metric sets, the decision and its reason."""
    verdict = "**Promoted**" if decision.promoted else "**Not promoted**"
    lines = [
        "# Evaluation",
        "",
        f"{verdict}: {decision.reason}",
        "",
        _metrics_table(candidate.metrics, champion),
        "",
        f"- gate metric: `{decision.metric}`",
        f"- training: {'served from the Prefect cache' if cache_hit else 'ran'} (job `{candidate.job_name}`, cache key `{request.cache_key[:16]}`)",
        f"- champion: {f'`{champion.model.id}` from the {champion.source}' if champion else 'none yet'}",
    ]
    markdown = "\n".join(lines)
    create_markdown_artifact(markdown=markdown, key="evaluation", description=decision.reason[:200])
    return markdown


@task(name="publish-model-card", cache_policy=NO_CACHE)
def publish_model_card(
    model: ModelVersion, request: TrainRequest, candidate: TrainOutput, champion: Champion | None, decision: Decision
) -> str:
    """A markdown model card: metrics, the comparison, data, parameters and lineage."""
    data = candidate.training.get("data", {})
    split = candidate.training.get("split", {})
    lines = [
        f"# Model card: {model.name} version {model.version}",
        "",
        "## Metrics (test split)",
        "",
        _metrics_table(candidate.metrics, champion),
        "",
        "## Decision",
        "",
        decision.reason,
        "",
        "## Data",
        "",
        f"- file: `{request.spec.data}`",
        f"- sha256: `{request.data_sha256}`",
        f"- rows: {data.get('rows')}; split {split.get('train')} train / {split.get('test')} test "
        f"(test_size {split.get('test_size')}, random_state {split.get('random_state')})",
        "",
        "## Parameters",
        "",
        "```json",
        json.dumps(request.spec.parameters, indent=2, sort_keys=True),
        "```",
        "",
        "## Lineage",
        "",
        *(f"- {name}: `{value}`" for name, value in sorted(model.tags.items()) if name not in candidate.metrics),
        f"- registry path: `{model.path}`",
        f"- content sha256: `{model.content_hash}`",
    ]
    markdown = "\n".join(lines)
    create_markdown_artifact(markdown=markdown, key="model-card", description=f"{model.id}")
    return markdown


@task(name="publish-model-json", cache_policy=NO_CACHE)
def publish_model_json(model: ModelVersion, home: Path) -> Path:
    """MLOpsPython's `model.json` (createdTime, framework, frameworkVersion, id, name, version): a file and an artifact."""
    document = model_json(model)
    path = home / "model.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    create_markdown_artifact(
        markdown=f"```json\n{json.dumps(document, indent=2)}\n```", key="model-json", description=model.id
    )
    get_run_logger().info("wrote %s", path)
    return path


def model_json(model: ModelVersion) -> dict[str, Any]:
    return {
        "createdTime": model.created_time.isoformat(),
        "framework": model.properties.get("framework", "Custom"),
        "frameworkVersion": model.properties.get("framework_version"),
        "id": model.id,
        "name": model.name,
        "version": model.version,
    }


def _metrics_table(candidate: dict[str, float], champion: Champion | None) -> str:
    rows = ["| metric | candidate | champion |", "|---|---:|---:|"]
    for name in sorted(candidate):
        theirs = champion.metrics.get(name) if champion else None
        rows.append(f"| {name} | {candidate[name]:.6g} | {'—' if theirs is None else f'{theirs:.6g}'} |")
    if champion:
        rows[0] = f"| metric | candidate | champion ({champion.model.id}) |"
    return "\n".join(rows)

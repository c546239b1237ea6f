"""The CI definitions parse, run the tests through .ci/run, and train through deployments/ci.sh."""

from __future__ import annotations

from typing import Any

import yaml

from infra.settings import checkout_root


def _commands(steps: list[dict[str, Any]]) -> list[str]:
    return [str(step.get("run") or step.get("script") or "") for step in steps]


def test_github_workflow() -> None:
    document = yaml.safe_load((checkout_root() / ".github" / "workflows" / "ci.yml").read_text())
    triggers = document[True]  # YAML reads the key `on` as True
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert any(".ci/run" in c for c in _commands(document["jobs"]["test"]["steps"]))
    train = document["jobs"]["train"]
    assert "refs/heads/main" in train["if"]
    assert train["env"]["PREFECT_API_URL"] == "${{ secrets.PREFECT_API_URL }}"
    assert train["env"]["PREFECT_API_KEY"] == "${{ secrets.PREFECT_API_KEY }}"
    assert _commands(train["steps"])[-2:] == [
        "bash deployments/ci.sh deploy",
        "bash deployments/ci.sh run train-register/nightly",
    ]


def test_azure_pipeline() -> None:
    document = yaml.safe_load((checkout_root() / "deployments" / "azure-pipelines.yml").read_text())
    stages = {stage["stage"]: stage for stage in document["stages"]}
    assert any(".ci/run" in c for c in _commands(stages["Test"]["jobs"][0]["steps"]))
    train_steps = stages["Train"]["jobs"][0]["steps"]
    assert _commands(train_steps)[-2:] == [
        "bash deployments/ci.sh deploy",
        "bash deployments/ci.sh run train-register/nightly",
    ]
    assert all(step["env"]["PREFECT_API_KEY"] == "$(PREFECT_API_KEY)" for step in train_steps[-2:])
    assert "refs/heads/main" in stages["Train"]["condition"]

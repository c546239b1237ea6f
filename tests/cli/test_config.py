"""`mlops config show`: every effective setting, by area, with where it came from; secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.settings import Settings, checkout_root
from tests.support.cli import run_mlops


def _show(env: dict[str, str | None], *args: str) -> subprocess.CompletedProcess[str]:
    result = run_mlops("config", "show", *args, env=env)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, str | None]:
    """One setting from the environment, one from .env, an old name in .env, a secret; the rest default or derived."""
    env_file = tmp_path / "staging.env"
    env_file.write_text("MLOPS_EXPERIMENT_NAME=from-file\nMLOPS_AML_BATCH_MAX_RETRIES=7\nMLOPS_ENDPOINT_PORT=1111\n")
    return {
        "MLOPS_ENV_FILE": str(env_file),
        "MLOPS_HOME": str(tmp_path / "home"),
        "MLOPS_ENDPOINT_PORT": "5999",  # the environment wins over the file
        "MLOPS_BLOB_CONNECTION_STRING": "AccountKey=very-secret",
        "MLOPS_MODEL_PACKAGE": "models/classification",
    }


def test_json_lists_every_setting_once_with_its_source(sources: dict[str, str | None], tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = json.loads(_show(sources, "--json").stdout)["settings"]
    assert sorted(row["field"] for row in rows) == sorted(Settings.model_fields)
    by_field = {row["field"]: row for row in rows}

    def seen(field: str) -> tuple[Any, ...]:
        row = by_field[field]
        return row["variable"], row["value"], row["source"]

    assert seen("endpoint_port") == ("MLOPS_ENDPOINT_PORT", 5999, "environment")
    assert seen("experiment_name") == ("MLOPS_EXPERIMENT_NAME", "from-file", ".env")
    assert by_field["experiment_name"]["file"] == str(tmp_path / "staging.env")
    assert seen("model_package") == (
        "MLOPS_MODEL_PACKAGE",
        str(checkout_root() / "models" / "classification"),
        "environment",
    )
    assert seen("endpoint_name") == ("MLOPS_ENDPOINT_NAME", "classification-endpoint", "derived")
    assert seen("aml_env_name") == ("MLOPS_AZUREML_TRAINING_ENV_NAME", "classification_training_env", "derived")
    assert seen("model_name") == ("MLOPS_MODEL_NAME", "classification_model", "derived")
    assert seen("backend") == ("MLOPS_BACKEND", "local", "default")
    assert seen("aml_batch_max_retries") == ("MLOPS_AML_BATCH_MAX_RETRIES", 7, ".env")
    assert by_field["aml_batch_max_retries"]["deprecated"] is True
    assert by_field["experiment_name"]["deprecated"] is False
    assert seen("blob_connection_string") == ("MLOPS_BLOB_CONNECTION_STRING", "<hidden>", "environment")
    assert seen("prefect_database_url")[1:] == (None, "default")
    assert [row["area"] for row in rows if row["field"].startswith("aml_")] == ["azureml"] * 22


def test_text_names_each_variable_value_and_source_and_hides_secrets(sources: dict[str, str | None]) -> None:
    result = _show(sources)
    lines = result.stdout.splitlines()
    assert "very-secret" not in result.stdout
    assert lines[0] == "core:"
    for variable, value, source in [
        ("MLOPS_ENDPOINT_PORT", "5999", "[environment]"),
        ("MLOPS_EXPERIMENT_NAME", "from-file", "[.env ("),
        ("MLOPS_SCORING_DATASET_NAME", "classification_scoring_ds", "[derived]"),
        ("MLOPS_AZUREML_TRAIN_CLUSTER_NAME", "train-cluster", "[default]"),
        ("MLOPS_BLOB_CONNECTION_STRING", "<hidden>", "[environment]"),
        ("MLOPS_AML_BATCH_MAX_RETRIES", "7", "a deprecated name: use MLOPS_AZUREML_BATCH_MAX_RETRIES"),
    ]:
        (line,) = [line for line in lines if line.split()[:1] == [variable]]
        assert line.split()[1] == value, line
        assert source in line, line
    assert len([line for line in lines if line.startswith("  ")]) == len(Settings.model_fields)


def test_the_mlops_command_has_it(tmp_path: Path) -> None:
    """The real program, in a child process: the command is registered, and a bad setting stops it (exit 2)."""
    env = {"PATH": os.environ["PATH"], "MLOPS_ENV_FILE": "", "MLOPS_HOME": str(tmp_path / "home")}
    ok = subprocess.run(
        [sys.executable, "-m", "cli.main", "config", "show", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=checkout_root(),
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert {row["field"] for row in json.loads(ok.stdout)["settings"]} == set(Settings.model_fields)
    bad = subprocess.run(
        [sys.executable, "-m", "cli.main", "config", "show"],
        capture_output=True,
        text=True,
        env={**env, "MLOPS_ENDPOINT_PORT": "port"},
        cwd=checkout_root(),
        check=False,
    )
    assert bad.returncode == 2
    assert "MLOPS_ENDPOINT_PORT='port'" in bad.stderr

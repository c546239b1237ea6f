"""Settings: defaults, environment and .env parsing, and errors that name the variable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.errors import ConfigError
from infra.settings import checkout_root, load_settings


class TestDefaults:
    def test_local_backend_and_home_in_the_checkout(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("MLOPS_HOME", raising=False)
        settings = load_settings()
        assert settings.backend == "local"
        assert settings.home == checkout_root() / ".mlops"
        assert settings.model_name == "diabetes_regression_model.pkl"
        assert settings.experiment_name == "mlopspython"
        assert settings.params_file is None  # the package's
        assert settings.parameters_file == checkout_root() / "models" / "diabetes" / "parameters.json"
        assert settings.model_package == checkout_root() / "models" / "diabetes"
        assert settings.package.name == "diabetes"

    def test_the_model_package_names_the_model_unless_model_name_is_set(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLOPS_MODEL_PACKAGE", "models/classification")
        settings = load_settings()
        assert (settings.model_package, settings.model_name) == (
            checkout_root() / "models" / "classification",
            "classification_model",
        )
        assert settings.default_data_file.name == "classification.csv"
        monkeypatch.setenv("MLOPS_MODEL_NAME", "mine")
        assert load_settings().model_name == "mine"

    def test_a_folder_that_is_not_a_model_package_is_named(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("MLOPS_MODEL_PACKAGE", str(tmp_path))
        with pytest.raises(ConfigError, match=r"MLOPS_MODEL_PACKAGE=.*no mlops-model.toml"):
            load_settings()

    def test_the_former_sample_folder_means_models_diabetes_with_a_warning(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`MLOPS_MODEL_PACKAGE=model` in an older `.env`: the diabetes sample moved to `models/diabetes/` (issue 23)."""
        monkeypatch.setenv("MLOPS_MODEL_PACKAGE", "model")
        with pytest.warns(FutureWarning, match=r"moved to models/diabetes"):
            settings = load_settings()
        assert settings.model_package == checkout_root() / "models" / "diabetes"
        assert settings.package.name == "diabetes"


class TestEndpointNames:
    """Azure ML endpoint names are unique per region across all customers (issue 22, point 4)."""

    def test_on_azure_ml_the_defaults_get_a_suffix_of_the_workspace_s_own(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("MLOPS_ENDPOINT_NAME", "MLOPS_AML_BATCH_ENDPOINT_NAME"):
            monkeypatch.delenv(name, raising=False)
        assert load_settings().endpoint_name == "diabetes-endpoint"  # locally: no region to share
        monkeypatch.setenv("MLOPS_BACKEND", "azureml")
        monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub-1")
        first = load_settings()
        assert re.fullmatch(r"diabetes-endpoint-[0-9a-f]{8}", first.endpoint_name)
        assert re.fullmatch(r"diabetes-batch-[0-9a-f]{8}", first.aml_batch_endpoint_name)
        assert first.endpoint_name[-8:] == first.aml_batch_endpoint_name[-8:]
        assert load_settings().endpoint_name == first.endpoint_name  # stable for the workspace
        monkeypatch.setenv("AZUREML_WORKSPACE_NAME", "other-ws")
        assert load_settings().endpoint_name != first.endpoint_name
        monkeypatch.setenv("MLOPS_ENDPOINT_NAME", "my-endpoint")
        assert load_settings().endpoint_name == "my-endpoint"  # a name set is used as it is

    def test_a_long_default_stays_within_azure_s_32_characters(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from infra.settings import regional_endpoint_name

        monkeypatch.setenv("MLOPS_BACKEND", "azureml")
        monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub-1")
        name = regional_endpoint_name("a-very-long-endpoint-name-of-thirty", load_settings())
        assert len(name) == 32
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]", name)


class TestSources:
    def test_environment_variables(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "ws"))
        monkeypatch.setenv("MLOPS_MODEL_NAME", "my-model")
        monkeypatch.setenv("MLOPS_AML_CLUSTER_MAX_NODES", "8")
        settings = load_settings()
        assert (settings.home, settings.model_name, settings.aml_cluster_max_nodes) == (tmp_path / "ws", "my-model", 8)

    def test_azure_names_users_know_are_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub-1")
        monkeypatch.setenv("MLOPS_AZURE_RESOURCE_GROUP", "rg-1")
        settings = load_settings()
        assert (settings.azure_subscription_id, settings.azure_resource_group) == ("sub-1", "rg-1")

    def test_env_file_is_read_and_environment_wins(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        env_file = tmp_path / "staging.env"
        env_file.write_text("MLOPS_EXPERIMENT_NAME=from-file\nMLOPS_MODEL_NAME=file-model\n")
        monkeypatch.setenv("MLOPS_ENV_FILE", str(env_file))
        monkeypatch.setenv("MLOPS_MODEL_NAME", "env-model")
        settings = load_settings()
        assert (settings.experiment_name, settings.model_name) == ("from-file", "env-model")

    def test_missing_env_file_is_an_error(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("MLOPS_ENV_FILE", str(tmp_path / "nope.env"))
        with pytest.raises(ConfigError, match="MLOPS_ENV_FILE"):
            load_settings()


class TestInvalidValues:
    @pytest.mark.parametrize(
        ("variable", "value", "expected"),
        [
            ("MLOPS_BACKEND", "nonsense", "MLOPS_BACKEND='nonsense': Input should be 'local' or 'azureml'"),
            ("MLOPS_MODEL_NAME", "bad/name", "MLOPS_MODEL_NAME='bad/name'"),
            ("MLOPS_AML_CLUSTER_MAX_NODES", "many", "MLOPS_AML_CLUSTER_MAX_NODES='many'"),
            ("MLOPS_AML_CLUSTER_PRIORITY", "cheap", "MLOPS_AML_CLUSTER_PRIORITY='cheap'"),
            ("MLOPS_BASE_NAME", "x", "MLOPS_BASE_NAME='x': must be 3 to 10 letters or digits"),
            ("MLOPS_TRAIN_TIMEOUT_SECONDS", "-5", "MLOPS_TRAIN_TIMEOUT_SECONDS='-5'"),
            (
                "MLOPS_AML_BATCH_INSTANCE_COUNT",
                "0",
                "MLOPS_AML_BATCH_INSTANCE_COUNT='0': Input should be greater than or equal to 1",
            ),
            (
                "MLOPS_AML_BATCH_INSTANCE_COUNT",
                "two",
                "MLOPS_AML_BATCH_INSTANCE_COUNT='two': Input should be a valid integer",
            ),
            (
                "MLOPS_AML_BATCH_INSTANCE_COUNT",
                "5",
                "MLOPS_AML_BATCH_INSTANCE_COUNT must not exceed MLOPS_AML_CLUSTER_MAX_NODES_SCORING",
            ),
            (
                "MLOPS_AML_CLUSTER_MIN_NODES",
                "9",
                "MLOPS_AML_CLUSTER_MIN_NODES must not exceed MLOPS_AML_CLUSTER_MAX_NODES",
            ),
            (
                "MLOPS_BACKEND",
                "azureml",
                "MLOPS_AZURE_SUBSCRIPTION_ID is required when MLOPS_BACKEND=azureml (or MLOPS_AZUREML_EMULATOR=1",
            ),
        ],
    )
    def test_error_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
    ) -> None:
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError) as caught:
            load_settings()
        assert expected in str(caught.value)

    def test_home_that_is_a_file(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("x")
        monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "file"))
        with pytest.raises(ConfigError, match=r"MLOPS_HOME=.*exists and is not a folder"):
            load_settings()


@pytest.mark.parametrize("command", [["status"], ["train"]])
def test_mlops_refuses_to_start_with_a_bad_setting(command: list[str], tmp_path: Path) -> None:
    """The command stops before any work: exit 2, the variable named, nothing written."""
    env = {
        "PATH": "/usr/bin:/bin",
        "MLOPS_ENV_FILE": "",
        "MLOPS_BACKEND": "nonsense",
        "MLOPS_HOME": str(tmp_path / "ws"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", *command], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 2
    assert "MLOPS_BACKEND='nonsense'" in result.stderr
    assert not (tmp_path / "ws").exists()


def test_env_example_lists_every_setting() -> None:
    """`.env.example` is the list users read; a setting missing from it is a setting nobody finds."""
    from infra.settings import Settings, env_var

    text = (checkout_root() / ".env.example").read_text()
    missing = [env_var(name) for name in Settings.model_fields if f"{env_var(name)}=" not in text]
    assert missing == []

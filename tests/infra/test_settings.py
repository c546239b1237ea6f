"""Settings: defaults, environment and .env parsing, and errors that name the variable."""

from __future__ import annotations

import re
import shutil
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
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`MLOPS_MODEL_PACKAGE=model` in an older `.env`: the diabetes sample moved to `models/diabetes/` (issue 23)."""
        monkeypatch.setenv("MLOPS_MODEL_PACKAGE", "model")
        monkeypatch.setattr("model.package._MOVED_NOTICED", set())
        settings = load_settings()
        assert "moved to models/diabetes" in capsys.readouterr().err
        assert settings.model_package == checkout_root() / "models" / "diabetes"
        assert settings.package.name == "diabetes"


class TestEndpointNames:
    """Azure ML endpoint names are unique per region across all customers (issue 22, point 4)."""

    def test_on_azure_ml_the_defaults_get_a_suffix_of_the_workspace_s_own(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("MLOPS_ENDPOINT_NAME", "MLOPS_AZUREML_BATCH_ENDPOINT_NAME"):
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
        monkeypatch.setenv("MLOPS_AZUREML_TRAIN_CLUSTER_MAX_NODES", "8")
        settings = load_settings()
        assert (settings.home, settings.model_name, settings.aml_cluster_max_nodes) == (tmp_path / "ws", "my-model", 8)

    def test_azure_names_users_know_are_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub-1")
        monkeypatch.setenv("MLOPS_AZUREML_RESOURCE_GROUP", "rg-1")
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
            ("MLOPS_AZUREML_TRAIN_CLUSTER_MAX_NODES", "many", "MLOPS_AZUREML_TRAIN_CLUSTER_MAX_NODES='many'"),
            ("MLOPS_AZUREML_TRAIN_CLUSTER_PRIORITY", "cheap", "MLOPS_AZUREML_TRAIN_CLUSTER_PRIORITY='cheap'"),
            ("MLOPS_AZUREML_BASE_NAME", "x", "MLOPS_AZUREML_BASE_NAME='x': must be 3 to 10 letters or digits"),
            ("MLOPS_TRAIN_TIMEOUT_SECONDS", "-5", "MLOPS_TRAIN_TIMEOUT_SECONDS='-5'"),
            (
                "MLOPS_AZUREML_BATCH_INSTANCE_COUNT",
                "0",
                "MLOPS_AZUREML_BATCH_INSTANCE_COUNT='0': Input should be greater than or equal to 1",
            ),
            (
                "MLOPS_AZUREML_BATCH_INSTANCE_COUNT",
                "two",
                "MLOPS_AZUREML_BATCH_INSTANCE_COUNT='two': Input should be a valid integer",
            ),
            (
                "MLOPS_AZUREML_BATCH_INSTANCE_COUNT",
                "5",
                "MLOPS_AZUREML_BATCH_INSTANCE_COUNT must not exceed MLOPS_AZUREML_SCORE_CLUSTER_MAX_NODES",
            ),
            (
                "MLOPS_AZUREML_TRAIN_CLUSTER_MIN_NODES",
                "9",
                "MLOPS_AZUREML_TRAIN_CLUSTER_MIN_NODES must not exceed MLOPS_AZUREML_TRAIN_CLUSTER_MAX_NODES",
            ),
            (
                "MLOPS_BACKEND",
                "azureml",
                "MLOPS_AZUREML_SUBSCRIPTION_ID (or AZURE_SUBSCRIPTION_ID) is required when MLOPS_BACKEND=azureml "
                "(or MLOPS_AZUREML_EMULATOR=1",
            ),
            # an old spelling still set is the name the error gives (it still works, for one release)
            ("MLOPS_AML_CLUSTER_MAX_NODES", "many", "MLOPS_AML_CLUSTER_MAX_NODES='many'"),
            ("MLOPS_BASE_NAME", "x", "MLOPS_BASE_NAME='x': must be 3 to 10 letters or digits"),
        ],
    )
    def test_error_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
    ) -> None:
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError) as caught:
            load_settings()
        assert expected in str(caught.value)

    @pytest.mark.parametrize("variable", ["MLOPS_MODEL_NAME", "MLOPS_ENDPOINT_PORT", "MLOPS_AZUREML_BATCH_MAX_RETRIES"])
    def test_one_bad_value_is_one_line(self, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
        """The names derived after a bad value are not derived; they add no line of their own."""
        monkeypatch.setenv(variable, "not/valid")
        with pytest.raises(ConfigError) as caught:
            load_settings()
        assert str(caught.value).splitlines()[1:] == [
            f"  {variable}='not/valid': " + str(caught.value).split(": ", 1)[1]
        ]

    def test_a_derived_name_the_rules_refuse_names_its_variable(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        package = tmp_path / "package"
        shutil.copytree(checkout_root() / "models" / "classification", package)
        manifest = package / "mlops-model.toml"
        manifest.write_text(manifest.read_text().replace('name = "classification"', 'name = "Bad Name"', 1))
        monkeypatch.setenv("MLOPS_MODEL_PACKAGE", str(package))
        with pytest.raises(ConfigError, match=r"MLOPS_ENDPOINT_NAME='Bad Name-endpoint': must be 3 to 32"):
            load_settings()
        monkeypatch.setenv("MLOPS_ENDPOINT_NAME", "good-name")  # set, it wins; the next derived name is checked
        with pytest.raises(ConfigError, match=r"MLOPS_AZUREML_DATASET_NAME='Bad Name_ds'"):
            load_settings()

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


# ---- settings by area (issue 23) ----

DIABETES_NAMES = {
    "model_name": "diabetes_regression_model.pkl",
    "endpoint_name": "diabetes-endpoint",
    "scoring_input_filename": "diabetes_scoring_input.csv",
    "scoring_output_filename": "diabetes_scoring_output.csv",
    "scoring_dataset_name": "diabetes_scoring_ds",
    "dataset_name": "diabetes_ds",
    "aml_env_name": "diabetes_regression_training_env",
    "aml_env_name_scoring": "diabetes_regression_scoring_env",
    "aml_batch_endpoint_name": "diabetes-batch",
}


class TestDerivedNames:
    """Names that follow the model package are derived from its manifest unless their variable is set."""

    def test_the_diabetes_sample_yields_the_names_it_always_had(self) -> None:
        from infra.sections import DERIVED

        settings = load_settings()
        assert {field: getattr(settings, field) for field in DIABETES_NAMES} == DIABETES_NAMES
        assert set(DIABETES_NAMES) == DERIVED  # every derived name is checked here

    def test_another_package_names_them_after_itself(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLOPS_MODEL_PACKAGE", "models/diabetes_r")
        settings = load_settings()
        assert {field: getattr(settings, field) for field in DIABETES_NAMES} == {
            "model_name": "diabetes_r_model",
            "endpoint_name": "diabetes-r-endpoint",
            "scoring_input_filename": "diabetes_r_scoring_input.csv",
            "scoring_output_filename": "diabetes_r_scoring_output.csv",
            "scoring_dataset_name": "diabetes_r_scoring_ds",
            "dataset_name": "diabetes_r_ds",
            "aml_env_name": "diabetes_r_training_env",
            "aml_env_name_scoring": "diabetes_r_scoring_env",
            "aml_batch_endpoint_name": "diabetes-r-batch",
        }

    def test_a_variable_set_wins_over_the_derived_name(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLOPS_MODEL_PACKAGE", "models/classification")
        monkeypatch.setenv("MLOPS_ENDPOINT_NAME", "my-endpoint")
        monkeypatch.setenv("MLOPS_AZUREML_TRAINING_ENV_NAME", "my_env")
        settings = load_settings()
        assert (settings.endpoint_name, settings.aml_env_name) == ("my-endpoint", "my_env")
        assert settings.scoring_dataset_name == "classification_scoring_ds"

    def test_a_derived_endpoint_name_gets_the_workspace_suffix_on_azure(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLOPS_MODEL_PACKAGE", "models/classification")
        monkeypatch.setenv("MLOPS_BACKEND", "azureml")
        monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub-1")
        settings = load_settings()
        assert re.fullmatch(r"classification-endpoint-[0-9a-f]{8}", settings.endpoint_name)
        assert re.fullmatch(r"classification-batch-[0-9a-f]{8}", settings.aml_batch_endpoint_name)


class TestRenamedVariables:
    """Azure's variables have one prefix, MLOPS_AZUREML_; the old spellings work for one release, with a notice."""

    @pytest.mark.parametrize(
        ("old", "field", "value"),
        [
            ("AML_COMPUTE_CLUSTER_NAME", "aml_compute_cluster_name", "old-cluster"),
            ("AML_CLUSTER_PRIORITY_SCORING", "aml_cluster_priority_scoring", "dedicated"),
            ("AZURE_WORKSPACE_NAME", "azure_workspace_name", "old-ws"),
            ("DATASET_NAME", "dataset_name", "old_ds"),
        ],
    )
    def test_an_old_name_still_works_with_one_deprecation_line(self, old: str, field: str, value: str) -> None:
        old = f"MLOPS_{old}"
        script = (
            "from infra.settings import load_settings\n"
            "load_settings()\n"
            f"print(load_settings().{field})\n"  # a second load in the process: no second notice
        )
        env = {"PATH": "/usr/bin:/bin", "MLOPS_ENV_FILE": "", old: value}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=checkout_root(), check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == value
        notices = [line for line in result.stderr.splitlines() if "deprecated" in line]
        assert len(notices) == 1, result.stderr
        assert notices[0].startswith(f"mlops: {old} is deprecated, use MLOPS_AZUREML_")

    def test_names_azure_tooling_uses_are_not_deprecated(self) -> None:
        script = (
            "from infra.settings import load_settings\n"
            "s = load_settings()\n"
            "print(s.azure_subscription_id, s.azure_resource_group, s.azure_workspace_name, s.azure_location)\n"
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "MLOPS_ENV_FILE": "",
            "AZURE_SUBSCRIPTION_ID": "sub-1",
            "AZURE_RESOURCE_GROUP": "rg-1",
            "AZUREML_WORKSPACE_NAME": "ws-1",
            "AZURE_LOCATION": "westeurope",
        }
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=checkout_root(), check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["sub-1", "rg-1", "ws-1", "westeurope"]
        assert "deprecated" not in result.stderr

    def test_every_old_name_is_read_by_the_field_of_its_new_name(self) -> None:
        from infra.sections import RENAMED
        from infra.settings import Settings, env_var, variables

        owners = {env_var(field): field for field in Settings.model_fields}
        assert len(RENAMED) >= 25
        for old, new in RENAMED.items():
            assert new.startswith("MLOPS_AZUREML_"), new
            assert old in variables(owners[new]), old

    def test_the_new_name_wins_and_an_old_name_in_env_file_works(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        env_file = tmp_path / ".env"
        env_file.write_text("MLOPS_AML_ENDPOINT_AUTH_MODE=aml_token\nMLOPS_AML_BATCH_MAX_RETRIES=7\n")
        monkeypatch.setenv("MLOPS_ENV_FILE", str(env_file))
        monkeypatch.setenv("MLOPS_AZUREML_BATCH_MAX_RETRIES", "1")
        settings = load_settings()
        assert (settings.aml_endpoint_auth_mode, settings.aml_batch_max_retries) == ("aml_token", 1)

    def test_variables_read_nowhere_are_gone(self) -> None:
        from infra.settings import Settings

        assert not {"azure_tenant_id", "dataset_version", "datastore_name"} & set(Settings.model_fields)


class TestAreas:
    def test_azure_s_settings_are_defined_beside_its_adapter(self) -> None:
        from infra.azureml.settings import AzureMLSettings
        from infra.settings import SECTIONS, Settings, section_fields

        assert AzureMLSettings.__module__ == "infra.azureml.settings"
        assert issubclass(Settings, AzureMLSettings)
        azure = {field for field in Settings.model_fields if field.startswith(("azure_", "aml_", "azureml_"))}
        assert azure <= set(AzureMLSettings.model_fields)
        listed = [field for _, section in SECTIONS for field in section_fields(section)]
        assert sorted(listed) == sorted(Settings.model_fields)  # each field in exactly one area

    def test_every_section_s_checks_reach_the_composed_settings(self) -> None:
        """Two sections with a validator of the same name would silently drop one in `Settings`."""
        from infra.settings import SECTIONS, Settings

        composed = Settings.__pydantic_decorators__
        for _, section in SECTIONS:
            own = section.__pydantic_decorators__
            assert set(own.field_validators) <= set(composed.field_validators), section
            assert set(own.model_validators) <= set(composed.model_validators), section
            for name, validator in own.field_validators.items():
                assert composed.field_validators[name].info.fields == validator.info.fields, name

    def test_tracing_is_read_by_its_section_alone(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """MLOPS_TRACING from .env counts even when another setting is broken (one parse, no second reader)."""
        from infra.telemetry import tracing_enabled

        env_file = tmp_path / ".env"
        env_file.write_text(f"MLOPS_TRACING=false\nMLOPS_MODEL_PACKAGE={tmp_path / 'not-a-package'}\n")
        monkeypatch.setenv("MLOPS_ENV_FILE", str(env_file))
        with pytest.raises(ConfigError, match="MLOPS_MODEL_PACKAGE"):
            load_settings()
        assert tracing_enabled() is False
        env_file.write_text("MLOPS_TRACING=true\n")
        assert tracing_enabled() is True

    def test_check_model_finds_the_package_where_the_settings_do(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        from cli.model import configured_package

        env_file = tmp_path / ".env"
        env_file.write_text("MLOPS_MODEL_PACKAGE=models/classification\n")
        monkeypatch.setenv("MLOPS_ENV_FILE", str(env_file))
        assert configured_package() == load_settings().model_package == checkout_root() / "models" / "classification"


ENVIRONMENT_ONLY = {"MLOPS_ENV_FILE", "MLOPS_CACHE_DIR"}  # read with os.environ by the code that needs them
_VARIABLE = re.compile(r"\b(?:MLOPS|AZURE|AZUREML)_[A-Z0-9_]*[A-Z0-9]\b")


def unread_variables(text: str) -> list[str]:
    """The MLOPS_/AZURE_/AZUREML_ names in `text` that no setting reads as a field or alias, and no code reads
    from the environment."""
    from infra.settings import Settings, variables

    accepted = {name for field in Settings.model_fields for name in variables(field)}
    code = "\n".join(
        path.read_text()
        for folder in ("infra", "cli", "deployments", "flows", "tasks", "model", "azureml_emulator")
        for path in (checkout_root() / folder).rglob("*.py")
    )
    read_directly = {name for name in ENVIRONMENT_ONLY if f'"{name}"' in code or f'PREFIX}}{name[6:]}"' in code}
    return sorted({name for name in _VARIABLE.findall(text) if name not in accepted | read_directly})


def test_every_variable_in_env_example_is_read() -> None:
    """`.env.example` names only variables the code reads (and a made-up or removed one would be caught)."""
    text = (checkout_root() / ".env.example").read_text()
    assert len(_VARIABLE.findall(text)) > 70
    assert unread_variables(text) == []
    assert unread_variables("MLOPS_MADE_UP=1\nAZURE_NOT_A_SETTING=x\n") == ["AZURE_NOT_A_SETTING", "MLOPS_MADE_UP"]
    assert unread_variables("MLOPS_AZURE_TENANT_ID=\nMLOPS_DATASTORE_NAME=\n") == [
        "MLOPS_AZURE_TENANT_ID",
        "MLOPS_DATASTORE_NAME",
    ]

"""Typed settings: *where* things run. Read from `MLOPS_*` environment variables and `.env`.

Nothing is read at import time: call `load_settings()`. A bad value raises `ConfigError` naming the
variable, before any work starts. The README maps every MLOpsPython variable to its counterpart
here, or says why it is gone.

The settings are defined by area, one section each: the model (`model.py`), the online endpoint (`endpoint.py`),
batch scoring (`batch.py`), drift (`drift.py`), tracing (`tracing.py`), blob storage (`storage.py`), the local
platform (`platform.py`), and Azure ML beside its adapter (`infra/azureml/settings.py`). `Settings` composes them
with the core (backend and home), so callers read one object: `settings.endpoint_name`. Names that follow the model
package (endpoint, data assets, environments, scoring files) are derived from it unless their variable is set.
Old variable names are read for one release, each with one deprecation line on stderr per process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator

from infra import environments
from infra.azureml.settings import AzureMLSettings
from infra.errors import ConfigError
from infra.sections import DERIVED, ENV_PREFIX, RENAMED, Section, checkout_root, package_at
from infra.settings.batch import BatchSettings
from infra.settings.drift import DriftSettings
from infra.settings.endpoint import EndpointSettings
from infra.settings.model import ModelSettings
from infra.settings.platform import PlatformSettings
from infra.settings.storage import StorageSettings
from infra.settings.tracing import TracingSettings
from model.package import ModelPackage

__all__ = [
    "ENV_PREFIX",
    "SECTIONS",
    "Origin",
    "Settings",
    "checkout_root",
    "env_files",
    "env_var",
    "environment_overrides",
    "load_section",
    "load_settings",
    "origins",
    "read_variable",
    "regional_endpoint_name",
    "section_fields",
    "variables",
]

S = TypeVar("S", bound=Section)


class Settings(
    AzureMLSettings,
    PlatformSettings,
    StorageSettings,
    DriftSettings,
    TracingSettings,
    BatchSettings,
    EndpointSettings,
    ModelSettings,
):
    """Every setting: the core (where things run) and each area's section. The model section comes first, so the
    names derived from the model package see the package chosen."""

    backend: Literal["local", "azureml"] = Field("local", description="`local` (no cloud) or `azureml`.")
    home: Path = Field(
        default_factory=lambda: checkout_root() / ".mlops",
        description="Local workspace folder: registry, jobs, model files, endpoint state.",
    )

    @field_validator("home")
    @classmethod
    def _home(cls, value: Path) -> Path:
        value = value.expanduser().resolve()
        if value.exists() and not value.is_dir():
            raise ValueError("exists and is not a folder")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.backend == "azureml" and not self.azure_subscription_id and self.emulator_url is None:
            raise ValueError(
                "MLOPS_AZUREML_SUBSCRIPTION_ID (or AZURE_SUBSCRIPTION_ID) is required when MLOPS_BACKEND=azureml "
                "(or MLOPS_AZUREML_EMULATOR=1 for the local emulator)"
            )
        if self.backend == "azureml":
            # Azure ML endpoint names are unique per region across all customers ("Endpoint name needs to be
            # unique within a region"): a default like `diabetes-endpoint` is taken. Unless set, each gets a
            # suffix of its own, stable for this subscription and workspace.
            for field in ("endpoint_name", "aml_batch_endpoint_name"):
                if field not in self.model_fields_set:
                    object.__setattr__(self, field, self.regional_name(str(getattr(self, field))))
        return self

    @property
    def package(self) -> ModelPackage:
        """The model package's manifest (read again only when it changes)."""
        return package_at(self.model_package)

    @property
    def parameters_file(self) -> Path:
        return self.params_file or self.package.parameters

    # ---- derived locations (all under `home`) ----
    @property
    def registry_path(self) -> Path:
        return self.home / "registry.db"

    @property
    def default_data_file(self) -> Path:
        return self.home / "data" / f"{self.package.name}.csv"

    @property
    def default_scoring_file(self) -> Path:
        return self.home / "data" / self.scoring_input_filename

    @property
    def blob_configured(self) -> bool:
        explicit = self.blob_connection_string or self.blob_account_url or self.blob_credentials_block
        return bool(explicit) or self.blob_emulator == "azurite"

    @property
    def emulator_dir(self) -> Path:
        """State, certificates, blobs and job folders of the local Azure ML emulator."""
        return self.home / "emulator"

    @property
    def telemetry_dir(self) -> Path:
        """Spans written as files (when no Azure Monitor or OTLP destination is set), read by `mlops trace`."""
        return self.home / "telemetry"

    @property
    def platform_dir(self) -> Path:
        """Pids, logs and the database of the processes `mlops up` starts."""
        return self.home / "platform"


SECTIONS: tuple[tuple[str, type[Section]], ...] = (
    ("core", Settings),
    ("model", ModelSettings),
    ("endpoint", EndpointSettings),
    ("batch", BatchSettings),
    ("drift", DriftSettings),
    ("tracing", TracingSettings),
    ("storage", StorageSettings),
    ("platform", PlatformSettings),
    ("azureml", AzureMLSettings),
)
"""Each area and its section, in the order `mlops config show` lists them (`core`: the fields of Settings itself)."""


def section_fields(section: type[Section]) -> list[str]:
    """The fields an area defines (for `core`, those no section defines)."""
    if section is not Settings:
        return list(section.model_fields)
    others = {name for _, cls in SECTIONS if cls is not Settings for name in cls.model_fields}
    return [name for name in Settings.model_fields if name not in others]


def variables(field: str) -> tuple[str, ...]:
    """The variables a field is read from, first found wins: its own, names Azure tooling uses, old spellings."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (f"{ENV_PREFIX}{field.upper()}",)


def env_var(field: str) -> str:
    """The environment variable of a settings field."""
    return variables(field)[0]


def env_files() -> list[Path]:
    """The dotenv files settings are read from: `MLOPS_ENV_FILE` when set (empty: none), else `.env` in the checkout
    and in the working directory (the later wins). The one place that decides; a named file may be missing."""
    chosen = os.environ.get(f"{ENV_PREFIX}ENV_FILE")
    if chosen is not None:
        return [Path(chosen)] if chosen else []
    return list(dict.fromkeys([checkout_root() / ".env", Path.cwd() / ".env"]))


def _checked_env_files() -> list[Path]:
    files = env_files()
    chosen = os.environ.get(f"{ENV_PREFIX}ENV_FILE")
    if chosen and not Path(chosen).is_file():
        raise ConfigError(f"{ENV_PREFIX}ENV_FILE={chosen!r}: no such file")
    return [file for file in files if file.is_file()]


def _dotenv(files: list[Path]) -> dict[str, tuple[str, Path]]:
    """Every non-empty variable of the dotenv files (upper-cased name -> value and file; the later file wins)."""
    found: dict[str, tuple[str, Path]] = {}
    for file in files:
        if file.is_file():
            for key, value in dotenv_values(file).items():
                if value:
                    found[key.upper()] = (value, file)
    return found


def _environment() -> dict[str, str]:
    return {key.upper(): value for key, value in os.environ.items() if value}


def read_variable(name: str) -> str | None:
    """One variable from the environment or the dotenv files, read without validating any setting (for commands that
    must run with broken settings, as `mlops check-model`)."""
    value = _environment().get(name.upper())
    if value is None and (found := _dotenv(env_files()).get(name.upper())):
        value = found[0]
    return value


_noticed: set[str] = set()


def _notice_renamed(environment: dict[str, str], dotenv: dict[str, tuple[str, Path]]) -> None:
    """One line on stderr per old variable name set, once per process."""
    for old, new in RENAMED.items():
        if old in _noticed or (old not in environment and old not in dotenv):
            continue
        _noticed.add(old)
        sys.stderr.write(f"mlops: {old} is deprecated, use {new} (the old name is read until the next release)\n")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, a dotenv file, and `overrides`.

    The dotenv file is `MLOPS_ENV_FILE` when set (empty: none), else `.env` in the checkout and in
    the working directory. The environment wins over the file.

    Raises:
        ConfigError: one line per bad variable, naming it, its value and the rule it breaks.
    """
    return load_section(Settings, **overrides)


def load_section(section: type[S], **overrides: Any) -> S:
    """One area's settings alone (`load_section(TracingSettings).tracing`), read as `load_settings` reads them all,
    without validating the other areas (no model package is read unless the section needs it)."""
    files = _checked_env_files()
    environment, dotenv = _environment(), _dotenv(files)
    _notice_renamed(environment, dotenv)
    chosen = environment_overrides()
    try:
        return section(_env_file=files or None, **{**chosen, **overrides})  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe(exc, environment, dotenv)) from None


def environment_overrides(name: str | None = None) -> dict[str, Any]:
    """The settings environment `name` (default: the current one, `--env`/`MLOPS_ENV`) overrides, by field: they
    win over `.env` and the process environment. A key that is no setting's variable raises ConfigError naming it."""
    chosen = environments.load_environments().get(name or environments.current())
    found: dict[str, Any] = {}
    for key, value in chosen.values.items():
        field = _field_of(key)
        if field is None:
            raise ConfigError(
                f"{chosen.file}: [{chosen.name}] {key} is not a setting (use the variable names `mlops config show` "
                "lists, e.g. MLOPS_HOME, or approval = true)"
            )
        found[field] = value
    return found


def _field_of(location: str) -> str | None:
    """The field an error's location names: the field itself, or one of its variables (any case)."""
    if location in Settings.model_fields:
        return location
    for field in Settings.model_fields:
        if location.upper() in variables(field):
            return field
    return None


def _set_by(field: str, environment: dict[str, str], dotenv: dict[str, tuple[str, Path]]) -> Origin | None:
    names = variables(field)
    for name in names:
        if name in environment:
            return Origin("environment", name)
    for name in names:
        if name in dotenv:
            return Origin(".env", name, dotenv[name][1])
    return None


def _describe(exc: ValidationError, environment: dict[str, str], dotenv: dict[str, tuple[str, Path]]) -> str:
    lines = []
    for error in exc.errors():
        if error["type"] == "default_factory_not_called":  # a derived name, not derived after another error
            continue
        location = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        field = _field_of(location)
        if field is None:  # a cross-field rule already names its variable
            lines.append(message)
            continue
        origin = _set_by(field, environment, dotenv)
        name = origin.variable if origin else env_var(field)
        secret = Settings.model_fields[field].annotation in (SecretStr, SecretStr | None)
        shown = "<hidden>" if secret else repr(error.get("input"))
        lines.append(f"{name}={shown}: {message}")
    return "invalid settings:\n  " + "\n  ".join(lines)


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from: `environment`, `.env` (its file), `derived` (from the model package),
    `default`, or `argument` (passed to `load_settings`); and the variable that set it, or would."""

    source: str
    variable: str
    file: Path | None = None


def origins(overrides: tuple[str, ...] = ()) -> dict[str, Origin]:
    """Each field's origin, for `mlops config show`. Reads the environment and the dotenv files as `load_settings`
    did (the environment wins over the files; among a field's variables the first found wins)."""
    environment, dotenv = _environment(), _dotenv(env_files())
    chosen = environment_overrides()
    name = environments.current()
    found: dict[str, Origin] = {}
    for field in Settings.model_fields:
        origin = _set_by(field, environment, dotenv)
        if field in chosen and field not in overrides:
            origin = Origin(f"environments.toml ({name})", _chosen_variable(field, name))
        elif field in overrides:
            origin = Origin("argument", env_var(field))
        elif origin is None:
            origin = Origin("derived" if field in DERIVED else "default", env_var(field))
        found[field] = origin
    return found


def _chosen_variable(field: str, name: str) -> str:
    values = environments.load_environments().get(name).values
    return next((variable for variable in variables(field) if variable in values), env_var(field))


def regional_endpoint_name(base: str, settings: Settings) -> str:
    """`base` plus 8 hex digits of the subscription, resource group and workspace: within Azure's endpoint name
    rules (3-32 letters, digits or '-', starting with a letter) and unlikely to be held by anyone else."""
    return settings.regional_name(base)

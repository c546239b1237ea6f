"""What every settings section shares: the variable prefix, renamed variables, the name rules, the model package.

The settings are defined by area: `infra/settings/*.py` for the core, and `infra/azureml/settings.py` beside the
Azure ML adapter; `infra.settings.Settings` composes them. Each section is a `Section` and can be loaded alone
(`infra.settings.load_section`). This module lives apart from `infra.settings` so that a section beside its adapter
and the composing `Settings` both import it without a cycle.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.package import MANIFEST, ContractError, ModelPackage, default_package, load_package, moved_package
from model.paths import checkout_root as checkout_root  # re-exported: the one definition is in model/paths.py

ENV_PREFIX = "MLOPS_"
ON = ("1", "true", "yes", "on")
OFF = ("0", "false", "no", "off", "")
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_ENDPOINT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]")

RENAMED: dict[str, str] = {}
"""Old variable -> its new name. The old one is still read, with a deprecation line, for one release."""

DERIVED: set[str] = set()
"""Fields whose default follows the model package (its `name` or `model_name`), unless their variable is set."""


class Section(BaseSettings):
    """A group of settings of one area, read from `MLOPS_<FIELD>` (or the field's own variables) and `.env`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        env_ignore_empty=True,
        validate_default=True,
        frozen=True,
        populate_by_name=True,
    )


def variable(name: str, *, plain: tuple[str, ...] = (), was: tuple[str, ...] = ()) -> Any:
    """A field's variables, first found wins: `MLOPS_<name>`, then names Azure tooling already uses (`plain`,
    accepted for good), then old spellings (`was`, deprecated: read with a notice until the next release)."""
    new = f"{ENV_PREFIX}{name}"
    for old in was:
        RENAMED[old] = new
    return AliasChoices(new, *plain, *was)


def derived(rule: Any) -> Any:
    """A default computed from the model package chosen by MLOPS_MODEL_PACKAGE (`rule(package)`), recorded as such."""

    def factory(data: dict[str, Any]) -> Any:
        return rule(package_of(data))

    return factory


def package_of(data: dict[str, Any]) -> ModelPackage:
    """The model package of settings being validated (`model_package` precedes every derived field); the default
    package when that field itself was invalid (its error is reported, so what is derived from it does not matter)."""
    folder = data.get("model_package")
    return package_at(folder if isinstance(folder, Path) else default_package())


def package_at(folder: Path) -> ModelPackage:
    """The manifest of the package in `folder`, read again only when the manifest file changes."""
    try:
        stat = (folder / MANIFEST).stat()
    except OSError:
        return load_package(folder)  # raises ContractError naming what is missing
    return _package_at(folder, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _package_at(folder: Path, mtime_ns: int, size: int) -> ModelPackage:  # noqa: ARG001 (the cache key)
    return load_package(folder)


def package_path(value: Path) -> Path:
    """A package folder, a relative one taken from the checkout."""
    value = value.expanduser()
    return moved_package((value if value.is_absolute() else checkout_root() / value).resolve())


def model_stem(package: ModelPackage) -> str:
    """The registered model's name without a file extension and a trailing `_model`: `diabetes_regression` for
    `diabetes_regression_model.pkl`, `churn` for `churn_model` (the stem of the Azure ML environment names)."""
    stem = package.model_name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    return stem.removesuffix("_model") or stem


def endpoint_name_for(package: ModelPackage, suffix: str) -> str:
    """`<name>-<suffix>` with '_' as '-', within Azure's 32 characters: `diabetes-endpoint`, `diabetes-batch`."""
    return f"{package.name.replace('_', '-')}-{suffix}"[:32].rstrip("-")


def asset_name(value: str) -> str:
    """Azure ML's rule for model, environment and data asset names (kept on every backend, so a name works on both)."""
    if not _ASSET_NAME.match(value):
        raise ValueError(
            "must start with a letter or digit and hold only letters, digits, '-', '_' or '.' (at most 255)"
        )
    return value


def endpoint_name(value: str) -> str:
    """Azure ML's rule for endpoint names."""
    if not _ENDPOINT_NAME.fullmatch(value):
        raise ValueError("must be 3 to 32 letters, digits or '-', start with a letter and not end with '-'")
    return value


def package_folder(value: Path) -> Path:
    """A model package folder that loads (the manifest's errors as the field's error)."""
    path = package_path(value)
    try:
        load_package(path)
    except ContractError as exc:
        raise ValueError(str(exc)) from None
    return path

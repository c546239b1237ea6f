"""Environments (dev, staging, prod, …): named sets of setting overrides, read from `environments.toml`.

The file is `environments.toml` in the checkout, or the one `MLOPS_ENVIRONMENTS_FILE` names. Each top-level
table is an environment: its keys are the settings' variable names (`MLOPS_HOME`, `MLOPS_ENDPOINT_PORT`, …) and
`approval` (whether promoting into it waits for `mlops approve --env NAME`), `promote_from` (the environment it is
promoted from: the chain) and `promote_on` (when the platform promotes into it by itself: "deployed", each time the
source deploys a new version; "schedule", on the `auto-promote/scheduled` deployment's cron). The table `[shared]` is not an
environment: its `registry` names the folder of the registry the environments share (default `MLOPS_SHARED_REGISTRY`,
else `<checkout>/.mlops-shared`).

    [shared]
    registry = ".mlops-shared"

    [staging]
    MLOPS_HOME = ".mlops-staging"
    MLOPS_ENDPOINT_PORT = 5002

    promote_from = "dev"
    promote_on = "deployed"

    [prod]
    MLOPS_HOME = ".mlops-prod"
    approval = true
    promote_from = "staging"
    promote_on = "schedule"

The environment a command works in is `--env NAME`, else `MLOPS_ENV`, else `dev`; `dev` always exists (with no
file, or no `[dev]` table, it overrides nothing: today's behaviour). Which keys are settings is checked by
`infra.settings`, which applies the chosen environment's values over `.env` and the process environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.errors import ConfigError
from model.paths import checkout_root

DEFAULT = "dev"
FILE_VARIABLE = "MLOPS_ENVIRONMENTS_FILE"
ENV_VARIABLE = "MLOPS_ENV"
SHARED_VARIABLE = "MLOPS_SHARED_REGISTRY"
SHARED_TABLE = "shared"
NOT_SETTINGS = ("approval", "promote_from", "promote_on")  # keys of an environment that are not settings
PROMOTE_ON = ("deployed", "schedule")  # when the platform promotes into an environment by itself

_chosen: ContextVar[str | None] = ContextVar("mlops_environment", default=None)


@dataclass(frozen=True)
class Environment:
    """One environment: its name, its setting overrides (variable name -> value), whether promoting into it needs
    an approval, the file that declared it (None: the implicit `dev`), the environment it is promoted from and
    when the platform does that by itself (None: only by hand)."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    approval: bool = False
    file: Path | None = None
    promote_from: str | None = None
    promote_on: str | None = None


@dataclass(frozen=True)
class Environments:
    """Every environment the file declares (`dev` always), and the shared registry's folder."""

    known: dict[str, Environment]
    shared_registry: Path
    file: Path | None

    def get(self, name: str) -> Environment:
        """The environment `name`; a ConfigError listing the known ones when there is none."""
        if name not in self.known:
            where = f" in {self.file}" if self.file else f" (no environments file: {environments_file()})"
            raise ConfigError(f"unknown environment {name!r}{where}; known: {', '.join(self.names())}")
        return self.known[name]

    def names(self) -> list[str]:
        return list(self.known)

    def promoted_on(self, when: str, source: str | None = None) -> list[Environment]:
        """The environments the platform promotes into on `when` ("deployed", "schedule"), from `source` if given."""
        return [
            env
            for env in self.known.values()
            if env.promote_on == when and env.promote_from and (source is None or env.promote_from == source)
        ]


def environments_file() -> Path:
    """`MLOPS_ENVIRONMENTS_FILE` when set, else `environments.toml` in the checkout."""
    chosen = os.environ.get(FILE_VARIABLE)
    return Path(chosen).expanduser() if chosen else checkout_root() / "environments.toml"


def load_environments() -> Environments:
    """Read the environments file (none: only `dev`). A malformed file raises ConfigError naming it and the line."""
    path = environments_file()
    if not path.is_file():
        if os.environ.get(FILE_VARIABLE):
            raise ConfigError(f"{FILE_VARIABLE}={str(path)!r}: no such file")
        return Environments({DEFAULT: Environment(DEFAULT)}, _shared_path({}, path.parent), None)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:  # its message says the line and column
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    known: dict[str, Environment] = {}
    for name, table in data.items():
        if name == SHARED_TABLE:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {name!r} must be a table of settings ([{name}]), not a value")
        known[name] = _environment(name, table, path)
    known.setdefault(DEFAULT, Environment(DEFAULT, file=path))
    _check_chain(known, path)
    return Environments(dict(sorted(known.items(), key=lambda kv: kv[0] != DEFAULT)), _shared_path(data, path), path)


def _environment(name: str, table: dict[str, Any], path: Path) -> Environment:
    approval = table.get("approval", False)
    if not isinstance(approval, bool):
        raise ConfigError(f"{path}: [{name}] approval must be true or false, not {approval!r}")
    promote_from, promote_on = table.get("promote_from"), table.get("promote_on")
    if promote_from is not None and (not isinstance(promote_from, str) or promote_from == name):
        raise ConfigError(f"{path}: [{name}] promote_from must name another environment, not {promote_from!r}")
    if promote_on is not None and promote_on not in PROMOTE_ON:
        raise ConfigError(f"{path}: [{name}] promote_on must be one of {', '.join(PROMOTE_ON)}, not {promote_on!r}")
    if promote_on is not None and promote_from is None:
        raise ConfigError(f"{path}: [{name}] promote_on = {promote_on!r} needs promote_from (the source environment)")
    values = {}
    for key, value in table.items():
        if key in NOT_SETTINGS:
            continue
        if isinstance(value, dict | list):
            raise ConfigError(f"{path}: [{name}] {key} must be a single value")
        values[key.upper()] = value
    return Environment(name, values, approval, path, promote_from, promote_on)


def _check_chain(known: dict[str, Environment], path: Path) -> None:
    """Every `promote_from` names a declared environment."""
    for env in known.values():
        if env.promote_from is not None and env.promote_from not in known:
            raise ConfigError(
                f"{path}: [{env.name}] promote_from = {env.promote_from!r} is not an environment; known: {', '.join(known)}"
            )


def _shared_path(data: dict[str, Any], path: Path) -> Path:
    shared = data.get(SHARED_TABLE, {})
    if not isinstance(shared, dict) or set(shared) - {"registry"}:
        raise ConfigError(f"{path}: [{SHARED_TABLE}] takes one key, registry (the shared registry's folder)")
    folder = os.environ.get(SHARED_VARIABLE) or shared.get("registry")
    if not folder:
        return checkout_root() / ".mlops-shared"
    base = path.parent if shared.get("registry") and not os.environ.get(SHARED_VARIABLE) else Path.cwd()
    chosen = Path(str(folder)).expanduser()
    return (chosen if chosen.is_absolute() else base / chosen).resolve()


def current() -> str:
    """The environment commands work in: the one chosen by `using` (`--env`), else `MLOPS_ENV`, else `dev`."""
    return _chosen.get() or os.environ.get(ENV_VARIABLE) or DEFAULT


@contextmanager
def using(name: str) -> Iterator[Environment]:
    """Work in environment `name` (checked to exist) within the block: settings loaded there are its own."""
    environment = load_environments().get(name)
    token = _chosen.set(name)
    try:
        yield environment
    finally:
        _chosen.reset(token)

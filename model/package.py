"""The model contract: what a model package gives the pipeline, read from its `mlops-model.toml`.

A model package is a folder. Its manifest names

    [train]        the training command (any program: Python, R, ...) reading --data/--params/--out
                   placeholders, and the parameters file it reads
    [data]         a command writing the sample training CSV, the feature columns and the target;
                   `[data.checks]` what the data must hold (`model.dataschema`)
    [score]        score.py (online: init(), run(raw_data)), batch_score.py (batch: init(),
                   run(mini_batch)) and a sample request for the smoke test; `micro_batching = true`
                   says run() may get the rows of several requests in one {"data": [...]} and answers
                   {"result": [...]} with one entry per row, in order (the endpoint then batches)
    [gate]         the metric of metrics.json the quality gate compares, and its direction
    [environment]  the Python libraries scoring needs, pinned from the training environment

Training writes the model's files and `metrics.json` into `--out`. The pipeline adds
`environment.json` (the libraries above at the versions this environment runs) and `training.json`
when the command did not write them. The smoke test's expected answer is what the package's own
`score.py` returns for the sample request, run here on the same files.

This module imports nothing of the project's Prefect code. Running a package's scoring scripts is
`model.scripts`; `mlops check-model` (`model.check`) runs the whole contract on a tiny sample.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from model.dataschema import DataSchema, SchemaError, read_schema
from model.errors import ModelError, ParametersError
from model.paths import code_root

MANIFEST = "mlops-model.toml"
METRICS_FILE = "metrics.json"
ENVIRONMENT_FILE = "environment.json"
TRAINING_FILE = "training.json"
SCORE_COLUMN = "score"  # the column batch scoring appends
PLACEHOLDERS = ("python", "package", "data", "params", "out")
_DIRECTIONS = ("minimize", "maximize")


class ContractError(ModelError):
    """A model package breaks the contract; the message names the file and what is missing."""


@dataclass(frozen=True)
class ModelPackage:
    """A model package's manifest, its paths resolved against the package folder."""

    root: Path
    name: str
    model_name: str
    train_command: tuple[str, ...]
    parameters: Path
    sample_command: tuple[str, ...]
    features: tuple[str, ...]
    target: str
    score_script: Path
    batch_script: Path
    sample_request: Path
    metric: str
    direction: str
    libraries: tuple[str, ...]
    framework: str
    conda: tuple[str, ...] = ()  # extra conda packages of the Azure ML training environment (R: "r-base")
    micro_batching: bool = False  # score.py's run() may get the rows of several requests in one {"data": [...]}
    schema: DataSchema = field(default_factory=DataSchema)  # [data.checks]: what the data must hold (model.dataschema)

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def command(
        self, template: tuple[str, ...], *, python: str, package: str, data: str = "", params: str = "", out: str = ""
    ) -> list[str]:
        """`template` with its placeholders filled in: `{python}`, `{package}`, `{data}`, `{params}`, `{out}`."""
        values = {"python": python, "package": package, "data": data, "params": params, "out": out}
        return [part.format(**values) for part in template]

    def sample_request_body(self) -> bytes:
        return self.sample_request.read_bytes()


def load_package(root: Path) -> ModelPackage:
    """Read `root/mlops-model.toml`.

    Raises:
        ContractError: no manifest, not TOML, a key missing or of the wrong type, a placeholder
            unknown, a named file absent; the message names the manifest and the key.
    """
    root = root.resolve()
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise ContractError(f"{root}: no {MANIFEST} (a model package names its commands and scripts there)")
    try:
        document = tomllib.loads(manifest.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"{manifest}: not valid TOML ({exc})") from None
    read = _Reader(manifest, document)
    direction = read.text("gate", "direction")
    if direction not in _DIRECTIONS:
        raise ContractError(f"{manifest}: [gate] direction must be 'minimize' or 'maximize', got {direction!r}")
    features, target = tuple(read.texts("data", "features")), read.text("data", "target")
    try:
        schema = read_schema(document["data"].get("checks"), manifest, (*features, target))
    except SchemaError as exc:
        raise ContractError(str(exc)) from None
    return ModelPackage(
        root=root,
        name=read.text(None, "name"),
        model_name=read.text(None, "model_name"),
        train_command=read.command("train", "command", {"data", "params", "out"}),
        parameters=read.file("train", "parameters"),
        sample_command=read.command("data", "sample", {"out"}),
        features=features,
        target=target,
        score_script=read.file("score", "online"),
        batch_script=read.file("score", "batch"),
        sample_request=read.file("score", "request"),
        metric=read.text("gate", "metric"),
        direction=direction,
        libraries=tuple(read.texts("environment", "libraries")),
        framework=str(document.get("environment", {}).get("framework", "")),
        conda=tuple(read.texts("train", "conda")) if "conda" in document.get("train", {}) else (),
        micro_batching=read.flag("score", "micro_batching"),
        schema=schema,
    )


class _Reader:
    def __init__(self, manifest: Path, document: dict[str, Any]) -> None:
        self.manifest = manifest
        self.document = document

    def _value(self, table: str | None, key: str) -> Any:
        where = f"[{table}] {key}" if table else key
        section = self.document if table is None else self.document.get(table)
        if not isinstance(section, dict) or key not in section:
            raise ContractError(f"{self.manifest}: missing {where}")
        return section[key]

    def flag(self, table: str, key: str) -> bool:
        """An optional true/false key (absent: false)."""
        value = self.document.get(table, {}).get(key, False)
        if not isinstance(value, bool):
            raise ContractError(f"{self.manifest}: {_where(table, key)} must be true or false, got {value!r}")
        return value

    def text(self, table: str | None, key: str) -> str:
        value = self._value(table, key)
        if not isinstance(value, str) or not value.strip():
            raise ContractError(f"{self.manifest}: {_where(table, key)} must be a non-empty string, got {value!r}")
        return value

    def texts(self, table: str, key: str) -> list[str]:
        value = self._value(table, key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ContractError(f"{self.manifest}: {_where(table, key)} must be a non-empty list of strings")
        return value

    def command(self, table: str, key: str, required: set[str]) -> tuple[str, ...]:
        parts = self.texts(table, key)
        used: set[str] = set()
        for part in parts:
            try:
                part.format(**dict.fromkeys(PLACEHOLDERS, ""))
            except (KeyError, IndexError, ValueError) as exc:
                known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
                raise ContractError(
                    f"{self.manifest}: {_where(table, key)}: {part!r} has an unknown placeholder ({exc}); known: {known}"
                ) from None
            used |= {name for name in PLACEHOLDERS if "{" + name + "}" in part}
        missing = sorted(required - used)
        if missing:
            names = ", ".join("{" + name + "}" for name in missing)
            raise ContractError(f"{self.manifest}: {_where(table, key)} never uses {names}")
        return tuple(parts)

    def file(self, table: str, key: str) -> Path:
        path = self.manifest.parent / self.text(table, key)
        if not path.is_file():
            raise ContractError(f"{self.manifest}: {_where(table, key)} names {path.name}, which is not in the package")
        return path


def _where(table: str | None, key: str) -> str:
    return f"[{table}] {key}" if table else key


# ---- what the pipeline runs ----


def default_package() -> Path:
    """The model package used when none is named: the diabetes sample, `models/diabetes/` in the checkout."""
    return code_root() / "models" / "diabetes"


_MOVED_NOTICED: set[Path] = set()


def moved_package(path: Path) -> Path:
    """`path`, unless it is `model/` without a manifest: the diabetes sample's folder before it moved to
    `models/diabetes/` (MLOPS_MODEL_PACKAGE=model in an older `.env`), which means the sample, with a warning."""
    if path.name == "model" and not (path / MANIFEST).is_file() and (path.parent / "models" / "diabetes").is_dir():
        if path not in _MOVED_NOTICED:  # one line per process, like a renamed variable's
            _MOVED_NOTICED.add(path)
            sys.stderr.write(
                f"mlops: MLOPS_MODEL_PACKAGE={path}: the diabetes sample moved to models/diabetes; that folder is "
                "used (deprecated: set MLOPS_MODEL_PACKAGE=models/diabetes)\n"
            )
        return path.parent / "models" / "diabetes"
    return path


def capture_environment(libraries: tuple[str, ...]) -> dict[str, Any]:
    """`{"python": "3.11.7", "libraries": {name: version}}` for the running interpreter.

    Raises:
        ContractError: a library is not installed here.
    """
    versions = {}
    for name in libraries:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise ContractError(f"the model package needs {name!r}, which is not installed here") from None
    return {"python": platform.python_version(), "libraries": versions}


def complete_outputs(package: ModelPackage, out: Path, *, data: Path, parameters: dict[str, Any]) -> None:
    """Check a training command's outputs and add `environment.json` and `training.json` when it wrote none.

    Raises:
        ContractError: no `metrics.json`, not a flat object of finite numbers, or the gate's metric is not in it.
    """
    read_metrics(out / METRICS_FILE, package.metric)
    if not (out / ENVIRONMENT_FILE).is_file():
        _write_json(out / ENVIRONMENT_FILE, capture_environment(package.libraries))
    if not (out / TRAINING_FILE).is_file():
        _write_json(out / TRAINING_FILE, {"parameters": parameters, "data": {"sha256": file_sha256(data)}})


def read_metrics(path: Path, metric: str) -> dict[str, float]:
    if not path.is_file():
        raise ContractError(f"the training command wrote no {path.name} into --out")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(metrics, dict) or not all(is_number(v) for v in metrics.values()):
        raise ContractError(f'{path.name} must be a flat object of finite numbers, like {{"{metric}": 0.9}}')
    if metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise ContractError(f"{path.name} has no {metric!r}, the gate's metric (it has: {known})")
    return {name: float(value) for name, value in metrics.items()}


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_parameters(path: Path) -> dict[str, Any]:
    """The `training` object of a parameters file (MLOpsPython's `parameters.json` layout); the training
    command checks its values.

    Raises:
        ParametersError: the file is missing, is not JSON, or `training` is not an object.
    """
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ParametersError(f"{path}: no such parameters file") from None
    except json.JSONDecodeError as exc:
        raise ParametersError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("training", {}), dict):
        raise ParametersError(f'{path}: expected an object with a "training" object, like {{"training": {{...}}}}')
    return dict(document.get("training", {}))


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")

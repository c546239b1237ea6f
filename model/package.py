"""The model contract: what a model package gives the pipeline, read from its `mlops-model.toml`.

A model package is a folder. Its manifest names

    [train]        the training command (any program: Python, R, ...) reading --data/--params/--out
                   placeholders, and the parameters file it reads
    [data]         a command writing the sample training CSV, the feature columns and the target
    [score]        score.py (online: init(), run(raw_data)), batch_score.py (batch: init(),
                   run(mini_batch)) and a sample request for the smoke test
    [gate]         the metric of metrics.json the quality gate compares, and its direction
    [environment]  the Python libraries scoring needs, pinned from the training environment

Training writes the model's files and `metrics.json` into `--out`. The pipeline adds
`environment.json` (the libraries above at the versions this environment runs) and `training.json`
when the command did not write them. The smoke test's expected answer is what the package's own
`score.py` returns for the sample request, run here on the same files.

This module imports nothing of the project's Prefect code: `mlops check-model` (or
`python -m model.package check <folder>`) runs the contract on a tiny sample and says what is missing.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from model.errors import ModelError, ParametersError

MANIFEST = "mlops-model.toml"
METRICS_FILE = "metrics.json"
ENVIRONMENT_FILE = "environment.json"
TRAINING_FILE = "training.json"
SCORE_COLUMN = "score"  # the column batch scoring appends
PLACEHOLDERS = ("python", "package", "data", "params", "out")
CHECK_ROWS = 120  # the tiny sample `check-model` trains on
_DIRECTIONS = ("minimize", "maximize")
_RUN_TIMEOUT_SECONDS = 600
_PAIR = "\x1f"  # between a script's path and its model folder's on `_run_each`'s command line


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
    return ModelPackage(
        root=root,
        name=read.text(None, "name"),
        model_name=read.text(None, "model_name"),
        train_command=read.command("train", "command", {"data", "params", "out"}),
        parameters=read.file("train", "parameters"),
        sample_command=read.command("data", "sample", {"out"}),
        features=tuple(read.texts("data", "features")),
        target=read.text("data", "target"),
        score_script=read.file("score", "online"),
        batch_script=read.file("score", "batch"),
        sample_request=read.file("score", "request"),
        metric=read.text("gate", "metric"),
        direction=direction,
        libraries=tuple(read.texts("environment", "libraries")),
        framework=str(document.get("environment", {}).get("framework", "")),
        conda=tuple(read.texts("train", "conda")) if "conda" in document.get("train", {}) else (),
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


def code_root() -> Path:
    """The folder holding the `model` package: on the PYTHONPATH of every command a package runs."""
    return Path(__file__).resolve().parents[1]


def default_package() -> Path:
    """The model package used when none is named: the diabetes sample, `models/diabetes/` in the checkout."""
    return code_root() / "models" / "diabetes"


def moved_package(path: Path) -> Path:
    """`path`, unless it is `model/` without a manifest: the diabetes sample's folder before it moved to
    `models/diabetes/` (MLOPS_MODEL_PACKAGE=model in an older `.env`), which means the sample, with a warning."""
    if path.name == "model" and not (path / MANIFEST).is_file() and (path.parent / "models" / "diabetes").is_dir():
        warnings.warn(
            f"MLOPS_MODEL_PACKAGE={path}: the diabetes sample moved to models/diabetes; that folder is used "
            "(deprecated: set MLOPS_MODEL_PACKAGE=models/diabetes)",
            FutureWarning,
            stacklevel=2,
        )
        return path.parent / "models" / "diabetes"
    return path


def command_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with the code root first on PYTHONPATH."""
    path = os.pathsep.join(filter(None, [str(code_root()), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


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
    if not isinstance(metrics, dict) or not all(_is_number(v) for v in metrics.values()):
        raise ContractError(f'{path.name} must be a flat object of finite numbers, like {{"{metric}": 0.9}}')
    if metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise ContractError(f"{path.name} has no {metric!r}, the gate's metric (it has: {known})")
    return {name: float(value) for name, value in metrics.items()}


def score_locally(script: Path, model_dir: Path, body: bytes, *, timeout: float = _RUN_TIMEOUT_SECONDS) -> Any:
    """What `script`'s `init()` then `run(body)` return for the model in `model_dir`, in a fresh interpreter.

    Raises:
        ContractError: the script failed to load, init or score; the message holds its error.
    """
    [answer] = score_each_locally([(script, model_dir)], body, timeout=timeout)
    if isinstance(answer, ContractError):
        raise answer
    return answer


def score_each_locally(
    scripts: list[tuple[Path, Path]], body: bytes, *, timeout: float = _RUN_TIMEOUT_SECONDS
) -> list[Any]:
    """Each `(script, model_dir)`'s answer to `init()` then `run(body)`, all in one fresh interpreter (the
    scoring libraries are imported once, about 1.5 s of CPU, not once per script): per script its answer, or
    the ContractError that names it and its error.

    Raises:
        ContractError: the interpreter itself failed (it ran past `timeout`, say).
    """
    with tempfile.TemporaryDirectory(prefix="mlops-score-") as folder:
        request, answers = Path(folder) / "request.json", Path(folder) / "answers.json"
        request.write_bytes(body)
        pairs = [f"{script}{_PAIR}{model_dir}" for script, model_dir in scripts]
        _run_self(["_run_each", str(request), str(answers), *pairs], timeout, what=str(scripts[0][0]))
        results = json.loads(answers.read_text())
    return [
        ContractError(f"{script}: {result['error']}") if "error" in result else result["answer"]
        for (script, _), result in zip(scripts, results, strict=True)
    ]


def batch_locally(
    script: Path, model_dir: Path, rows: Path, out: Path, *, timeout: float = _RUN_TIMEOUT_SECONDS
) -> None:
    """`script`'s `init()` then `run(<the CSV as a DataFrame>)`, written to `out` as CSV, in a fresh interpreter."""
    _run_self(["_run", "batch", str(script), str(model_dir), str(rows), str(out)], timeout, what=str(script))


def _run_self(arguments: list[str], timeout: float, *, what: str) -> None:
    command = [sys.executable, "-m", "model.package", *arguments]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=command_environment(), check=False
        )
    except subprocess.TimeoutExpired:
        raise ContractError(f"{what}: scoring ran past {timeout:g} s") from None
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ContractError(f"{what}: {tail}")


def load_script(script: Path, model_dir: Path) -> ModuleType:
    """Import a scoring script under a name of its own and call its `init()` with AZUREML_MODEL_DIR=model_dir.

    The caller serialises calls: AZUREML_MODEL_DIR is process-wide while `init()` runs.
    """
    digest = hashlib.sha256(f"{script.resolve()}|{model_dir.resolve()}".encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(f"mlops_scoring_{digest}", script)
    if spec is None or spec.loader is None:
        raise ContractError(f"{script}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = os.environ.get("AZUREML_MODEL_DIR")
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    try:
        module.init()
    finally:
        if previous is None:
            os.environ.pop("AZUREML_MODEL_DIR", None)
        else:
            os.environ["AZUREML_MODEL_DIR"] = previous
    return module


def _child_each(source: str, target: str, *pairs: str) -> None:
    """The child side of `score_each_locally`: each script's answer, or its error, in order."""
    body = Path(source).read_bytes().decode()
    results: list[dict[str, Any]] = []
    for pair in pairs:
        script, _, model_dir = pair.partition(_PAIR)
        try:
            results.append({"answer": load_script(Path(script), Path(model_dir)).run(body)})
        except Exception as exc:  # noqa: BLE001 - reported per script, by name
            results.append({"error": f"{type(exc).__name__}: {exc}"})
    Path(target).write_text(json.dumps(results))


def _child(mode: str, script: str, model_dir: str, source: str, target: str) -> None:
    """The child side of `batch_locally`."""
    if mode != "batch":
        raise ContractError(f"unknown scoring mode {mode!r}")
    module = load_script(Path(script), Path(model_dir))
    import pandas as pd

    scored = module.run(pd.read_csv(source))
    if not isinstance(scored, pd.DataFrame):
        raise ContractError(f"run(mini_batch) returned {type(scored).__name__}, not a DataFrame")
    scored.to_csv(target, index=False)


# ---- check-model ----


@dataclass
class Check:
    name: str
    problem: str | None = None


def missing_functions(script: Path, functions: tuple[str, ...]) -> list[str]:
    """The module-level functions of `functions` that `script` does not define (read, not imported)."""
    try:
        tree = ast.parse(script.read_text(), filename=str(script))
    except SyntaxError as exc:
        raise ContractError(f"{script.name}: not valid Python (line {exc.lineno}: {exc.msg})") from None
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    return [name for name in functions if name not in defined]


def check_package(root: Path, work: Path) -> list[Check]:
    """Run the contract of the package at `root` on a tiny sample, under `work`; one Check per step."""
    checks: list[Check] = []
    try:
        package = load_package(root)
    except ContractError as exc:
        return [Check(MANIFEST, str(exc))]
    checks.append(Check(f"{MANIFEST}: {package.name}, registered as {package.model_name}"))
    contract = {
        package.score_script: ("init", "run"),
        package.batch_script: ("init", "run"),
    }
    for script, functions in contract.items():
        try:
            missing = missing_functions(script, functions)
        except ContractError as exc:
            checks.append(Check(script.name, str(exc)))
            continue
        what = "online" if script == package.score_script else "batch"
        problem = None
        if missing:
            names = ", ".join(f"{name}()" for name in missing)
            problem = f"{script.relative_to(package.root)} has no {names} (the {what} contract: init() loads the model, run() scores)"
        checks.append(Check(f"{script.relative_to(package.root)}: init() and run() ({what})", problem))
    if any(check.problem for check in checks):
        return checks
    checks += _run_contract(package, work)
    return checks


def _run_contract(package: ModelPackage, work: Path) -> list[Check]:
    checks: list[Check] = []
    python, where = sys.executable, str(package.root)
    data = work / "data" / "sample.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    step = Check(f"sample data: {' '.join(package.sample_command)}")
    checks.append(step)
    step.problem = _run_command(
        package.command(package.sample_command, python=python, package=where, out=str(data)), work
    )
    if step.problem is None and not data.is_file():
        step.problem = "the sample command wrote no CSV at {out}"
    if step.problem:
        return checks
    import pandas as pd

    frame = pd.read_csv(data)
    absent = [name for name in (*package.features, package.target) if name not in frame.columns]
    if absent:
        step.problem = f"the sample CSV lacks column(s) {', '.join(absent)} named in [data]"
        return checks
    tiny = work / "data" / "tiny.csv"
    frame.head(CHECK_ROWS).to_csv(tiny, index=False)
    out = work / "out"
    step = Check(f"training on {min(len(frame), CHECK_ROWS)} rows: {' '.join(package.train_command)}")
    checks.append(step)
    try:
        parameters = read_parameters(package.parameters)
    except ParametersError as exc:
        step.problem = str(exc)
        return checks
    command = package.command(
        package.train_command,
        python=python,
        package=where,
        data=str(tiny),
        params=str(package.parameters),
        out=str(out),
    )
    out.mkdir()
    step.problem = _run_command(command, work)
    if step.problem is None:
        try:
            complete_outputs(package, out, data=tiny, parameters=parameters)
            metrics = read_metrics(out / METRICS_FILE, package.metric)
            step.name += f" → {package.metric}={metrics[package.metric]:.6g} ({package.direction})"
        except ContractError as exc:
            step.problem = str(exc)
    if step.problem:
        return checks
    step = Check(f"{package.score_script.name}: the sample request {package.sample_request.name}")
    checks.append(step)
    try:
        answer = score_locally(package.score_script, out, package.sample_request_body())
        rows = json.loads(package.sample_request_body()).get("data", [])
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, list) or not all(_is_number(v) for v in result) or len(result) != len(rows):
            step.problem = f'run() returned {json.dumps(answer)[:200]}; expected {{"result": [{len(rows)} numbers]}}'
        else:
            step.name += f" → {json.dumps(result)[:120]}"
    except (ContractError, ValueError, AttributeError) as exc:
        step.problem = str(exc)
    step = Check(f"{package.batch_script.name}: a mini-batch of 5 rows")
    checks.append(step)
    batch_in, batch_out = work / "data" / "batch.csv", work / "batch-out.csv"
    frame.head(5).drop(columns=[package.target]).to_csv(batch_in, index=False)
    try:
        batch_locally(package.batch_script, out, batch_in, batch_out)
        scored = pd.read_csv(batch_out)
        if SCORE_COLUMN not in scored.columns or len(scored) != 5:
            step.problem = f"run(mini_batch) returned {len(scored)} rows and columns {list(scored.columns)}; expected 5 rows with a {SCORE_COLUMN!r} column"
    except ContractError as exc:
        step.problem = str(exc)
    return checks


def _run_command(command: list[str], cwd: Path) -> str | None:
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_RUN_TIMEOUT_SECONDS,
            env=command_environment(),
            check=False,
        )
    except FileNotFoundError:
        return f"{command[0]}: no such program (is it installed?)"
    except subprocess.TimeoutExpired:
        return f"ran past {_RUN_TIMEOUT_SECONDS} s"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        return f"exit {result.returncode}: " + ((errors or lines or ["(no output)"])[-1])
    return None


def print_checks(checks: list[Check]) -> int:
    """One line per check; exit code 0 when all pass, 2 when one does not."""
    for check in checks:
        mark = "ok     " if check.problem is None else "MISSING"
        print(f"{mark} {check.name}")  # noqa: T201 - this is the command line
        if check.problem:
            print(f"        {check.problem}")  # noqa: T201
    failed = [check for check in checks if check.problem]
    print("the package meets the contract" if not failed else f"{len(failed)} problem(s): see above")  # noqa: T201
    return 2 if failed else 0


def check_command(root: Path, keep: bool = False) -> int:
    work = Path(tempfile.mkdtemp(prefix="mlops-check-model-"))
    try:
        return print_checks(check_package(root, work))
    finally:
        if keep:
            print(f"work folder kept: {work}")  # noqa: T201
        else:
            shutil.rmtree(work, ignore_errors=True)


def _is_number(value: object) -> bool:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.package", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="run the contract of a model package on a tiny sample")
    check.add_argument("package", type=Path, nargs="?", default=default_package())
    check.add_argument("--keep", action="store_true", help="keep the work folder")
    child = commands.add_parser("_run")
    child.add_argument("arguments", nargs=5)
    each = commands.add_parser("_run_each")
    each.add_argument("arguments", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check_command(args.package, args.keep)
    try:
        if args.command == "_run_each":
            _child_each(*args.arguments)
        else:
            _child(*args.arguments)
    except Exception as exc:  # noqa: BLE001 - the parent reports the child's error line
        with contextlib.suppress(Exception):
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

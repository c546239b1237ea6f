"""Online scoring with Azure ML's contract: `init()` loads the model once, `run(raw_data)` scores one request.

    request   {"data": [[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6], ...]}    10 numbers a row
    response  {"result": [prediction, ...]}                                  one number a row

This file is self-contained (standard library, numpy, joblib): it runs unchanged under Azure ML's
inference server (`azmlinfsrv`), in an Azure ML managed online deployment, and in this project's
local endpoint. A bad request raises `ScoringInputError` (a `ValueError`) whose message names the
problem; `init()` refuses a model trained with other library versions than the running ones.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np

_fast_loads: Callable[[str | bytes], Any] | None
try:  # orjson parses several times faster; the standard library is the fallback
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the scoring image
    _fast_loads = None

N_FEATURES = 10
MODEL_FILE = "model.joblib"
ENVIRONMENT_FILE = "environment.json"
# MLOpsPython's schema samples (its swagger.json examples).
INPUT_SAMPLE = [
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
    [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
]
OUTPUT_SAMPLE = [5021.509689995557, 3693.645386402646]

model: Any = None


class ScoringInputError(ValueError):
    """The request is not `{"data": [[10 numbers], ...]}`; the message says what is wrong and where."""


class EnvironmentMismatchError(RuntimeError):
    """The model was trained with other library versions than the ones this process runs."""


def init() -> None:
    """Load the model from `AZUREML_MODEL_DIR`, after checking its environment lock against this process."""
    global model
    path = find_model(Path(os.environ.get("AZUREML_MODEL_DIR", ".")))
    problems = environment_problems(path.parent)
    if problems:
        raise EnvironmentMismatchError(f"refusing model {path}: " + "; ".join(problems))
    model = joblib.load(path)


def run(raw_data: str | bytes, request_headers: dict[str, str] | None = None) -> dict[str, list[float]]:
    """Score a request body. Under Azure ML, `request_headers` is given and one telemetry line is printed."""
    rows = parse_request(raw_data)
    result: list[float] = model.predict(rows).tolist()
    if request_headers is not None:  # MLOpsPython's telemetry line, collected into App Insights traces
        headers = {k.lower(): v for k, v in request_headers.items()}
        line = {
            "RequestId": headers.get("x-ms-request-id", ""),
            "TraceParent": headers.get("traceparent", ""),
            "NumberOfPredictions": len(result),
        }
        print(json.dumps(line))  # noqa: T201 - stdout is the telemetry channel on Azure ML
    return {"result": result}


def predict_locally(model_dir: Path, rows: list[list[float]]) -> list[float]:
    """What the model in `model_dir` predicts for `rows`, computed here without any server: the reference
    a deployed endpoint's answers are checked against."""
    loaded = joblib.load(find_model(model_dir))
    predictions: list[float] = loaded.predict(np.asarray(rows, dtype=np.float64)).tolist()
    return predictions


def find_model(model_dir: Path) -> Path:
    """`model.joblib` in `model_dir`, or in a folder below it (Azure ML mounts `<dir>/<model folder>/`)."""
    direct = model_dir / MODEL_FILE
    if direct.is_file():
        return direct
    found = sorted(model_dir.rglob(MODEL_FILE))
    if not found:
        raise FileNotFoundError(f"no {MODEL_FILE} under AZUREML_MODEL_DIR={model_dir}")
    return found[0]


def environment_problems(model_dir: Path) -> list[str]:
    """One sentence per library (or Python minor version) that differs from the model's `environment.json`."""
    lock_file = model_dir / ENVIRONMENT_FILE
    if not lock_file.is_file():
        return []
    lock = json.loads(lock_file.read_text())
    problems = []
    locked_python, running_python = str(lock.get("python", "")), platform.python_version()
    if locked_python.split(".")[:2] != running_python.split(".")[:2]:
        problems.append(f"python: model trained with {locked_python}, running {running_python}")
    for name, version in sorted(lock.get("libraries", {}).items()):
        try:
            running = metadata.version(name)
        except metadata.PackageNotFoundError:
            running = "not installed"
        if running != version:
            problems.append(f"{name}: model trained with {version}, running {running}")
    return problems


def parse_request(raw_data: str | bytes) -> np.ndarray:
    """The request's rows as a float64 array of shape (n, 10).

    Raises:
        ScoringInputError: not UTF-8 or not JSON, no `data` list, an empty list, a row of the wrong
            width, a value that is not a number (strings and booleans included), NaN or infinity.
    """
    body = _load_json(raw_data)
    if not isinstance(body, dict) or "data" not in body:
        raise ScoringInputError('expected a JSON object {"data": [[10 numbers], ...]}')
    data = body["data"]
    if not isinstance(data, list) or not data:
        raise ScoringInputError('"data" must be a non-empty list of rows of 10 numbers')
    try:
        rows = np.array(data, dtype=None)
    except ValueError:  # ragged rows
        rows = None
    # numpy turns booleans into numbers, so a `true` or `false` anywhere sends the request down the careful path:
    # found by their `u` and `l`, letters no JSON number holds (a one-letter search runs at memory speed, the word's
    # took a fifth of the scoring call at 100 rows).
    text = raw_data if isinstance(raw_data, str) else raw_data.decode()
    if rows is None or rows.dtype.kind not in "fi" or rows.ndim != 2 or "u" in text or "l" in text:
        rows = _careful_rows(data)
    if rows.shape[1] != N_FEATURES:  # every row has the same, wrong width
        raise ScoringInputError(f"data row 1 has {rows.shape[1]} values; expected {N_FEATURES}")
    rows = rows.astype(np.float64, copy=False)
    finite = np.isfinite(rows)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise ScoringInputError(f"data row {row + 1}, column {column + 1}: {rows[row, column]} is not a finite number")
    return rows


def _load_json(raw_data: str | bytes) -> Any:
    try:
        if _fast_loads is not None:
            return _fast_loads(raw_data)
        return json.loads(raw_data, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ScoringInputError("the body is not UTF-8 text") from None
    except ValueError as exc:  # orjson.JSONDecodeError and json.JSONDecodeError are ValueErrors
        text = raw_data if isinstance(raw_data, str) else raw_data.decode(errors="replace")
        if any(token in text for token in ("NaN", "Infinity")):
            raise ScoringInputError("NaN and Infinity are not numbers in JSON; send finite numbers") from None
        raise ScoringInputError(f"the body is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _careful_rows(data: list[Any]) -> np.ndarray:
    """Check every cell; raise for the first row that is not 10 numbers, else return the rows as float64."""
    for i, row in enumerate(data, start=1):
        if not isinstance(row, list):
            raise ScoringInputError(f"data row {i} is {type(row).__name__}, not a list of {N_FEATURES} numbers")
        if len(row) != N_FEATURES:
            raise ScoringInputError(f"data row {i} has {len(row)} values; expected {N_FEATURES}")
        for j, value in enumerate(row, start=1):
            if type(value) not in (int, float):
                raise ScoringInputError(f"data row {i}, column {j}: {json.dumps(value)} is not a number")
    try:
        return np.array(data, dtype=np.float64)
    except OverflowError:
        raise ScoringInputError("a value is too large to be a floating-point number") from None

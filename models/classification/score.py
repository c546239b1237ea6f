"""Online scoring of the LightGBM classifier, with Azure ML's contract: `init()` loads, `run(raw_data)` scores.

    request   {"data": [[30 numbers], ...]}          the features in the manifest's order
    response  {"result": [probability, ...]}         P(target = 1) for each row

Self-contained (standard library, numpy, joblib, lightgbm): it runs unchanged under Azure ML's
inference server, in a managed online deployment and in the local endpoint. A bad request raises
`ValueError` naming the problem (the endpoint answers 400); `init()` refuses a model trained with
other library versions than the running ones.
"""

from __future__ import annotations

import json
import os
import platform
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np

MODEL_FILE = "model.joblib"
MANIFEST = Path(__file__).with_name("mlops-model.toml")  # beside this script, in the package and in the bundle
model: Any = None
limits: tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None = None  # [data.checks] as arrays (init)


def init() -> None:
    global model
    root = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    found = [root / MODEL_FILE] if (root / MODEL_FILE).is_file() else sorted(root.rglob(MODEL_FILE))
    if not found:
        raise FileNotFoundError(f"no {MODEL_FILE} under AZUREML_MODEL_DIR={root}")
    problems = environment_problems(found[0].parent)
    if problems:
        raise RuntimeError(f"refusing model {found[0]}: " + "; ".join(problems))
    model = joblib.load(found[0])
    global limits
    limits = read_limits(MANIFEST)


def read_limits(manifest: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None:
    """The features' `[data.checks]` (README "Data checks") as arrays: names, lows, highs, whole-number flags; None
    when the manifest declares none or `online = false`."""
    if not manifest.is_file():
        return None
    data = tomllib.loads(manifest.read_text()).get("data", {})
    checks = data.get("checks", {})
    if not checks.get("columns") or not checks.get("online", True):
        return None
    rules = [checks["columns"].get(name, {}) for name in data["features"]]
    low = [min(r["allowed"]) if "allowed" in r else r.get("min", -np.inf) for r in rules]
    high = [max(r["allowed"]) if "allowed" in r else r.get("max", np.inf) for r in rules]
    whole = [r.get("type") == "int" for r in rules]
    return list(data["features"]), np.array(low, float), np.array(high, float), np.array(whole)


def check_rows(rows: np.ndarray) -> None:
    """Each value within its column's declared range (whole where declared `int`): one vectorized pass, a few
    microseconds; the first offending value raises ValueError naming its column (the endpoint answers 400)."""
    if limits is None or rows.shape[1] != len(limits[0]):
        return
    names, low, high, whole = limits
    bad = (rows < low) | (rows > high)
    if whole.any():
        bad |= whole & (rows != np.floor(rows))
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        expected = f"[{low[j]:g}, {high[j]:g}]" + (", a whole number" if whole[j] else "")
        raise ValueError(
            f"column {names[j]!r} (data row {i + 1}, column {j + 1}): {rows[i, j]:g} is outside {expected}, "
            f"the data checks of {MANIFEST.name}; {int(bad[:, j].sum())} row(s) of this request break it"
        )


def run(raw_data: str | bytes, request_headers: dict[str, str] | None = None) -> dict[str, list[float]]:  # noqa: ARG001
    rows = parse_request(raw_data)
    check_rows(rows)
    return {"result": model.predict_proba(rows)[:, 1].tolist()}


def parse_request(raw_data: str | bytes) -> np.ndarray:
    """The request's rows as a float64 array of shape (n, the model's feature count); ValueError otherwise."""
    width = int(model.n_features_in_)
    try:
        body = json.loads(raw_data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the body is not valid JSON: {exc}") from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data:
        raise ValueError(f'expected a JSON object {{"data": [[{width} numbers], ...]}}')
    for i, row in enumerate(data, start=1):
        if not isinstance(row, list) or len(row) != width:
            raise ValueError(f"data row {i} is not a list of {width} numbers")
        for j, value in enumerate(row, start=1):
            if type(value) not in (int, float) or not np.isfinite(value):
                raise ValueError(f"data row {i}, column {j}: {json.dumps(value)} is not a finite number")
    return np.asarray(data, dtype=np.float64)


def environment_problems(model_dir: Path) -> list[str]:
    """One sentence per library (or Python minor version) that differs from the model's `environment.json`."""
    lock_file = model_dir / "environment.json"
    if not lock_file.is_file():
        return []
    lock = json.loads(lock_file.read_text())
    problems = []
    if str(lock.get("python", "")).split(".")[:2] != platform.python_version().split(".")[:2]:
        problems.append(f"python: model trained with {lock.get('python')}, running {platform.python_version()}")
    for name, version in sorted(lock.get("libraries", {}).items()):
        try:
            running = metadata.version(name)
        except metadata.PackageNotFoundError:
            running = "not installed"
        if running != version:
            problems.append(f"{name}: model trained with {version}, running {running}")
    return problems

"""Online scoring of the R model, with Azure ML's contract: `init()` loads, `run(raw_data)` scores.

The model is `coefficients.json`, written by `train.R` from base R's `lm`: a prediction is the
intercept plus the features times their coefficients, the sum `predict.lm` computes.

    request   {"data": [[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6], ...]}
    response  {"result": [prediction, ...]}

Needs numpy only. A bad request raises `ValueError` naming the problem (the endpoint answers 400).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "coefficients.json"
model: dict[str, Any] = {}


def init() -> None:
    global model
    root = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    found = [root / MODEL_FILE] if (root / MODEL_FILE).is_file() else sorted(root.rglob(MODEL_FILE))
    if not found:
        raise FileNotFoundError(f"no {MODEL_FILE} under AZUREML_MODEL_DIR={root}")
    document = json.loads(found[0].read_text())
    coefficients = np.asarray(document["coefficients"], dtype=np.float64)
    if len(coefficients) != len(document["features"]):
        raise ValueError(f"{found[0]}: {len(coefficients)} coefficients for {len(document['features'])} features")
    model = {"intercept": float(document["intercept"]), "coefficients": coefficients, "features": document["features"]}


def predict(rows: np.ndarray) -> np.ndarray:
    predictions: np.ndarray = model["intercept"] + rows @ model["coefficients"]
    return predictions


def run(raw_data: str | bytes, request_headers: dict[str, str] | None = None) -> dict[str, list[float]]:  # noqa: ARG001
    return {"result": predict(parse_request(raw_data)).tolist()}


def parse_request(raw_data: str | bytes) -> np.ndarray:
    width = len(model["features"])
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

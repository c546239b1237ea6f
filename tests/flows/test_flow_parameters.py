"""flows/_flow.py: a flow run's parameters are JSON as Prefect would store them, without importing FastAPI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import prefect
from prefect.states import Completed

from flows.deploy import DEFAULT_ROLLOUT
from flows.pipeline import pipeline
from model.gate import GatePolicy

ROOT = Path(__file__).resolve().parents[2]


def test_parameters_are_the_json_prefect_s_own_method_gives() -> None:
    parameters = {
        "alpha": 0.5,
        "gate": GatePolicy("mse", "minimize", 0.0, False),
        "force": False,
        "rollout": DEFAULT_ROLLOUT,
        "path": Path("/data/x.csv"),
        "nothing": None,
        "rows": [1, 2.5, "three"],
    }
    ours = pipeline.serialize_parameters(parameters)
    assert ours == prefect.Flow.serialize_parameters(pipeline, parameters)
    assert ours["gate"] == {"metric": "mse", "direction": "minimize", "min_improvement": 0.0, "promote_ties": False}
    assert ours["path"] == "/data/x.csv"


def test_states_and_objects_pydantic_cannot_carry_are_left_to_prefect() -> None:
    class Opaque:
        def __init__(self) -> None:
            self.rows = 3

    parameters = {"state": Completed(), "alpha": 1}
    assert pipeline.serialize_parameters(parameters) == {"state": "<State>", "alpha": 1}
    parameters = {"x": Opaque(), "alpha": 1}
    assert pipeline.serialize_parameters(parameters) == prefect.Flow.serialize_parameters(pipeline, parameters)


def test_serializing_imports_no_fastapi() -> None:
    code = (
        "import sys\n"
        "from flows.pipeline import pipeline\n"
        "from flows.deploy import DEFAULT_ROLLOUT\n"
        "pipeline.serialize_parameters({'alpha': 1.0, 'rollout': DEFAULT_ROLLOUT})\n"
        "print('fastapi' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr[-2000:]

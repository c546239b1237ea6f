"""The R training example (models/diabetes_r) through the same flows: trained by Rscript as a job, registered,
deployed, and smoke-tested on values, with a Python score.py reading the R model's coefficients."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.deploy import deploy
from flows.train_register import train_register
from infra.factory import open_backend
from infra.settings import checkout_root, load_settings
from model.scripts import load_script
from tests.support.helpers import free_port
from tests.support.prefect_api import artifacts_of

pytestmark = pytest.mark.slow
PACKAGE = checkout_root() / "models" / "diabetes_r"


@pytest.fixture
def r_workspace(prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_MODEL_PACKAGE", "models/diabetes_r")  # relative: from the checkout
    monkeypatch.setenv("MLOPS_ENDPOINT_PORT", str(free_port()))
    return tmp_path / "home"


def test_rscript_trains_registers_and_the_deployment_answers_what_r_predicts(r_workspace: Path) -> None:
    settings = load_settings()
    assert settings.model_name == "diabetes_r_model"  # from the package's manifest
    trained = train_register(return_state=True)
    assert trained.is_completed(), trained.message
    model = trained.result().registered
    assert (model.name, model.version) == ("diabetes_r_model", 1)
    assert float(model.tags["mse"]) > 0
    files = Path(model.path)
    coefficients = json.loads((files / "coefficients.json").read_text())
    assert coefficients["r_version"].startswith("4.")  # written by R
    assert set(json.loads((files / "environment.json").read_text())["libraries"]) == {"numpy", "pandas"}
    job_log = next((r_workspace / "jobs").glob("*/user_logs/std_log.txt")).read_text()
    assert '"metrics"' in job_log  # train.R's own last line

    # score.py reproduces R's predict() on every training row (the reference R wrote beside the model)
    reference = pd.read_csv(files / "reference.csv")
    scorer = load_script(PACKAGE / "score.py", files)
    ours = scorer.predict(reference[coefficients["features"]].to_numpy())
    np.testing.assert_allclose(ours, reference["prediction"].to_numpy(), rtol=1e-10)

    try:
        deployed = deploy(return_state=True)
        assert deployed.is_completed(), deployed.message
        smoke = artifacts_of(deployed.state_details.flow_run_id)["smoke-test"].data
        assert "# Smoke test: passed" in smoke
        # the smoke request carried baseline rows, and their expected values are R's own predictions
        for value in reference["prediction"].head(3):
            assert repr(float(value)) in smoke
        backend = open_backend(settings)
        rows = reference[coefficients["features"]].head(5).to_numpy().tolist()
        answer = backend.endpoints.invoke(settings.endpoint_name, json.dumps({"data": rows}).encode())
        assert answer.status == 200, answer.body
        np.testing.assert_allclose(answer.payload()["result"], reference["prediction"].head(5), rtol=1e-10)
    finally:
        open_backend(settings).endpoints.stop(settings.endpoint_name)

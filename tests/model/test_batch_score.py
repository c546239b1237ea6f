"""`batch_score.py` with Azure ML's batch contract, on a real trained model."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from model import layout
from model.errors import DataValidationError
from models.diabetes import batch_score, train
from models.diabetes.data import FEATURES, write_sample_csv
from models.diabetes.score import predict_locally

PARAMS = Path(train.__file__).parent / "parameters.json"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    train.run(write_sample_csv(root / "d.csv"), PARAMS, root / "model")
    return root / "model"


@pytest.fixture
def loaded(trained: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(trained))
    batch_score.init()
    yield trained
    batch_score.model = None


def test_run_appends_the_model_s_scores(loaded: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(write_sample_csv(tmp_path / "s.csv", for_scoring=True))
    frame["id"] = range(len(frame))
    scored = batch_score.run(frame)
    assert list(scored.columns) == [*FEATURES, "id", "score"]
    model = joblib.load(loaded / layout.MODEL_FILE)
    np.testing.assert_allclose(scored["score"].to_numpy(), model.predict(frame[list(FEATURES)].to_numpy()), rtol=1e-13)
    # Exactly what the online endpoint answers for the same rows (both score row-major arrays).
    assert scored["score"].tolist() == predict_locally(loaded, frame[list(FEATURES)].to_numpy().tolist())
    assert scored["id"].tolist() == list(range(442))


def test_run_accepts_a_list_of_files(loaded: Path, tmp_path: Path) -> None:
    first = write_sample_csv(tmp_path / "a.csv", for_scoring=True)
    second = write_sample_csv(tmp_path / "b.csv", for_scoring=True)
    assert len(batch_score.run([str(first), str(second)])) == 884


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        pytest.param(pd.DataFrame({"age": [1.0]}), "missing column(s) 'sex'", id="missing-column"),
        pytest.param(pd.DataFrame(columns=list(FEATURES)), "no data rows", id="empty"),
        pytest.param(
            pd.DataFrame([[0.1] * 9 + ["x"]], columns=list(FEATURES)),
            "column 's6', row 1: 'x' is not a number",
            id="non-numeric",
        ),
        pytest.param(
            pd.DataFrame([[0.1] * 9 + [np.nan]], columns=list(FEATURES)),
            "column 's6', row 1: the value is missing",
            id="nan",
        ),
        pytest.param(
            pd.DataFrame([[0.1] * 11], columns=[*FEATURES, "score"]), "already has a 'score' column", id="score-column"
        ),
    ],
)
def test_bad_mini_batch_raises_naming_the_problem(loaded: Path, frame: pd.DataFrame, expected: str) -> None:
    with pytest.raises(DataValidationError) as caught:
        batch_score.run(frame)
    assert expected in str(caught.value)


def test_run_without_init_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="call init"):
        batch_score.run(pd.DataFrame([[0.1] * 10], columns=list(FEATURES)))

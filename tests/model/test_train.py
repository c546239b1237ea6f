"""Training reproduces MLOpsPython: its own unit tests, the diabetes result, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from model import layout
from model.errors import ParametersError
from models.diabetes import train
from models.diabetes.data import FEATURES, read_csv, write_sample_csv

PARAMS = Path(train.__file__).parent / "parameters.json"


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_csv(tmp_path_factory.mktemp("data") / "diabetes.csv")


def _ridge_closed_form(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge with an intercept, solved from the normal equations: an independent check of scikit-learn."""
    x_mean, y_mean = x.mean(axis=0), y.mean()
    xc, yc = x - x_mean, y - y_mean
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return coef, float(y_mean - x_mean @ coef)


class TestMLOpsPythonUnitTests:
    """The two tests MLOpsPython shipped in diabetes_regression/training/test_train.py, with its numbers."""

    def test_train_model(self) -> None:
        x = np.array([1, 2, 3, 4, 5, 6]).reshape(-1, 1)
        y = np.array([10, 9, 8, 8, 6, 5])
        model = train.train_model(x, y, alpha=1.2)
        np.testing.assert_almost_equal(model.predict([[1], [2]]), [9.93939393939394, 9.03030303030303])

    def test_get_model_metrics(self) -> None:
        class Predictor:
            def predict(self, _: object) -> np.ndarray:
                return np.array([8.12121212, 7.21212121])

        metrics = train.get_model_metrics(Predictor(), np.zeros((2, 1)), np.array([8, 7]))  # type: ignore[arg-type]
        np.testing.assert_almost_equal(metrics["mse"], 0.029843893480257067)


class TestDiabetesTraining:
    def test_split_is_mlopspython_80_20_with_seed_0(self, diabetes_csv: Path) -> None:
        x_train, x_test, _, _ = train.split_data(read_csv(diabetes_csv))
        assert (len(x_train), len(x_test)) == (353, 89)
        assert list(x_train.columns) == list(FEATURES)
        assert x_test.index[:5].tolist() == [362, 249, 271, 435, 400]

    def test_alpha_04_matches_closed_form_ridge(self, diabetes_csv: Path, tmp_path: Path) -> None:
        metrics = train.run(diabetes_csv, PARAMS, tmp_path)
        x_train, x_test, y_train, y_test = train.split_data(read_csv(diabetes_csv))
        coef, intercept = _ridge_closed_form(x_train.to_numpy(), y_train.to_numpy(), alpha=0.4)
        expected_mse = float(np.mean((x_test.to_numpy() @ coef + intercept - y_test.to_numpy()) ** 2))
        assert metrics["mse"] == pytest.approx(expected_mse, rel=1e-9)
        assert metrics["mse"] == pytest.approx(3295.714938563238, rel=1e-9)
        model = joblib.load(tmp_path / layout.MODEL_FILE)
        np.testing.assert_allclose(model.coef_, coef, rtol=1e-9)

    def test_outputs_are_deterministic(self, diabetes_csv: Path, tmp_path: Path) -> None:
        train.run(diabetes_csv, PARAMS, tmp_path / "a")
        train.run(diabetes_csv, PARAMS, tmp_path / "b")
        for name in (
            layout.MODEL_FILE,
            layout.METRICS_FILE,
            layout.ENVIRONMENT_FILE,
            layout.TRAINING_FILE,
            layout.REFERENCE_FILE,
        ):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    def test_training_record_and_environment_lock(self, diabetes_csv: Path, tmp_path: Path) -> None:
        train.run(diabetes_csv, PARAMS, tmp_path)
        record = json.loads((tmp_path / layout.TRAINING_FILE).read_text())
        assert record["parameters"] == {"alpha": 0.4}
        assert record["split"]["train"] == 353
        assert record["data"]["rows"] == 442
        lock = json.loads((tmp_path / layout.ENVIRONMENT_FILE).read_text())
        import sklearn

        assert lock["libraries"]["scikit-learn"] == sklearn.__version__
        assert lock["python"] == ".".join(map(str, sys.version_info[:3]))

    def test_the_drift_baseline_is_the_training_features_and_their_predictions(
        self, diabetes_csv: Path, tmp_path: Path
    ) -> None:
        train.run(diabetes_csv, PARAMS, tmp_path)
        reference = pd.read_csv(tmp_path / layout.REFERENCE_FILE)
        features = read_csv(diabetes_csv).drop(columns=["Y"])
        assert list(reference.columns) == [*features.columns, layout.PREDICTION_COLUMN]
        np.testing.assert_array_equal(reference[features.columns].to_numpy(), features.to_numpy())
        model = joblib.load(tmp_path / layout.MODEL_FILE)
        np.testing.assert_array_equal(reference[layout.PREDICTION_COLUMN], model.predict(features.to_numpy()))

    def test_a_large_training_set_keeps_a_sample_as_baseline(self, tmp_path: Path) -> None:
        frame = pd.DataFrame(np.random.default_rng(0).normal(size=(12_000, 11)), columns=[*FEATURES, "Y"])
        model = train.train_model(frame[list(FEATURES)].to_numpy(), frame["Y"].to_numpy())
        train.write_reference(model, frame, tmp_path / "reference.csv")
        assert len(pd.read_csv(tmp_path / "reference.csv")) == train.REFERENCE_ROWS


class TestParameters:
    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            pytest.param("{not json", "not valid JSON", id="not-json"),
            pytest.param('{"training": {"alpha": -1}}', "non-negative number, got -1", id="negative-alpha"),
            pytest.param('{"training": {"alpha": "big"}}', "got 'big'", id="string-alpha"),
            pytest.param('{"training": []}', 'a "training" object', id="training-not-object"),
        ],
    )
    def test_bad_parameters_file(self, tmp_path: Path, content: str, expected: str) -> None:
        path = tmp_path / "p.json"
        path.write_text(content)
        with pytest.raises(ParametersError, match=expected):
            train.load_parameters(path)

    def test_unknown_ridge_argument(self) -> None:
        with pytest.raises(ParametersError, match="colour"):
            train.train_model(np.ones((3, 1)), np.ones(3), colour="red")


class TestCommandLine:
    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "models.diabetes.train", *args], capture_output=True, text=True, check=False
        )

    def test_writes_outputs(self, diabetes_csv: Path, tmp_path: Path) -> None:
        result = self._run("--data", str(diabetes_csv), "--params", str(PARAMS), "--out", str(tmp_path / "out"))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["metrics"]["mse"] == pytest.approx(3295.714938563238, rel=1e-9)
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
            [
                layout.ENVIRONMENT_FILE,
                layout.METRICS_FILE,
                layout.MODEL_FILE,
                layout.REFERENCE_FILE,
                layout.TRAINING_FILE,
            ]
        )

    def test_bad_data_exits_2_with_the_reason(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.csv"
        bad.write_text("age,sex\n1,2\n")
        result = self._run("--data", str(bad), "--params", str(PARAMS), "--out", str(tmp_path / "out"))
        assert result.returncode == 2
        assert "missing column(s) 'bmi'" in result.stderr
        assert not (tmp_path / "out").exists()

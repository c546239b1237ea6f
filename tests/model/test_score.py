"""`score.py` with Azure ML's online contract, on a real trained model."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import joblib
import numpy as np
import pytest
import sklearn

from model import layout
from models.diabetes import score as score_module
from models.diabetes import train
from models.diabetes.data import write_sample_csv
from models.diabetes.score import ScoringInputError, parse_request

PARAMS = Path(train.__file__).parent / "parameters.json"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    train.run(write_sample_csv(root / "d.csv"), PARAMS, root / "model")
    return root / "model"


def _fresh_score() -> ModuleType:
    """A separate copy of `score.py`, loaded from its file the way Azure ML's server loads an entry script."""
    spec = importlib.util.spec_from_file_location("entry_module", Path(score_module.__file__))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def score(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A fresh copy of the module, initialised the way Azure ML does it."""
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    module = _fresh_score()
    module.init()
    return module


class TestContract:
    def test_run_returns_the_model_s_predictions(self, score: ModuleType, model_dir: Path) -> None:
        rows = [[0.01 * i for i in range(10)], [-0.02 * i for i in range(10)]]
        answer = score.run(json.dumps({"data": rows}))
        expected = joblib.load(model_dir / layout.MODEL_FILE).predict(np.array(rows)).tolist()
        assert answer == {"result": expected}

    def test_mlopspython_smoke_request(self, score: ModuleType) -> None:
        answer = score.run('{"data":[[1,2,3,4,5,6,7,8,9,10],[10,9,8,7,6,5,4,3,2,1]]}')
        assert len(answer["result"]) == 2
        assert answer["result"] == pytest.approx([5215.180312699018, 3727.025267737844], rel=1e-9)

    def test_bytes_are_accepted(self, score: ModuleType) -> None:
        assert len(score.run(b'{"data": [[0,0,0,0,0,0,0,0,0,0]]}')["result"]) == 1

    def test_telemetry_line_when_azure_passes_headers(
        self, score: ModuleType, capsys: pytest.CaptureFixture[str]
    ) -> None:
        score.run('{"data": [[0,0,0,0,0,0,0,0,0,0]]}', {"X-Ms-Request-Id": "rid-1", "traceparent": "00-ab-cd-01"})
        line = json.loads(capsys.readouterr().out)
        assert line == {"RequestId": "rid-1", "TraceParent": "00-ab-cd-01", "NumberOfPredictions": 1}

    def test_no_telemetry_line_without_headers(self, score: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
        score.run('{"data": [[0,0,0,0,0,0,0,0,0,0]]}')
        assert capsys.readouterr().out == ""

    def test_model_in_a_subfolder_is_found(
        self, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        nested = tmp_path / "azureml-models" / "m" / "1"
        (nested / "outputs").mkdir(parents=True)
        for file in model_dir.iterdir():
            (nested / "outputs" / file.name).write_bytes(file.read_bytes())
        monkeypatch.setenv("AZUREML_MODEL_DIR", str(nested))
        module = _fresh_score()
        module.init()
        assert module.model is not None

    def test_predict_locally_matches_run(self, score: ModuleType, model_dir: Path) -> None:
        rows = [[1.0] * 10, [2.0] * 10]
        assert score.predict_locally(model_dir, rows) == score.run(json.dumps({"data": rows}))["result"]


class TestEnvironmentLock:
    def test_mismatched_library_is_refused_naming_both_versions(
        self, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        copy = tmp_path / "model"
        copy.mkdir()
        for file in model_dir.iterdir():
            (copy / file.name).write_bytes(file.read_bytes())
        lock = json.loads((copy / layout.ENVIRONMENT_FILE).read_text())
        lock["libraries"]["scikit-learn"] = "0.22.2"
        (copy / layout.ENVIRONMENT_FILE).write_text(json.dumps(lock))
        monkeypatch.setenv("AZUREML_MODEL_DIR", str(copy))
        module = _fresh_score()
        with pytest.raises(module.EnvironmentMismatchError) as caught:
            module.init()
        assert f"scikit-learn: model trained with 0.22.2, running {sklearn.__version__}" in str(caught.value)
        assert module.model is None

    def test_python_minor_version_matters(self, tmp_path: Path) -> None:
        from models.diabetes.score import environment_problems

        (tmp_path / layout.ENVIRONMENT_FILE).write_text(json.dumps({"python": "3.9.1", "libraries": {}}))
        assert environment_problems(tmp_path)[0].startswith("python: model trained with 3.9.1, running 3.11")


class TestBadRequests:
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            pytest.param("{", "not valid JSON", id="invalid-json"),
            pytest.param("", "not valid JSON", id="empty-body"),
            pytest.param("[1, 2]", 'expected a JSON object {"data"', id="not-an-object"),
            pytest.param('{"rows": []}', 'expected a JSON object {"data"', id="no-data"),
            pytest.param('{"data": []}', "non-empty list", id="empty-list"),
            pytest.param('{"data": "x"}', "non-empty list", id="data-not-list"),
            pytest.param('{"data": [[1,2,3]]}', "data row 1 has 3 values; expected 10", id="narrow-row"),
            pytest.param('{"data": [[1,2,3,4,5,6,7,8,9,10],[1]]}', "data row 2 has 1 values", id="ragged"),
            pytest.param('{"data": [[1,2,3,4,5,6,7,8,9,10,11]]}', "data row 1 has 11 values", id="wide-row"),
            pytest.param('{"data": [[1,2,3,4,5,6,7,8,9,"10"]]}', 'column 10: "10" is not a number', id="string"),
            pytest.param('{"data": [[1,2,3,4,5,6,7,8,9,null]]}', "column 10: null is not a number", id="null"),
            pytest.param('{"data": [[1,2,3,true,5,6,7,8,9,10]]}', "column 4: true is not a number", id="boolean"),
            pytest.param(
                b'{"data": [[1,2,3,4,5,6,7,8,9,10],[1,2,false,4,5,6,7,8,9,10]]}', "row 2, column 3", id="bytes"
            ),
            pytest.param('{"data": [[1,2,3,4,5,6,7,8,9,NaN]]}', "NaN and Infinity are not numbers", id="nan"),
            pytest.param(
                '{"data": [[1,2,3,4,5,6,7,8,9,-Infinity]]}', "NaN and Infinity are not numbers", id="infinity"
            ),
            pytest.param('{"data": [[1,2,3,4,5,6,7,8,9,1e999]]}', "infinity", id="overflowing-float"),
            pytest.param('{"data": [[1,2,3,4,5,6,7,8,9,' + "9" * 400 + "]]}", "", id="huge-integer"),
            pytest.param('{"data": [5]}', "data row 1 is int, not a list", id="row-not-list"),
            pytest.param('{"data": [[[1],2,3,4,5,6,7,8,9,10]]}', "column 1: [1] is not a number", id="nested"),
        ],
    )
    def test_message_names_the_problem(self, body: str | bytes, expected: str) -> None:
        with pytest.raises(ScoringInputError, match=None) as caught:
            parse_request(body)
        assert expected in str(caught.value)
        assert isinstance(caught.value, ValueError)

    def test_invalid_utf8(self) -> None:
        with pytest.raises(ScoringInputError, match="UTF-8"):
            parse_request(b'{"data": [[\xff]]}')

    def test_a_true_outside_data_does_not_break_a_good_request(self) -> None:
        rows = parse_request('{"data": [[1,2,3,4,5,6,7,8,9,10]], "note": "true"}')
        assert rows.shape == (1, 10)
        assert rows.dtype == np.float64

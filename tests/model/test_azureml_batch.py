"""`model/azureml_batch.py`, the entry script of our Azure ML batch deployments, on a real trained model
(issue 22, points 1 and 9): pre-formatted lines, an error file per failed input, its root on `sys.path`."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

import model
from model.errors import DataValidationError
from models.diabetes import batch_score, train
from models.diabetes.data import write_sample_csv

PARAMS = Path(train.__file__).parent / "parameters.json"
ENTRY = Path(model.__file__).parent / "azureml_batch.py"  # the framework's entry script


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    train.run(write_sample_csv(root / "d.csv"), PARAMS, root / "model")
    return root / "model"


@pytest.fixture
def entry(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The entry script imported from its file, as Azure's driver imports it, after `init()`."""
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(trained))
    monkeypatch.setenv("AZUREML_BI_OUTPUT_PATH", str(tmp_path / "score"))
    monkeypatch.setenv("MLOPS_BATCH_SCRIPT", "models/diabetes/batch_score.py")
    spec = importlib.util.spec_from_file_location("azureml_entry_under_test", ENTRY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    yield module
    module.script = None


def test_each_row_comes_back_as_a_line_led_by_its_file(entry: ModuleType, trained: Path, tmp_path: Path) -> None:
    first = write_sample_csv(tmp_path / "part-000000.csv", for_scoring=True)
    second = tmp_path / "part-000001.csv"
    pd.read_csv(first).head(3).to_csv(second, index=False)
    lines = entry.run([str(first), str(second)])
    assert len(lines) == 445
    rows = list(csv.reader(lines))
    assert {row[0] for row in rows[:442]} == {"part-000000.csv"}
    assert [row[0] for row in rows[442:]] == ["part-000001.csv"] * 3
    assert all(" " not in line for line in lines)  # nothing for append_row's space-separated format to mangle
    batch_score.init()  # the package's own run, in this process, gives the same rows and scores
    try:
        expected = batch_score.run(pd.read_csv(first))
    finally:
        batch_score.model = None
    assert [[float(v) for v in row[1:]] for row in rows[:442]] == expected.to_numpy().tolist()
    assert not list((tmp_path / "score").glob("*.error.txt"))


def test_a_failing_file_leaves_its_error_beside_the_output_and_raises(entry: ModuleType, tmp_path: Path) -> None:
    good = write_sample_csv(tmp_path / "part-000000.csv", for_scoring=True)
    bad = tmp_path / "part-000007.csv"
    bad.write_text("age,sex\n1,2\n")
    with pytest.raises(DataValidationError, match="missing column"):
        entry.run([str(good), str(bad)])
    error = tmp_path / "score" / "part-000007.error.txt"
    assert "part-000007.csv" in error.read_text()
    assert "missing column(s)" in error.read_text()
    write_sample_csv(bad, for_scoring=True)  # the retry succeeds: the stale error goes
    assert len(entry.run([str(bad)])) == 442
    assert not error.exists()


def test_it_puts_its_code_root_on_sys_path_and_names_a_missing_setting(trained: Path, tmp_path: Path) -> None:
    """Run as the driver runs it, in a clean interpreter started outside the checkout: the entry script puts
    its code root on sys.path itself (the driver may only add the script's own folder)."""
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('entry', {str(ENTRY)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "import model.layout\n"  # with -S -I, resolvable only through the root the script added
        "try:\n    m.init()\nexcept RuntimeError as e:\n    print(e)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AZUREML_MODEL_DIR": str(trained)}
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "MLOPS_BATCH_SCRIPT is not set" in result.stdout

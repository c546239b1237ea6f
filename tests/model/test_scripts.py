"""`model.scripts.load_script`: the one way a scoring script is imported and initialised."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model.scripts import NotImportableError, load_script

SCRIPT = """
import os

AT_IMPORT = os.environ.get("AZUREML_MODEL_DIR")
seen = None


def init():
    global seen
    seen = os.environ.get("AZUREML_MODEL_DIR")


def run(raw_data):
    return {"result": [seen]}
"""


def test_the_model_folder_is_set_while_the_script_loads_and_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "score.py"
    script.write_text(SCRIPT)
    monkeypatch.setenv("AZUREML_MODEL_DIR", "before")
    first = load_script(script, tmp_path / "one")
    second = load_script(script, tmp_path / "two", name="mlops_other")
    assert (first.AT_IMPORT, first.seen) == (str(tmp_path / "one"), str(tmp_path / "one"))
    assert second.run("{}") == {"result": [str(tmp_path / "two")]}
    assert first.run("{}") == {"result": [str(tmp_path / "one")]}  # modules of their own, each with its model
    assert second.__name__ == "mlops_other"
    assert os.environ["AZUREML_MODEL_DIR"] == "before"


def test_without_a_model_folder_the_environment_is_left_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "batch_score.py"
    script.write_text(SCRIPT)
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    assert load_script(script).seen is None
    monkeypatch.setenv("AZUREML_MODEL_DIR", "set by Azure ML")
    assert load_script(script).seen == "set by Azure ML"


def test_a_failing_init_propagates_and_restores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "score.py"
    script.write_text("def init():\n    raise RuntimeError('refused: trained with other libraries')\n")
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    with pytest.raises(RuntimeError, match="refused"):
        load_script(script, tmp_path)
    assert "AZUREML_MODEL_DIR" not in os.environ


def test_a_file_python_cannot_import_is_named(tmp_path: Path) -> None:
    data = tmp_path / "score.txt"
    data.write_text("not python")
    with pytest.raises(NotImportableError, match=r"score.txt: not an importable Python file"):
        load_script(data, tmp_path)

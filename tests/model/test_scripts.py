"""`model.scripts.load_script`: the one way a scoring script is imported and initialised."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model.package import ContractError
from model.scripts import NotImportableError, load_script, score_each_here

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


def test_scripts_scored_here_answer_each_in_order_and_a_failing_one_is_named(tmp_path: Path) -> None:
    """`score_each_here` (the deploy step's expected answers): each script a module of its own with its own model
    folder, answers as JSON would carry them, and a script that fails is an error naming it, not the others'."""
    good = tmp_path / "score.py"
    good.write_text(SCRIPT)
    broken = tmp_path / "broken.py"
    broken.write_text("def init():\n    pass\n\n\ndef run(raw_data):\n    raise ValueError('no rows in ' + raw_data)\n")
    answers = score_each_here([(good, tmp_path / "one"), (broken, tmp_path), (good, tmp_path / "two")], b'{"data": []}')
    assert answers[0] == {"result": [str(tmp_path / "one")]}
    assert answers[2] == {"result": [str(tmp_path / "two")]}
    assert isinstance(answers[1], ContractError)
    assert str(answers[1]) == f'{broken}: ValueError: no rows in {{"data": []}}'


def test_an_answer_json_cannot_carry_is_that_script_s_error(tmp_path: Path) -> None:
    script = tmp_path / "score.py"
    script.write_text("def init():\n    pass\n\n\ndef run(raw_data):\n    return {'result': {1, 2}}\n")
    [answer] = score_each_here([(script, tmp_path)], b"{}")
    assert isinstance(answer, ContractError)
    assert "set is not JSON serializable" in str(answer)

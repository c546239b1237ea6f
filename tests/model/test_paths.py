"""The project root has one definition (model/paths.py): every layer finds the code through it."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import infra.settings
from model import paths

ROOT = paths.code_root()
PRODUCT = ("flows", "tasks", "deployments", "model", "infra", "cli", "azureml_emulator")
# model/azureml_batch.py runs on Azure ML as a plain script: it puts its own folder on sys.path before it can
# import `model`, so it must work the folder out itself. model/paths.py is the one definition.
OWN_ROOT = {"model/paths.py", "model/azureml_batch.py"}


def test_the_code_root_holds_the_packages_and_is_the_checkout() -> None:
    assert (ROOT / "model" / "paths.py").is_file()
    assert (ROOT / "infra" / "settings" / "__init__.py").is_file()
    assert paths.checkout_root() == ROOT  # a checkout: it holds pyproject.toml
    assert paths.model_package() == ROOT / "model"
    assert infra.settings.checkout_root is paths.checkout_root


def test_command_environment_puts_the_code_root_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = paths.command_environment({"EXTRA": "1"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT), "/elsewhere"]
    assert env["EXTRA"] == "1"
    monkeypatch.delenv("PYTHONPATH")
    assert paths.command_environment()["PYTHONPATH"] == str(ROOT)


def _spells_the_root(path: Path) -> bool:
    """`Path(__file__).resolve().parents[n]` reaching the project root, or `Path(package.__file__)...parents[1]`
    for a top-level package: a root worked out again instead of asked of model/paths.py."""
    depth = len(path.relative_to(ROOT).parts)  # parents[depth - 1] of this file is the root
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant)
        ):
            continue
        files = [n for n in ast.walk(node.value) if isinstance(n, ast.Name | ast.Attribute)]
        own = any(isinstance(n, ast.Name) and n.id == "__file__" for n in files)
        package = any(isinstance(n, ast.Attribute) and n.attr == "__file__" for n in files)
        if (own and node.slice.value == depth - 1) or (package and node.slice.value == 1):
            return True
    return False


def test_no_other_module_works_out_the_project_root() -> None:
    sources = [p for folder in PRODUCT for p in (ROOT / folder).rglob("*.py")]
    offenders = [
        rel for p in sources if (rel := p.relative_to(ROOT).as_posix()) not in OWN_ROOT and _spells_the_root(p)
    ]
    assert offenders == []
    assert _spells_the_root(ROOT / "model" / "paths.py")  # the check can fire

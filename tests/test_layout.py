"""The layout's own rules: size budgets, and the README's Layout section naming what is in the tree."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from infra.settings import checkout_root

ROOT = checkout_root()
CODE = ("cli", "deployments", "flows", "azureml_emulator", "tasks", "infra", "model", "models", "benchmarks")
MODULE_LINES, FUNCTION_LINES = 400, 50
REASON = re.compile(r"long because", re.IGNORECASE)


def _sources() -> list[Path]:
    return sorted(p for folder in CODE for p in (ROOT / folder).rglob("*.py") if "node_modules" not in p.parts)


def _over_budget(path: Path, root: Path = ROOT) -> list[str]:
    text = path.read_text()
    tree = ast.parse(text, filename=str(path))
    where = str(path.relative_to(root))
    found = []
    if len(text.splitlines()) > MODULE_LINES and not REASON.search(ast.get_docstring(tree) or ""):
        found.append(f"{where}: {len(text.splitlines())} lines")
    if path.relative_to(root).parts[0] == "flows":
        return found  # a flow reads as its stage table, however long
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > FUNCTION_LINES and not REASON.search(ast.get_docstring(node) or ""):
                found.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    return found


def test_a_module_or_function_over_budget_says_why() -> None:
    """A module over 400 lines, or a function over 50 (flows excepted), says "Long because: ..." in its docstring."""
    assert [problem for path in _sources() for problem in _over_budget(path)] == []


def test_the_budget_check_can_fire(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LINES))
    code = f'def f() -> None:\n{body}\n\n\ndef g() -> None:\n    """Long because: a table."""\n{body}\n'
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "long.py").write_text(code)
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "long.py").write_text(code)

    assert _over_budget(tmp_path / "tasks" / "long.py", tmp_path) == [f"tasks/long.py:1 f: {FUNCTION_LINES + 1} lines"]
    assert _over_budget(tmp_path / "flows" / "long.py", tmp_path) == []
    (tmp_path / "tasks" / "long.py").write_text("\n" * MODULE_LINES + code)
    assert f"tasks/long.py: {MODULE_LINES + 2 * FUNCTION_LINES + 5} lines" in _over_budget(
        tmp_path / "tasks" / "long.py", tmp_path
    )


def _layout_block() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1].splitlines()[1:]


def test_the_readme_layout_names_every_top_level_folder_and_nothing_that_is_gone() -> None:
    lines = _layout_block()
    entries = {line.split()[0].rstrip("/") for line in lines if line and not line[0].isspace()}
    tracked = {p.split("/")[0] for p in _tracked() if "/" in p and not p.startswith(".")}
    assert tracked - entries == set()  # every folder is described
    assert [e for e in entries if not (ROOT / e).exists()] == []
    top = None
    missing = []
    for line in lines:
        if line and not line[0].isspace():
            top = line.split()[0].rstrip("/")
        for token in re.findall(r"(?<![\w./-])([a-z_]+(?:/[a-z_]+)+)(?:/|\.py)?(?![\w-])", line):
            if not (
                (ROOT / token).exists() or (ROOT / f"{token}.py").exists() or (top and (ROOT / top / token).exists())
            ):
                missing.append(token)
    assert missing == []


def _tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()

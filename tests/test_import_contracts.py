"""The import boundaries, as import-linter contracts (`[tool.importlinter]` in pyproject.toml): they hold on this
tree, and each one fails when the import it forbids is added (in a copy of the tree)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from infra.settings import checkout_root

ROOT = checkout_root()
PACKAGES = ("cli", "deployments", "flows", "azureml_emulator", "tasks", "infra", "model", "models")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# One forbidden import per contract, appended to a module of a copy of the tree: (file, code, what the
# contract's report then names). The cycle is made by an import inside a function, which grimp reads too.
VIOLATIONS = {
    "Layers": ("model/gate.py", "import infra.settings\n", "model.gate -> infra.settings"),
    "The framework imports no sample package": (
        "tasks/evaluate.py",
        "import models.diabetes.data\n",
        "tasks.evaluate -> models.diabetes.data",
    ),
    "The two adapters are independent": (
        "infra/local/registry.py",
        "import infra.azureml.entities\n",
        "infra.local.registry -> infra.azureml.entities",
    ),
    "Only the Azure ML adapter imports the Azure ML SDK": (
        "flows/deploy.py",
        "from azure.ai.ml import MLClient\n",
        "flows.deploy (l.",
    ),
    "The backend protocol imports no adapter": (
        "infra/backend.py",
        "import infra.factory\n",
        "infra.backend -> infra.factory",
    ),
    "The emulator does not use the SDK it emulates": (
        "azureml_emulator/server.py",
        "import azure.core\n",
        "azureml_emulator.server -> azure",
    ),
    "The Azure ML settings section imports nothing of its adapter": (
        "infra/azureml/settings.py",
        "import infra.azureml.client\n",
        "infra.azureml.settings -> infra.azureml.client",
    ),
    "No import cycles, at any depth": (
        "flows/train_register.py",
        "\n\ndef _cycle() -> None:\n    import flows.pipeline\n",
        "No cycles are allowed in flows.",
    ),
}


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin"},
    )


def test_the_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(VIOLATIONS)} kept, 0 broken." in result.stdout


def test_each_contract_fails_when_its_forbidden_import_is_added(tmp_path: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "node_modules", "*.json", "*.csv")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "tests" / "support").mkdir(parents=True)
    for name in ("tests/__init__.py", "tests/support/__init__.py", "tests/support/import_contracts.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    assert _lint_imports(tmp_path).returncode == 0  # the copy alone keeps them
    for file, code, _ in VIOLATIONS.values():
        with (tmp_path / file).open("a") as f:
            f.write(code)

    result = _lint_imports(tmp_path)

    assert result.returncode != 0
    assert f"Contracts: 0 kept, {len(VIOLATIONS)} broken." in result.stdout, result.stdout
    reports = result.stdout.split("Broken contracts", 1)[1]
    for contract, (_, _, named) in VIOLATIONS.items():
        report = reports.split(contract, 1)[1]  # from its heading to the next contract's
        report = min((report.split(other, 1)[0] for other in VIOLATIONS if other != contract), key=len)
        assert named in report, (contract, result.stdout)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_adapters_import_the_protocol() -> None:
    assert "infra.backend" in _imports(ROOT / "infra" / "local" / "jobs.py")
    assert "infra.backend" in _imports(ROOT / "infra" / "azureml" / "jobs.py")

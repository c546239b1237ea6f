"""Only `infra/azureml/` (and its tests) imports azure.ai.ml, and nothing imports an adapter back from the protocol."""

from __future__ import annotations

import ast
from pathlib import Path

from infra.settings import checkout_root

ROOT = checkout_root()
SOURCES = [
    p
    for folder in (
        "flows",
        "tasks",
        "deployments",
        "model",
        "models",
        "infra",
        "cli",
        "azureml_emulator",
        "benchmarks",
        "tests",
    )
    for p in (ROOT / folder).rglob("*.py")
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_infra_azureml_imports_the_azure_ml_sdk() -> None:
    """…in the product: tests drive the real SDK against the emulator, and load the YAML the backend writes."""
    allowed = ROOT / "infra" / "azureml"
    offenders = [
        str(p.relative_to(ROOT))
        for p in SOURCES
        if not p.is_relative_to(allowed)
        and not p.is_relative_to(ROOT / "tests")
        and any(name == "azure.ai.ml" or name.startswith("azure.ai.ml.") for name in _imports(p))
    ]
    assert offenders == []
    assert any(name.startswith("azure.ai.ml") for name in _imports(allowed / "client.py"))  # the check can fire


def test_the_protocol_imports_no_adapter_and_the_adapters_import_the_protocol() -> None:
    protocol = _imports(ROOT / "infra" / "backend.py")
    assert not [name for name in protocol if name.startswith(("infra.local", "infra.azureml", "infra.factory"))]
    assert "infra.backend" in _imports(ROOT / "infra" / "local" / "jobs.py")
    assert "infra.backend" in _imports(ROOT / "infra" / "azureml" / "jobs.py")


def test_the_emulator_does_not_use_the_sdk_it_emulates() -> None:
    emulator = list((ROOT / "azureml_emulator").rglob("*.py"))
    assert emulator
    assert not [p.name for p in emulator if any(n == "azure" or n.startswith("azure.") for n in _imports(p))]

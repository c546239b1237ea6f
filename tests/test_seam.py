"""The backend seam (issue 23): flows and tasks never branch on which backend runs them; what differs is the
backend's to do, behind one protocol (`infra.backend`), with the shared parts in `infra.common`."""

from __future__ import annotations

import ast
from pathlib import Path

from infra.azureml.batch import AzureMLBatch
from infra.local.batch import LocalBatch
from infra.settings import checkout_root
from tests.support.fakes import FakeBatch

ROOT = checkout_root()


def _imports(path: Path) -> set[str]:
    """The modules `path` imports, with `from a import b` counted as `a` and as `a.b`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _names_the_backend(node: ast.expr) -> bool:
    """`backend.name`, `self.backend.name`, `backend_name`, ...: the name of the backend in use."""
    if isinstance(node, ast.Attribute) and node.attr == "name":
        return "backend" in ast.unparse(node.value).lower()
    return isinstance(node, ast.Name) and "backend" in node.id.lower() and "name" in node.id.lower()


def _branches_on_the_backend(source: str) -> list[str]:
    """Each comparison (or `match`) of the backend's name in `source`, as written."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(_names_the_backend(n) for n in [node.left, *node.comparators]):
            found.append(ast.unparse(node))
        elif isinstance(node, ast.Match) and _names_the_backend(node.subject):
            found.append(f"match {ast.unparse(node.subject)}")
    return found


def test_no_flow_or_task_branches_on_the_backends_name() -> None:
    """Recording which backend trained is data (the training cache key, infra/common/train_inputs.py); choosing what to do by it is not."""
    sources = [p for folder in ("flows", "tasks") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(sources) > 10
    offenders = {str(p.relative_to(ROOT)): found for p in sources if (found := _branches_on_the_backend(p.read_text()))}
    assert offenders == {}


def test_the_check_finds_a_branch_on_the_backends_name() -> None:
    """The check above can fire (the monitor flow's branch before issue 23, and other spellings)."""
    assert _branches_on_the_backend('x = since if include_online and backend.name == "local" else None')
    assert _branches_on_the_backend('if "azureml" != self.backend.name:\n    pass')
    assert _branches_on_the_backend("if backend_name in {'local'}:\n    pass")
    assert _branches_on_the_backend("match backend.name:\n    case 'local':\n        pass")
    assert not _branches_on_the_backend('key = {"backend": backend.name}\nif model.name == "x":\n    pass')


def test_batch_planning_is_neutral_and_the_azure_adapter_does_not_borrow_the_local_one() -> None:
    batching = _imports(ROOT / "infra" / "common" / "batching.py")
    assert not [n for n in batching if n.startswith(("infra.local", "infra.azureml", "infra.endpoint_server"))]
    assert "infra.common.batching" in _imports(ROOT / "infra" / "local" / "batch.py")
    azure = _imports(ROOT / "infra" / "azureml" / "batch.py")
    assert "infra.common.batching" in azure
    assert "infra.local.batch" not in azure


def test_every_batch_implements_the_one_protocol_without_a_remote_flag() -> None:
    for implementation in (LocalBatch, AzureMLBatch, FakeBatch):
        assert all(callable(getattr(implementation, m, None)) for m in ("plan", "score_all", "count_rows", "assemble"))
        assert not hasattr(implementation, "remote")
        assert not hasattr(implementation, "run_job")


def test_the_drift_tasks_ask_the_backend_for_collected_data_not_the_endpoint_servers_folders() -> None:
    monitor = _imports(ROOT / "tasks" / "monitor.py")
    assert not [n for n in monitor if n.startswith("infra.endpoint_server")]
    assert '/ "endpoints"' not in (ROOT / "tasks" / "monitor.py").read_text()  # no endpoint folder is built
    assert "backend.endpoints.collected(" in (ROOT / "tasks" / "monitor.py").read_text()


def test_the_emulator_leaves_an_endpoints_keys_to_its_endpoint_server() -> None:
    """It regenerates a key through the server's management API (`LocalEndpoints.regenerate_key`), and never writes
    the server's keys file itself."""
    emulator = sorted((ROOT / "azureml_emulator").rglob("*.py"))
    assert emulator
    assert [
        str(p.relative_to(ROOT)) for p in emulator if "keys.json" in p.read_text() or "KEYS_FILE" in p.read_text()
    ] == []
    assert ".regenerate_key(" in (ROOT / "azureml_emulator" / "handlers" / "online.py").read_text()

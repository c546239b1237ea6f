"""infra/local/ is the local adapter only: the Azure ML adapter, the emulator, the deployments and the test
fakes use the neutral building blocks (infra/common/, model/paths.py), never the local adapter."""

from __future__ import annotations

import ast
from pathlib import Path

from model.paths import code_root

ROOT = code_root()
# Who may import infra.local: the adapter itself, the factory that chooses it, the adapter's own tests and the
# contract tests that run every backend, and the benchmarks that measure it. Tests of flows and services run
# the pipeline on the local backend (tests/support/helpers.py), so every test folder but tests/support/fakes.py
# is outside this check.
ALLOWED = ("infra/local/", "infra/factory.py", "tests/", "benchmarks/")
CHECKED_TESTS = ("tests/support/fakes.py",)


# Removed by the batch seam step of issue 23 (LocalBatch's planning moves to infra/common/batching.py).
def local_imports(path: Path) -> set[str]:
    """The `infra.local` modules `path` imports (`import infra.local...`, `from infra.local... import`,
    `from infra import local`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "infra":
                names |= {f"infra.{alias.name}" for alias in node.names}
    return {name for name in names if name == "infra.local" or name.startswith("infra.local.")}


def test_nothing_but_the_local_adapter_and_its_chooser_imports_it() -> None:
    sources = [
        p
        for p in ROOT.rglob("*.py")
        if not any(part.startswith((".", "node_modules")) for part in p.relative_to(ROOT).parts)
    ]
    offenders = sorted(
        (relative, name)
        for p in sources
        if not (relative := p.relative_to(ROOT).as_posix()).startswith(ALLOWED) or relative in CHECKED_TESTS
        for name in local_imports(p)
    )
    assert offenders == []
    assert local_imports(ROOT / "infra" / "factory.py") == {"infra.local"}  # the check can fire


def test_the_check_sees_every_spelling(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import infra.local.jobs\nfrom infra import local, settings\nfrom infra.localish import x\n")
    assert local_imports(source) == {"infra.local.jobs", "infra.local"}

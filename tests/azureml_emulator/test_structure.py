"""The emulator's structure (issue 22): a core its handler modules use, one handler module per resource family
that imports no other, no import cycle, and no import inside a function to hide one."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from infra.settings import checkout_root

PACKAGE = "azureml_emulator"
FOLDER = checkout_root() / "azureml_emulator"
CORE = PACKAGE + ".core"
HANDLERS = PACKAGE + ".handlers"


def _module(path: Path) -> str:
    parts = path.relative_to(FOLDER).with_suffix("").parts
    return ".".join([PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)])


def _sources() -> dict[str, ast.Module]:
    return {_module(path): ast.parse(path.read_text(), filename=str(path)) for path in FOLDER.rglob("*.py")}


def _imported(node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    """The package's modules an import statement loads (`from package import module` names the module)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules
    base = node.module or ""
    return ({base} | {f"{base}.{alias.name}" for alias in node.names}) & modules


def _imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """Every module of the package `tree` imports, at module level or in a function."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _imported(node, modules)
    return found


def _function_imports(tree: ast.Module) -> list[str]:
    """Import statements inside a function or method, as `function: line`."""
    found = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    found.append(f"{getattr(function, 'name', 'lambda')}: line {node.lineno}")
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` (module → modules it imports), or [] when there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        path.append(module)
        for imported in sorted(graph[module]):
            cycle = visit(imported)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return []

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return []


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    modules = set(sources)
    # a module's package (`__init__`) is loaded with it, but holds no imports of its own here: not an edge
    return {name: _imports(tree, modules) - {name} for name, tree in sources.items()}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_the_emulator_imports_no_cycle() -> None:
    graph = _graph()
    assert PACKAGE + ".server" in graph
    assert _cycle(graph) == []


def test_no_import_inside_a_function() -> None:
    offenders = {name: found for name, tree in _sources().items() if (found := _function_imports(tree))}
    assert offenders == {}


def test_handler_modules_import_the_core_only() -> None:
    """…so no handler module imports another, the server or the job runner."""
    graph = _graph()
    handlers = {name for name in graph if name.startswith(HANDLERS + ".")}
    assert len(handlers) >= 7  # workspace, assets, jobs, online, batch, compute, schedules (and more)
    outside = {name: sorted(m for m in graph[name] if not m.startswith(CORE)) for name in handlers}
    assert {name: found for name, found in outside.items() if found} == {}


def test_the_core_imports_no_handler_and_not_the_server() -> None:
    graph = _graph()
    above = {name for name in graph if name.startswith(HANDLERS)} | {PACKAGE + ".server", PACKAGE + ".__main__"}
    core = {name for name in graph if name == CORE or name.startswith(CORE + ".")}
    assert {name: sorted(graph[name] & above) for name in core if graph[name] & above} == {}


def test_every_body_says_where_it_comes_from() -> None:
    """The literal response bodies are data (`bodies/*.json`), each with a `_source` note."""
    files = sorted((FOLDER / "bodies").glob("*.json"))
    assert files
    unsourced = [path.name for path in files if not str(json.loads(path.read_text()).get("_source") or "").strip()]
    assert unsourced == []

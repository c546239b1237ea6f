"""A package's scoring scripts, loaded: the one way to import `score.py` or `batch_score.py` and call its `init()`
under `AZUREML_MODEL_DIR` (the endpoint server, local batch scoring, the Azure ML batch entry script and the
smoke checks all use `load_script`), and the same in a fresh interpreter (`score_locally`, `batch_locally`).

The child interpreter is `python -m model.scripts`; it imports nothing of the project's Prefect code.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from model.package import ContractError
from model.paths import command_environment

_RUN_TIMEOUT_SECONDS = 600
_PAIR = "\x1f"  # between a script's path and its model folder's on `_run_each`'s command line


class NotImportableError(ContractError):
    """The file is not something Python can import (no loader for it)."""


def score_locally(script: Path, model_dir: Path, body: bytes, *, timeout: float = _RUN_TIMEOUT_SECONDS) -> Any:
    """What `script`'s `init()` then `run(body)` return for the model in `model_dir`, in a fresh interpreter.

    Raises:
        ContractError: the script failed to load, init or score; the message holds its error.
    """
    [answer] = score_each_locally([(script, model_dir)], body, timeout=timeout)
    if isinstance(answer, ContractError):
        raise answer
    return answer


def score_each_locally(
    scripts: list[tuple[Path, Path]], body: bytes, *, timeout: float = _RUN_TIMEOUT_SECONDS
) -> list[Any]:
    """Each `(script, model_dir)`'s answer to `init()` then `run(body)`, all in one fresh interpreter (the
    scoring libraries are imported once, about 1.5 s of CPU, not once per script): per script its answer, or
    the ContractError that names it and its error.

    Raises:
        ContractError: the interpreter itself failed (it ran past `timeout`, say).
    """
    with tempfile.TemporaryDirectory(prefix="mlops-score-") as folder:
        request, answers = Path(folder) / "request.json", Path(folder) / "answers.json"
        request.write_bytes(body)
        pairs = [f"{script}{_PAIR}{model_dir}" for script, model_dir in scripts]
        _run_self(["_run_each", str(request), str(answers), *pairs], timeout, what=str(scripts[0][0]))
        results = json.loads(answers.read_text())
    return [
        ContractError(f"{script}: {result['error']}") if "error" in result else result["answer"]
        for (script, _), result in zip(scripts, results, strict=True)
    ]


def score_each_here(scripts: list[tuple[Path, Path]], body: bytes) -> list[Any]:
    """Each `(script, model_dir)`'s answer to `init()` then `run(body)` in this process (each script a module of
    its own, through `load_script`), JSON as a child's would be: per script its answer, or the ContractError that
    names it and its error. For a process that imports the scoring libraries anyway (`mlops run` batch-scores in
    its own process): no second interpreter importing them again (~1.4 s of CPU; issue 27). The caller serialises
    calls, as for `load_script`."""
    answers: list[Any] = []
    for script, model_dir in scripts:
        try:
            answers.append(json.loads(json.dumps(load_script(script, model_dir).run(body.decode()))))
        except Exception as exc:  # noqa: BLE001 - reported per script, by name
            answers.append(ContractError(f"{script}: {type(exc).__name__}: {exc}"))
    return answers


def batch_locally(
    script: Path, model_dir: Path, rows: Path, out: Path, *, timeout: float = _RUN_TIMEOUT_SECONDS
) -> None:
    """`script`'s `init()` then `run(<the CSV as a DataFrame>)`, written to `out` as CSV, in a fresh interpreter."""
    _run_self(["_run", "batch", str(script), str(model_dir), str(rows), str(out)], timeout, what=str(script))


def _run_self(arguments: list[str], timeout: float, *, what: str) -> None:
    command = [sys.executable, "-m", "model.scripts", *arguments]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=command_environment(), check=False
        )
    except subprocess.TimeoutExpired:
        raise ContractError(f"{what}: scoring ran past {timeout:g} s") from None
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ContractError(f"{what}: {tail}")


def load_script(script: Path, model_dir: Path | None = None, *, name: str | None = None) -> ModuleType:
    """Import a scoring script as a module of its own (`name`, else one derived from the paths) and call its
    `init()`, with AZUREML_MODEL_DIR=model_dir while both run; `model_dir=None` keeps the environment's own
    (Azure ML sets it where the script runs).

    The caller serialises calls: AZUREML_MODEL_DIR is process-wide while the script loads.

    Raises:
        NotImportableError: Python has no loader for the file.
        Exception: whatever the script's own code or its `init()` raises.
    """
    if name is None:
        where = f"{script.resolve()}|{model_dir.resolve() if model_dir else ''}"
        name = f"mlops_scoring_{hashlib.sha256(where.encode()).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise NotImportableError(f"{script}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    with _model_dir(model_dir):
        spec.loader.exec_module(module)
        module.init()
    return module


@contextlib.contextmanager
def _model_dir(model_dir: Path | None) -> Iterator[None]:
    if model_dir is None:
        yield
        return
    previous = os.environ.get("AZUREML_MODEL_DIR")
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("AZUREML_MODEL_DIR", None)
        else:
            os.environ["AZUREML_MODEL_DIR"] = previous


def _child_each(source: str, target: str, *pairs: str) -> None:
    """The child side of `score_each_locally`: each script's answer, or its error, in order."""
    body = Path(source).read_bytes().decode()
    results: list[dict[str, Any]] = []
    for pair in pairs:
        script, _, model_dir = pair.partition(_PAIR)
        try:
            results.append({"answer": load_script(Path(script), Path(model_dir)).run(body)})
        except Exception as exc:  # noqa: BLE001 - reported per script, by name
            results.append({"error": f"{type(exc).__name__}: {exc}"})
    Path(target).write_text(json.dumps(results))


def _child(mode: str, script: str, model_dir: str, source: str, target: str) -> None:
    """The child side of `batch_locally`."""
    if mode != "batch":
        raise ContractError(f"unknown scoring mode {mode!r}")
    module = load_script(Path(script), Path(model_dir))
    import pandas as pd

    scored = module.run(pd.read_csv(source))
    if not isinstance(scored, pd.DataFrame):
        raise ContractError(f"run(mini_batch) returned {type(scored).__name__}, not a DataFrame")
    scored.to_csv(target, index=False)


def main(argv: list[str] | None = None) -> int:
    """The child interpreter's side: `_run_each REQUEST ANSWERS SCRIPT<sep>MODEL_DIR...` or `_run batch ...`."""
    parser = argparse.ArgumentParser(prog="python -m model.scripts", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    child = commands.add_parser("_run")
    child.add_argument("arguments", nargs=5)
    each = commands.add_parser("_run_each")
    each.add_argument("arguments", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "_run_each":
            _child_each(*args.arguments)
        else:
            _child(*args.arguments)
    except Exception as exc:  # noqa: BLE001 - the parent reports the child's error line
        with contextlib.suppress(Exception):
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    # What is alive now is frozen out of the garbage collector, so the interpreter's collection at exit skips it:
    # with scikit-learn and pandas loaded that collection took ~0.7 s, and the parent (a deploy's smoke test, a
    # batch) waits for this process to end. Nothing is left to run or to free that the process's end does not.
    gc.freeze()
    sys.exit(code)

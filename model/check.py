"""`check-model`: the contract of a model package, run on a tiny sample; one `Check` per step, with its problem.

It reads the manifest and the scripts (a missing `init()` or `run()` is named without running anything),
writes the sample data, trains on its first rows, checks `metrics.json`, then scores the sample request and a
mini-batch in a fresh interpreter. Printing the results is the command line's (`mlops check-model`).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.errors import ParametersError
from model.package import (
    MANIFEST,
    METRICS_FILE,
    SCORE_COLUMN,
    ContractError,
    ModelPackage,
    complete_outputs,
    is_number,
    load_package,
    read_metrics,
    read_parameters,
)
from model.paths import command_environment
from model.scripts import batch_locally, score_locally

CHECK_ROWS = 120  # the tiny sample `check-model` trains on
_RUN_TIMEOUT_SECONDS = 600


@dataclass
class Check:
    name: str
    problem: str | None = None


def missing_functions(script: Path, functions: tuple[str, ...]) -> list[str]:
    """The module-level functions of `functions` that `script` does not define (read, not imported)."""
    try:
        tree = ast.parse(script.read_text(), filename=str(script))
    except SyntaxError as exc:
        raise ContractError(f"{script.name}: not valid Python (line {exc.lineno}: {exc.msg})") from None
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    return [name for name in functions if name not in defined]


def check_package(root: Path, work: Path) -> list[Check]:
    """Run the contract of the package at `root` on a tiny sample, under `work`; one Check per step."""
    checks: list[Check] = []
    try:
        package = load_package(root)
    except ContractError as exc:
        return [Check(MANIFEST, str(exc))]
    checks.append(Check(f"{MANIFEST}: {package.name}, registered as {package.model_name}"))
    contract = {
        package.score_script: ("init", "run"),
        package.batch_script: ("init", "run"),
    }
    for script, functions in contract.items():
        try:
            missing = missing_functions(script, functions)
        except ContractError as exc:
            checks.append(Check(script.name, str(exc)))
            continue
        what = "online" if script == package.score_script else "batch"
        problem = None
        if missing:
            names = ", ".join(f"{name}()" for name in missing)
            problem = f"{script.relative_to(package.root)} has no {names} (the {what} contract: init() loads the model, run() scores)"
        checks.append(Check(f"{script.relative_to(package.root)}: init() and run() ({what})", problem))
    if any(check.problem for check in checks):
        return checks
    checks += _run_contract(package, work)
    return checks


def _run_contract(package: ModelPackage, work: Path) -> list[Check]:
    """Run the package's contract end to end on a tiny sample: sample data, training, outputs, scoring.

    Long because: each check feeds the next (the sample trains the model the scoring checks load), and the
    checks read as the contract's own list, in order."""
    checks: list[Check] = []
    python, where = sys.executable, str(package.root)
    data = work / "data" / "sample.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    step = Check(f"sample data: {' '.join(package.sample_command)}")
    checks.append(step)
    step.problem = _run_command(
        package.command(package.sample_command, python=python, package=where, out=str(data)), work
    )
    if step.problem is None and not data.is_file():
        step.problem = "the sample command wrote no CSV at {out}"
    if step.problem:
        return checks
    import pandas as pd

    frame = pd.read_csv(data)
    absent = [name for name in (*package.features, package.target) if name not in frame.columns]
    if absent:
        step.problem = f"the sample CSV lacks column(s) {', '.join(absent)} named in [data]"
        return checks
    checks.append(_data_checks(package, frame))
    tiny = work / "data" / "tiny.csv"
    frame.head(CHECK_ROWS).to_csv(tiny, index=False)
    out = work / "out"
    step = Check(f"training on {min(len(frame), CHECK_ROWS)} rows: {' '.join(package.train_command)}")
    checks.append(step)
    try:
        parameters = read_parameters(package.parameters)
    except ParametersError as exc:
        step.problem = str(exc)
        return checks
    command = package.command(
        package.train_command,
        python=python,
        package=where,
        data=str(tiny),
        params=str(package.parameters),
        out=str(out),
    )
    out.mkdir()
    step.problem = _run_command(command, work)
    if step.problem is None:
        try:
            complete_outputs(package, out, data=tiny, parameters=parameters)
            metrics = read_metrics(out / METRICS_FILE, package.metric)
            step.name += f" → {package.metric}={metrics[package.metric]:.6g} ({package.direction})"
        except ContractError as exc:
            step.problem = str(exc)
    if step.problem:
        return checks
    step = Check(f"{package.score_script.name}: the sample request {package.sample_request.name}")
    checks.append(step)
    try:
        answer = score_locally(package.score_script, out, package.sample_request_body())
        rows = json.loads(package.sample_request_body()).get("data", [])
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, list) or not all(is_number(v) for v in result) or len(result) != len(rows):
            step.problem = f'run() returned {json.dumps(answer)[:200]}; expected {{"result": [{len(rows)} numbers]}}'
        else:
            step.name += f" → {json.dumps(result)[:120]}"
    except (ContractError, ValueError, AttributeError) as exc:
        step.problem = str(exc)
    step = Check(f"{package.batch_script.name}: a mini-batch of 5 rows")
    checks.append(step)
    batch_in, batch_out = work / "data" / "batch.csv", work / "batch-out.csv"
    frame.head(5).drop(columns=[package.target]).to_csv(batch_in, index=False)
    try:
        batch_locally(package.batch_script, out, batch_in, batch_out)
        scored = pd.read_csv(batch_out)
        if SCORE_COLUMN not in scored.columns or len(scored) != 5:
            step.problem = f"run(mini_batch) returned {len(scored)} rows and columns {list(scored.columns)}; expected 5 rows with a {SCORE_COLUMN!r} column"
    except ContractError as exc:
        step.problem = str(exc)
    return checks


def _run_command(command: list[str], cwd: Path) -> str | None:
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_RUN_TIMEOUT_SECONDS,
            env=command_environment(),
            check=False,
        )
    except FileNotFoundError:
        return f"{command[0]}: no such program (is it installed?)"
    except subprocess.TimeoutExpired:
        return f"ran past {_RUN_TIMEOUT_SECONDS} s"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        return f"exit {result.returncode}: " + ((errors or lines or ["(no output)"])[-1])
    return None


def _data_checks(package: ModelPackage, frame: Any) -> Check:
    """The sample data against the package's `[data.checks]` (pandera): a package whose own sample fails them could
    never train."""
    step = Check("sample data passes [data.checks]")
    if not package.schema.declared:
        step.name = "sample data: no [data.checks] declared (`mlops model init` writes a starting set)"
        return step
    from model.validation import check_frame  # pandera: only when a check runs

    report = check_frame(frame, package.schema, (*package.features, package.target), source="the sample data")
    step.problem = None if report.passed else report.message()
    return step

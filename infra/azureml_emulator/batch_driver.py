"""The emulator's batch driver: what Azure ML's parallel run does for a model batch deployment.

The job runner runs it as the command of a batch job's step (its child job), in the deployment's code folder:

    python -m infra.azureml_emulator.batch_driver --script model/azureml_batch.py --input DIR --model DIR
        --output DIR --output-action append_row --output-file predictions.csv --mini-batch-size 1
        --max-concurrency 2 --error-threshold 0 --max-retries 3 --timeout 300

It imports the scoring script, calls `init()` once (with `AZUREML_MODEL_DIR`, and
`AZUREML_BI_OUTPUT_PATH` = the output folder, where a script may write files of its own: Microsoft
Learn, "Customize outputs in model batch deployments"), then `run(files)` for each mini-batch of
`--mini-batch-size` input files, `--max-concurrency` at a time. A mini-batch that raises (or runs
past `--timeout` seconds) is tried again up to `--max-retries` times; one that still fails is
reported in the job's `logs/user/error.txt` and on a line of the job's output:

    mini-batch 3 [part-000003.csv] failed after 4 attempt(s): <the error>

With `append_row`, each successful mini-batch's result is appended to `--output-file` in the order
mini-batches finish, as Azure ML writes it: a DataFrame's rows space-separated, with no header and no
index (Microsoft Learn, "Image processing with batch model deployments", reads the file with
`sep=' ', header=None`; "Use MLflow models in batch deployments" warns it is not a regular CSV), a
list's items one per line as they are. Azure does not document how it quotes a value holding a
space; the emulator leaves that to pandas. More failed mini-batches than `--error-threshold`
(-1: no limit) fail the job; `logs/job_result.txt` says how many succeeded.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import os
import sys
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

JOB_LOGS_VARIABLE = "MLOPS_EMULATOR_JOB_LOGS"  # set by the emulator's job runner: the job's logs/ folder


def _load(script: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("azureml_batch_scoring_script", script)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: cannot import the scoring script {script}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for function in ("init", "run"):
        if not callable(getattr(module, function, None)):
            raise SystemExit(f"error: the scoring script {script} has no {function}() function")
    return module


def _lines(result: Any) -> str:
    if hasattr(result, "to_csv"):
        return str(result.to_csv(sep=" ", header=False, index=False, lineterminator="\n"))
    if isinstance(result, list | tuple):
        return "".join(f"{item}\n" for item in result)
    raise TypeError(f"run() returned {type(result).__name__}; append_row needs a DataFrame or a list")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.azureml_emulator.batch_driver")
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--output-action", choices=["appendrow", "append_row", "summaryonly", "summary_only"])
    parser.add_argument("--output-file", default="predictions.csv")
    parser.add_argument("--mini-batch-size", type=int, default=10)
    parser.add_argument("--max-concurrency", type=int, default=1)
    parser.add_argument("--error-threshold", type=int, default=-1)
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args(argv)

    os.environ["AZUREML_MODEL_DIR"] = str(args.model)
    os.environ["AZUREML_BI_OUTPUT_PATH"] = str(args.output)
    logs = Path(os.environ.get(JOB_LOGS_VARIABLE) or "logs")
    args.output.mkdir(parents=True, exist_ok=True)
    module = _load(args.script)
    module.init()
    files = sorted(str(p) for p in args.input.rglob("*") if p.is_file())
    if not files:
        print(f"error: the input folder {args.input} holds no files", flush=True)  # noqa: T201 - the job's log
        return 1
    size = max(1, args.mini_batch_size)
    batches = [files[i : i + size] for i in range(0, len(files), size)]
    append = (args.output_action or "append_row").replace("_", "") == "appendrow"
    output = (args.output / args.output_file).open("w") if append else None
    lock = threading.Lock()
    failed: list[int] = []

    def attempt(batch: list[str]) -> Any:
        single = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            return single.submit(module.run, batch).result(timeout=args.timeout)
        finally:
            single.shutdown(wait=False)  # a mini-batch past its timeout is abandoned, not waited for

    def process(index: int, batch: list[str]) -> None:
        error = ""
        for _ in range(args.max_retries + 1):
            try:
                result = attempt(batch)
                text = _lines(result) if append else ""
            except concurrent.futures.TimeoutError:
                error = f"ran past the {args.timeout:g} s mini-batch timeout"
            except Exception as exc:  # noqa: BLE001 - a mini-batch's failure is reported, not fatal
                error = f"{type(exc).__name__}: {exc}"
            else:
                with lock:
                    if output is not None:
                        output.write(text)
                return
        names = ", ".join(Path(f).name for f in batch)
        record = f"mini-batch {index} [{names}] failed after {args.max_retries + 1} attempt(s): {error}"
        with lock:
            failed.append(index)
            print(record, flush=True)  # noqa: T201
            (logs / "user").mkdir(parents=True, exist_ok=True)
            with (logs / "user" / "error.txt").open("a") as errors:
                errors.write(record + "\n")

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.max_concurrency)) as pool:
            for future in [pool.submit(process, i, b) for i, b in enumerate(batches)]:
                future.result()
    except Exception:  # noqa: BLE001 - a driver bug fails the job with its traceback in the log
        traceback.print_exc()
        return 1
    finally:
        if output is not None:
            output.close()
    summary = f"{len(batches)} mini-batch(es): {len(batches) - len(failed)} succeeded, {len(failed)} failed"
    print(summary, flush=True)  # noqa: T201
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "job_result.txt").write_text(summary + "\n")
    if args.error_threshold >= 0 and len(failed) > args.error_threshold:
        print(  # noqa: T201
            f"error: {len(failed)} mini-batch(es) failed, over the deployment's error_threshold of {args.error_threshold}",
            flush=True,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

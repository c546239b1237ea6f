"""The emulator's batch driver: what Azure ML's parallel run does for a model batch deployment.

The job runner runs it as the command of a batch job's step (its child job), in the deployment's code folder:

    python -m azureml_emulator.batch_driver --script model/azureml_batch.py --input DIR --model DIR
        --output DIR --output-action append_row --output-file predictions.csv --mini-batch-size 1
        --max-concurrency 2 --nodes 1 --error-threshold 0 --max-retries 3 --timeout 300

The input folder's files are cut into mini-batches of `--mini-batch-size` files, one shared queue of
them. `--nodes` worker nodes take mini-batches from that queue, each with `--max-concurrency` slots:
the deployment's `resources.instanceCount` and `maxConcurrencyPerInstance` (azure-ai-ml 1.35
`entities/_deployment/batch_deployment.py`: `instance_count`, "Number of instances the interfering
will run on. Equivalent to resources.instance_count", sent as `resources.instanceCount` by the REST
model's `ResourceConfiguration`; `max_concurrency_per_instance`, "maximum number of parallelism per
instance"). A node imports the scoring script and calls its `init()` once (with `AZUREML_MODEL_DIR`,
and `AZUREML_BI_OUTPUT_PATH` = the output folder, where a script may write files of its own:
Microsoft Learn, "Customize outputs in model batch deployments"), then `run(files)` for each
mini-batch it takes. One node runs in this process, as it always did (no start-up cost); with more,
each node is a process of its own, started fresh (`spawn`: it shares nothing with the others, like a
machine), and this process is the master that hands out the queue and collects what the nodes
return (Microsoft Learn, "Troubleshoot batch endpoints": a master node, the orchestrator, creates the
tasks and follows their progress; worker nodes run the scoring script).

A mini-batch that raises (or runs past `--timeout` seconds) is tried again up to `--max-retries`
times, on the node that took it; one that still fails is reported in the job's `logs/user/error.txt`
(Microsoft Learn, "Troubleshoot batch endpoints": the file sums up the errors of the script) and on
a line of the job's output, whichever node ran it:

    mini-batch 3 [part-000003.csv] failed after 4 attempt(s): <the error>

With `append_row`, each successful mini-batch's result is appended to `--output-file` in the order
mini-batches finish, as Azure ML writes it: a DataFrame's rows space-separated, with no header and no
index (Microsoft Learn, "Image processing with batch model deployments", reads the file with
`sep=' ', header=None`; "Use MLflow models in batch deployments" warns it is not a regular CSV), a
list's items one per line as they are. Azure does not document how it quotes a value holding a
space; the emulator leaves that to pandas. More failed mini-batches than `--error-threshold`
(-1: no limit) fail the job; `logs/job_result.txt` says how many succeeded.

Each node logs what it did to `logs/sys/node/<node>/process000.txt`: "Troubleshoot batch endpoints"
keeps one log per worker process under `logs/sys/node/<ip_address>/<process_name>.txt`, with the
process's IP address and PID and, per mini-batch, its items, how many succeeded and failed, its start
time and duration (the emulator's lines carry their own time, a mini-batch's end, and its duration).
The emulator's nodes share one address, so its folders are the nodes' ranks (0, 1, ...); each node is
one process (its slots are threads), so each has one file, named as Azure likely names a node's first
process.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

JOB_LOGS_VARIABLE = "MLOPS_EMULATOR_JOB_LOGS"  # set by the emulator's job runner: the job's logs/ folder
NODE_LOG = "process000.txt"  # under logs/sys/node/<node>/

Task = tuple[int, list[str]]  # a mini-batch: its index and its files


@dataclass(frozen=True)
class Job:
    """What every node needs to know (sent to each node process, so plain values only)."""

    script: Path
    output: Path
    logs: Path
    append: bool
    slots: int
    max_retries: int
    timeout: float


@dataclass(frozen=True)
class Outcome:
    """A mini-batch's end: the lines to append (`append_row`), or the record of its failure."""

    index: int
    text: str = ""
    failure: str = ""


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


class NodeLog:
    """`logs/sys/node/<node>/process000.txt`: a line for init() and one per mini-batch, with this process's PID."""

    def __init__(self, logs: Path, node: int) -> None:
        folder = logs / "sys" / "node" / str(node)
        folder.mkdir(parents=True, exist_ok=True)
        self._file = (folder / NODE_LOG).open("a", buffering=1)
        self._lock = threading.Lock()
        self._who = f"node {node} pid {os.getpid()}"

    def write(self, event: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self._lock:
            self._file.write(f"{stamp} {self._who} {threading.current_thread().name}: {event}\n")


def _score(job: Job, module: ModuleType, log: NodeLog, index: int, batch: list[str]) -> Outcome:
    """Run one mini-batch, retried up to `max_retries` times; its outcome."""
    names = ", ".join(Path(f).name for f in batch)
    error = ""
    for attempt in range(1, job.max_retries + 2):
        started = time.monotonic()
        single = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            result = single.submit(module.run, batch).result(timeout=job.timeout)
            text = _lines(result) if job.append else ""
        except concurrent.futures.TimeoutError:
            error = f"ran past the {job.timeout:g} s mini-batch timeout"
        except Exception as exc:  # noqa: BLE001 - a mini-batch's failure is reported, not fatal
            error = f"{type(exc).__name__}: {exc}"
        else:
            log.write(
                f"mini-batch {index} [{names}]: {len(batch)} item(s), {len(batch)} succeeded, 0 failed, "
                f"{time.monotonic() - started:.3f} s (attempt {attempt})"
            )
            return Outcome(index, text=text)
        finally:
            single.shutdown(wait=False)  # a mini-batch past its timeout is abandoned, not waited for
        log.write(f"mini-batch {index} [{names}]: attempt {attempt} failed after {time.monotonic() - started:.3f} s")
    log.write(f"mini-batch {index} [{names}]: {len(batch)} item(s), 0 succeeded, {len(batch)} failed")
    return Outcome(
        index, failure=f"mini-batch {index} [{names}] failed after {job.max_retries + 1} attempt(s): {error}"
    )


def run_node(job: Job, node: int, take: Callable[[], Task | None], report: Callable[[Outcome], None]) -> None:
    """One node: the scoring script's init() once, then `job.slots` threads each taking mini-batches until
    `take()` answers None, and reporting each one's outcome. A driver bug in a slot raises here."""
    log = NodeLog(job.logs, node)
    module = _load(job.script)
    started = time.monotonic()
    module.init()
    log.write(f"init() done in {time.monotonic() - started:.3f} s; {job.slots} slot(s)")

    def slot() -> None:
        while (task := take()) is not None:
            report(_score(job, module, log, *task))

    with concurrent.futures.ThreadPoolExecutor(max_workers=job.slots, thread_name_prefix=f"node{node}-slot") as pool:
        for future in [pool.submit(slot) for _ in range(job.slots)]:
            future.result()


def _node_process(job: Job, node: int, tasks: Any, outcomes: Any) -> None:
    """A node of its own (a process): the shared queue of mini-batches in, outcomes out."""
    try:
        run_node(job, node, tasks.get, outcomes.put)
    except BaseException:  # noqa: BLE001 - init(), a bad script (SystemExit) or a driver bug: the node fails
        traceback.print_exc()
        sys.stderr.write(f"error: node {node} failed (above)\n")
        code = 1
    else:
        code = 0
    outcomes.close()
    outcomes.join_thread()  # every outcome sent before the process ends
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # not waiting for a mini-batch abandoned past its timeout


class Results:
    """Where outcomes land (in this process, whichever node ran the mini-batch): `append_row` lines in the
    output file, failures on the job's output and in `logs/user/error.txt`."""

    def __init__(self, logs: Path, output: TextIO | None) -> None:
        self.logs = logs
        self.output = output
        self.failed: list[int] = []
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, outcome: Outcome) -> None:
        with self._lock:
            self.count += 1
            if not outcome.failure:
                if self.output is not None:
                    self.output.write(outcome.text)
                return
            self.failed.append(outcome.index)
            print(outcome.failure, flush=True)  # noqa: T201 - the job's log
            (self.logs / "user").mkdir(parents=True, exist_ok=True)
            with (self.logs / "user" / "error.txt").open("a") as errors:
                errors.write(outcome.failure + "\n")


def _one_node(job: Job, batches: list[list[str]], results: Results) -> None:
    """The node in this process: its slots take from a queue of every mini-batch."""
    tasks: queue.SimpleQueue[Task] = queue.SimpleQueue()
    for task in enumerate(batches):
        tasks.put(task)

    def take() -> Task | None:
        try:
            return tasks.get_nowait()
        except queue.Empty:
            return None

    run_node(job, 0, take, results)


def _many_nodes(job: Job, batches: list[list[str]], nodes: int, results: Results) -> str:
    """`nodes` node processes sharing one queue of mini-batches; what went wrong with them ("" if nothing)."""
    context = multiprocessing.get_context("spawn")
    tasks: Any = context.Queue()
    outcomes: Any = context.Queue()
    for task in enumerate(batches):
        tasks.put(task)
    for _ in range(nodes * job.slots):
        tasks.put(None)  # one "no more" for each slot of each node
    processes = [
        context.Process(target=_node_process, args=(job, node, tasks, outcomes), name=f"node-{node}")
        for node in range(nodes)
    ]
    for process in processes:
        process.start()
    try:
        while results.count < len(batches):
            try:
                results(outcomes.get(timeout=0.2))
            except queue.Empty:
                if not any(process.is_alive() for process in processes) and outcomes.empty():
                    break  # every node ended; what they sent has been read
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    failed = [f"node {n} exited with code {p.exitcode}" for n, p in enumerate(processes) if p.exitcode]
    if failed:
        return "; ".join(failed)
    if results.count < len(batches):
        return f"the nodes ended with {len(batches) - results.count} mini-batch(es) never scored"
    return ""


def main(argv: list[str] | None = None) -> int:
    """The batch job's command, as Azure ML's parallel run step takes it.

    Long because: the arguments mirror the batch deployment's settings one for one, and the run is one sequence
    (environment, mini-batches, retries, error threshold, output) that reads best in one place."""
    parser = argparse.ArgumentParser(prog="python -m azureml_emulator.batch_driver")
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--output-action", choices=["appendrow", "append_row", "summaryonly", "summary_only"])
    parser.add_argument("--output-file", default="predictions.csv")
    parser.add_argument("--mini-batch-size", type=int, default=10)
    parser.add_argument("--max-concurrency", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--error-threshold", type=int, default=-1)
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args(argv)

    os.environ["AZUREML_MODEL_DIR"] = str(args.model)
    os.environ["AZUREML_BI_OUTPUT_PATH"] = str(args.output)
    logs = Path(os.environ.get(JOB_LOGS_VARIABLE) or "logs").resolve()
    args.output.mkdir(parents=True, exist_ok=True)
    files = sorted(str(p) for p in args.input.rglob("*") if p.is_file())
    if not files:
        print(f"error: the input folder {args.input} holds no files", flush=True)  # noqa: T201 - the job's log
        return 1
    size = max(1, args.mini_batch_size)
    batches = [files[i : i + size] for i in range(0, len(files), size)]
    append = (args.output_action or "append_row").replace("_", "") == "appendrow"
    job = Job(
        script=args.script.resolve(),
        output=args.output,
        logs=logs,
        append=append,
        slots=max(1, args.max_concurrency),
        max_retries=args.max_retries,
        timeout=args.timeout,
    )
    output = (args.output / args.output_file).open("w") if append else None
    results = Results(logs, output)
    try:
        if args.nodes <= 1:
            _one_node(job, batches, results)
        else:
            problem = _many_nodes(job, batches, args.nodes, results)
            if problem:
                print(f"error: {problem}", flush=True)  # noqa: T201
                return 1
    except Exception:  # noqa: BLE001 - a driver bug fails the job with its traceback in the log
        traceback.print_exc()
        return 1
    finally:
        if output is not None:
            output.close()
    failed = results.failed
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

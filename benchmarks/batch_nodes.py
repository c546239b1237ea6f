"""Batch job nodes benchmark: the emulator's batch driver on one node against two, on the same input (issue 22).

The driver runs as the emulator's job runner runs a batch job's step: `python -m
azureml_emulator.batch_driver` in the checkout (the code folder), our entry script
`model/azureml_batch.py` running the diabetes package's `batch_score.py` with a model trained for
the run, one file per mini-batch (`--mini-batch-size 1`), `append_row` to `predictions.csv`. The
input is diabetes rows resampled with noise (as `batch.py` makes them), cut into equal part files.
Each measurement is one driver process, timed from its start to its exit: interpreter start,
imports, each node's `init()`, scoring, writing. Its `predictions.csv` must hold every row.

Modes: one node with one slot; two nodes with one slot each (`resources.instanceCount: 2`); and, to
show why nodes are processes, one node with two slots (threads: `max_concurrency_per_instance: 2`).
The scoring is CPU-bound and mostly holds Python's GIL (reading a part, predicting, then formatting
each row as a line in Python), so threads share one core and processes can use two. Runs are
interleaved; the table shows medians. Beside each wall time, the CPU time (user + system) of the
driver and its nodes, and their ratio: how many cores the run kept busy (at most 2 here; less when
other work shares the machine, which the load average before and after the run tells).

    .venv/bin/python benchmarks/batch_nodes.py [--rows 800000] [--parts 16] [--reps 3]
        [--out benchmarks/results/batch_nodes.md]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import batch
import history

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.5  # two nodes at least 1.5x one node's throughput (this machine has 2 cores: 2x is the ceiling)
MODES = {  # name: (nodes, slots per node)
    "1 node x 1 slot": (1, 1),
    "2 nodes x 1 slot": (2, 1),
    "1 node x 2 slots (threads)": (1, 2),
}


def cut(source: Path, folder: Path, parts: int) -> int:
    """`source` as `parts` CSV files of equal rows, each with the header (`part-000000.csv`, ...); the rows."""
    header, *rows = source.read_text().splitlines(keepends=True)
    folder.mkdir(parents=True)
    size = -(-len(rows) // parts)
    for index in range(parts):
        (folder / f"part-{index:06d}.csv").write_text(header + "".join(rows[index * size : (index + 1) * size]))
    return len(rows)


def driver(
    inputs: Path, model: Path, work: Path, nodes: int, slots: int, rows: int
) -> Callable[[], tuple[float, float]]:
    """One batch job step's driver, as the emulator's runner starts it; its wall time and CPU time."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "MLOPS_"))},
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "MLOPS_BATCH_SCRIPT": "models/diabetes/batch_score.py",
        "MLOPS_EMULATOR_JOB_LOGS": str(work / "logs"),
    }
    output = work / "score"
    command = [
        sys.executable, "-m", "azureml_emulator.batch_driver", "--script", "model/azureml_batch.py",
        "--input", str(inputs), "--model", str(model), "--output", str(output), "--output-action", "append_row",
        "--output-file", "predictions.csv", "--mini-batch-size", "1", "--max-concurrency", str(slots),
        "--nodes", str(nodes), "--error-threshold", "0", "--max-retries", "0", "--timeout", "600",
    ]  # fmt: skip

    def measure() -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the driver and the nodes it waited for
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        if done.returncode != 0:
            raise SystemExit(f"the driver failed ({nodes} node(s)):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        with (output / "predictions.csv").open("rb") as scored:
            written = sum(1 for _ in scored)
        if written != rows:
            raise SystemExit(f"{nodes} node(s) wrote {written:,} rows of {rows:,}")
        return elapsed, cpu

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=800_000)
    parser.add_argument("--parts", type=int, default=16, help="mini-batches (one part file each)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "batch_nodes.md")
    args = parser.parse_args()
    history.unwind_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as scratch:
        work = Path(scratch)
        os.environ.update({"MLOPS_HOME": str(work / "home"), "MLOPS_ENV_FILE": ""})
        source = work / "batch.csv"
        batch.make_input(source, args.rows)
        rows = cut(source, work / "inputs", args.parts)
        print(f"input: {rows:,} rows in {args.parts} part files", file=sys.stderr)
        model = batch.train_model().parent
        modes = {
            name: driver(work / "inputs", model, work / name.replace(" ", "-"), nodes, slots, rows)
            for name, (nodes, slots) in MODES.items()
        }
        next(iter(modes.values()))()  # warm-up: the page cache, compiled imports
        load = os.getloadavg()[0]
        times: dict[str, list[float]] = {name: [] for name in modes}
        cpu: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(args.reps):
            for name, measure in modes.items():
                wall, used = measure()
                times[name].append(wall)
                cpu[name].append(used)
                print(f"{name}: {wall:.2f} s, CPU {used:.2f} s", file=sys.stderr)
    one, two = (statistics.median(times[name]) for name in list(MODES)[:2])
    loads = (load, os.getloadavg()[0])
    report = _report(times, cpu, rows, args.parts, args.reps, loads)
    figures = {
        "1 node": f"{one:.2f} s",
        "2 nodes": f"{two:.2f} s",
        "speed-up": f"{one / two:.2f}x",
        "load average": f"{loads[0]:.2f}/{loads[1]:.2f}",
    }
    history.write(args.out, report, args.reps, figures, [(f"2 nodes ≥ {GOAL:g}x one node", one / two >= GOAL)])
    print(report)


def _report(
    times: dict[str, list[float]],
    cpu: dict[str, list[float]],
    rows: int,
    parts: int,
    reps: int,
    load: tuple[float, float],
) -> str:
    reference = statistics.median(next(iter(times.values())))
    lines = [
        f"The emulator's batch driver on {rows:,} rows x 10 features in {parts} mini-batches, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, median of {reps}, {os.cpu_count()} CPU(s), "
        f"load average {load[0]:.2f} before the runs and {load[1]:.2f} after.",
        "",
        "| mode | wall s (median) | min-max s | rows/s | CPU s (median) | cores busy | speed-up vs 1 node |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in times.items():
        median, used = statistics.median(runs), statistics.median(cpu[name])
        lines.append(
            f"| {name} | {median:.2f} | {min(runs):.2f}-{max(runs):.2f} | {rows / median:,.0f} | {used:.2f} | "
            f"{used / median:.2f} | {reference / median:.2f}x |"
        )
    two = statistics.median(times[list(times)[1]])
    verdict = "met" if reference / two >= GOAL else "NOT met"
    lines += ["", f"- {verdict}: two nodes score {reference / two:.2f}x as fast as one (goal ≥ {GOAL:g}x)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

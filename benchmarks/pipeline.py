"""End-to-end pipeline benchmark: `mlops run` (train, register, package, deploy, smoke test, batch score) timed as a user runs it.

Every measurement is a fresh `mlops run` process, timed from its start to its exit, in five ways:

- cold: an empty workspace and an empty Prefect home, no server (`make run` on a fresh clone,
  after `make install`): Prefect starts a temporary server and creates its database;
- temporary server: an empty workspace, Prefect's home already has its database (`make run` in a
  new workspace);
- temporary server, unchanged re-run: the same command again (`make run` twice);
- running server: an empty workspace, `PREFECT_API_URL` pointing at a `prefect server start`
  this script started (as under `mlops up` or in CI);
- running server, unchanged re-run.

The re-runs must train, register and redeploy nothing (the script checks the summary says so).
Beside them, in the same run, the anchors that bound what is possible: the training command
alone (`python -m model.train`, no Prefect) and an empty Prefect flow in a fresh process, with a
temporary server and against the running one. Runs are interleaved; the table shows medians.

    .venv/bin/python benchmarks/pipeline.py [--reps 3] [--out benchmarks/results/pipeline.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prefect_server import free_port, running_server

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EMPTY_FLOW = "from prefect import flow\n\n@flow\ndef empty():\n    pass\n\nempty()\n"


def base_env(prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLOPS_"))}
    return {
        **env,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "MLOPS_ENV_FILE": "",
    }


def timed(command: list[str], env: dict[str, str], expect: str | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    if expect is not None and expect not in result.stdout:
        raise SystemExit(f"{' '.join(command)}: expected {expect!r} in its summary:\n{result.stdout[-3000:]}")
    return elapsed


class Workspace:
    """One workspace (MLOPS_HOME) and Prefect home, with its endpoint on a port of its own."""

    def __init__(self, root: Path, prefect_home: Path, api_url: str | None) -> None:
        self.root = root
        prefect_home.mkdir(parents=True, exist_ok=True)  # Prefect creates its home, not the folders above it
        self.env = base_env(prefect_home)
        self.env.update({"MLOPS_HOME": str(root / "home"), "MLOPS_ENDPOINT_PORT": str(free_port())})
        if api_url:
            self.env["PREFECT_API_URL"] = api_url

    def run(self, expect: str | None = None) -> float:
        return timed([str(BIN / "mlops"), "run"], self.env, expect)

    def close(self) -> None:
        subprocess.run([str(BIN / "mlops"), "endpoint", "stop"], env=self.env, capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


UNCHANGED = "training: served from the cache (nothing changed)"
MODES = {
    "cold": "`mlops run`, cold: empty workspace and Prefect home, temporary server (first `make run`)",
    "temp": "`mlops run`, temporary server, new workspace",
    "temp-rerun": "`mlops run`, temporary server, unchanged re-run (`make run` twice)",
    "server": "`mlops run` against a running server, new workspace",
    "server-rerun": "`mlops run` against a running server, unchanged re-run",
    "train": "anchor: `python -m model.train` alone (no Prefect)",
    "empty-temp": "anchor: empty Prefect flow, fresh process, temporary server",
    "empty-server": "anchor: empty Prefect flow, fresh process, running server",
}


def one_round(work: Path, api_url: str, warm_home: Path, times: dict[str, list[float]], index: int) -> None:
    record = lambda mode, seconds: (times[mode].append(seconds), print(f"{mode}: {seconds:.1f} s", file=sys.stderr))  # noqa: E731

    cold = Workspace(work / f"cold-{index}", work / f"cold-{index}" / "prefect", None)
    record("cold", cold.run())
    cold.close()

    temp = Workspace(work / f"temp-{index}", warm_home, None)
    record("temp", temp.run())
    record("temp-rerun", temp.run(UNCHANGED))
    temp.close()

    server = Workspace(work / f"server-{index}", work / f"server-{index}" / "prefect", api_url)
    record("server", server.run())
    record("server-rerun", server.run(UNCHANGED))
    server.close()

    train_out = work / f"train-{index}"
    data = ROOT / "model" / "parameters.json"
    record(
        "train",
        timed(
            [
                sys.executable,
                "-m",
                "model.train",
                "--data",
                str(work / "diabetes.csv"),
                "--params",
                str(data),
                "--out",
                str(train_out),
            ],
            base_env(warm_home),
        ),
    )
    shutil.rmtree(train_out, ignore_errors=True)
    record("empty-temp", timed([sys.executable, "-c", EMPTY_FLOW], base_env(warm_home)))
    record(
        "empty-server", timed([sys.executable, "-c", EMPTY_FLOW], {**base_env(warm_home), "PREFECT_API_URL": api_url})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline.md")
    args = parser.parse_args()
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        work = Path(scratch)
        sys.path.insert(0, str(ROOT))
        from model.data import write_sample_csv

        write_sample_csv(work / "diabetes.csv")
        warm_home = work / "warm-prefect"
        with running_server(work, base_env(work / "server-home")) as api_url:
            # warm-up: the warm Prefect home gets its database, the server its first flow run, the OS its page cache
            warm = Workspace(work / "warm-up", warm_home, None)
            warm.run()
            warm.close()
            timed([sys.executable, "-c", EMPTY_FLOW], {**base_env(warm_home), "PREFECT_API_URL": api_url})
            for index in range(args.reps):
                one_round(work, api_url, warm_home, times, index)
    report = _report(times, args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")
    print(report)


def _report(times: dict[str, list[float]], reps: int) -> str:
    medians = {mode: statistics.median(runs) for mode, runs in times.items()}
    lines = [
        f"End-to-end `mlops run` (train, register, package, deploy, smoke test, batch score of 442 rows), "
        f"{time.strftime('%Y-%m-%d %H:%M')}, median of {reps}, each a fresh process.",
        "",
        "| what | wall s (median) | min-max s |",
        "|---|---:|---:|",
    ]
    for mode, description in MODES.items():
        runs = times[mode]
        lines.append(f"| {description} | {medians[mode]:.1f} | {min(runs):.1f}-{max(runs):.1f} |")
    lines += [
        "",
        f"- A running server saves {medians['temp'] - medians['server']:.1f} s per run over a temporary one "
        f"(the empty flow: {medians['empty-temp'] - medians['empty-server']:.1f} s).",
        f"- An unchanged re-run against a running server takes {medians['server-rerun'] / medians['server']:.2f}x "
        "a run that trains, registers and deploys.",
        f"- Against a running server, the pipeline costs {medians['server'] - medians['empty-server']:.1f} s more than an "
        f"empty flow; training itself is {medians['train']:.1f} s of it.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

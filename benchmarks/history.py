"""Each benchmark's results file: the latest run's report, then the history of every run (one row each).

A row holds the date, the commit measured (`+changes` when the checkout had uncommitted changes), the
repetitions, the run's key figures and its goal verdicts, so a regression shows as a row that differs
from the ones above it. The rows are kept from the file's previous `## History` section; a file without
one starts its history with this run. (And `unwind_on_sigterm`, which every benchmark calls first.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

HEADING = "## History"
COLUMNS = "| date | commit | reps | figures | goals |"


def commit() -> str:
    """The checkout's commit, `+changes` when files differ from it; `unknown` outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if dirty else head


def previous_rows(path: Path) -> list[str]:
    """The history rows already in `path` (none when it has no history yet)."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    if HEADING not in lines:
        return []
    rows = lines[lines.index(HEADING) + 1 :]
    return [row for row in rows if row.startswith("| ") and row != COLUMNS and not row.startswith("|---")]


def write(path: Path, report: str, reps: int, figures: dict[str, str], verdicts: list[tuple[str, bool]]) -> None:
    """`report`, then the history with this run's row added at the end."""
    goals = "; ".join(f"{'met' if ok else 'NOT met'}: {name}" for name, ok in verdicts) or "none"
    shown = "; ".join(f"{name} {value}" for name, value in figures.items())
    row = f"| {time.strftime('%Y-%m-%d %H:%M')} | {commit()} | {reps} | {shown} | {goals} |"
    rows = [*previous_rows(path), row]
    history = [
        "",
        HEADING,
        "",
        "Every run of this benchmark, oldest first (`make bench` runs each with fewer repetitions).",
        "",
        COLUMNS,
        "|---|---|---:|---|---|",
        *rows,
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.rstrip("\n") + "\n" + "\n".join(history) + "\n")


def unwind_on_sigterm() -> None:
    """A benchmark stopped by SIGTERM (a kill, CI's timeout) unwinds as from an exception: every server it started
    is stopped and its scratch folder removed, instead of left running."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))

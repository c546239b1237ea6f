"""`infra/services/deathsig.py`: a command that dies with the process that started it, with no window in which a
`kill -9` of that process leaves it running (the cause of an orphaned temporary Prefect server found under
parallel runs: tests/e2e/test_no_orphans.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.services import deathsig


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_command_runs_in_the_same_process_and_dies_with_its_parent(tmp_path: Path) -> None:
    # a parent that starts `sleep` through deathsig, says the child's pid, and waits
    parent_code = (
        "import subprocess, sys\n"
        "from infra.services import deathsig\n"
        "child = subprocess.Popen(deathsig.command(['sleep', '60']))\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3]
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}/comm").read_text().strip() != "sleep":  # exec'd: the same pid is now `sleep`
        assert time.monotonic() < deadline, Path(f"/proc/{child}/cmdline").read_bytes()
        time.sleep(0.02)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    alive = _alive(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the child outlived its parent's kill -9"


def test_a_child_whose_parent_is_already_gone_never_runs_the_command(tmp_path: Path) -> None:
    """The window `setpriv --pdeathsig` leaves: the parent died between the fork and the prctl. Here the
    parent the child is told of is not its parent, as it would be after that death (reparented)."""
    marker = tmp_path / "ran"
    not_the_parent = os.getppid()  # a live process, but not the child's parent (this process is)
    code = subprocess.call(deathsig.command(["touch", str(marker)], parent=not_the_parent))
    assert code == 125
    assert not marker.exists()


def test_with_its_parent_alive_the_command_runs_and_its_exit_code_is_kept(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    assert subprocess.call(deathsig.command(["touch", str(marker)])) == 0
    assert marker.exists()
    assert subprocess.call(deathsig.command(["sh", "-c", "exit 7"])) == 7


def test_a_missing_program_is_named_with_exit_127() -> None:
    answer = subprocess.run(deathsig.command(["no-such-program-here"]), capture_output=True, text=True, check=False)
    assert answer.returncode == 127
    assert "no-such-program-here" in answer.stderr

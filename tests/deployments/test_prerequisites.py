"""`make test` checks the system packages it needs first and names what is missing in one line, exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from infra.settings import checkout_root

SCRIPT = checkout_root() / "deployments" / "prerequisites.sh"


def _check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env={**os.environ, **env}, timeout=30, check=False
    )


def test_this_machine_has_everything() -> None:
    assert _check().stdout == ""


def test_missing_packages_are_named_with_the_command_that_installs_them(tmp_path: Path) -> None:
    result = _check(
        CHROMIUM=str(tmp_path / "chromium"),
        MLOPS_POSTGRES_BIN=str(tmp_path),
        RSCRIPT=str(tmp_path / "Rscript"),
        WRK=str(tmp_path / "wrk"),
        LIBGOMP=str(tmp_path / "libgomp.so.1"),
    )
    [line] = result.stdout.splitlines()
    assert line == (
        "missing system packages for the tests: chromium postgresql r-base-core wrk libgomp1; "
        "install them with: apt-get install -y chromium postgresql r-base-core wrk libgomp1"
    )


def test_make_test_stops_before_any_work_with_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "test"],
        cwd=checkout_root(),
        capture_output=True,
        text=True,
        env={**os.environ, "CHROMIUM": str(tmp_path / "chromium"), "VENV": str(tmp_path / "venv")},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "missing system packages for the tests: chromium; install them with: apt-get install -y chromium" in line
    assert not (tmp_path / "venv").exists()  # nothing was installed

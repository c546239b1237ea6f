"""The fast tier's guard and the tier markers: what the guard refuses, in this process and in a child."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tier_guard import GUARD_VARIABLE, SITE, forbidden

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (["python", "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app"], "a Prefect server"),
        (["/venv/bin/prefect", "server", "start", "--port", "4200"], "a Prefect server"),
        (["setpriv", "--", "python", "-m", "azureml_emulator", "--home", "x"], "the Azure ML emulator"),
        (["python", "-m", "cli.main", "up"], "the platform (mlops up)"),
        (["python", "-m", "cli.main", "platform", "up"], "the platform (mlops up)"),
        (["/venv/bin/mlops", "up"], "the platform (mlops up)"),
        (["python", "-m", "azureml_emulator.batch_driver", "--script", "s.py"], None),  # a script, no server
        (["python", "-m", "cli.main", "status", "--json"], None),
        (["python", "-m", "infra.endpoint_server.server", "--port", "1"], None),
        (["/usr/lib/postgresql/15/bin/postgres", "-D", "x"], None),
    ],
)
def test_the_guard_knows_what_the_fast_tier_must_not_start(command: list[str], what: str | None) -> None:
    assert forbidden(command) == what


def test_a_child_that_starts_a_forbidden_process_is_refused_and_reported(tmp_path: Path) -> None:
    report = tmp_path / "guard.log"
    module = "azureml" + "_emulator"  # not spelled whole here: this test's own process may be guarded
    script = f"import subprocess, sys; subprocess.Popen([sys.executable, '-m', '{module[:6]}' + '{module[6:]}'])"
    env = {**os.environ, GUARD_VARIABLE: str(report), "PYTHONPATH": os.pathsep.join([str(SITE), str(ROOT)])}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ForbiddenStart" in result.stderr
    assert "the Azure ML emulator" in report.read_text()


def test_tiers_follow_the_fixtures(pytestconfig: pytest.Config) -> None:
    from tests.conftest import TIER_FIXTURES

    assert set(TIER_FIXTURES.values()) == {"flow", "emulator", "platform", "load"}
    registered = " ".join(pytestconfig.getini("markers"))
    assert all(f"{tier}:" in registered for tier in ("flow", "emulator", "platform", "load"))

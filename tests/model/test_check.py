"""check-model (model/check.py, `mlops model check`): the three shipped packages meet the contract; a package that
does not is told what is missing, with exit code 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model.check import check_package

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "diabetes": ROOT / "models" / "diabetes",
    "classification": ROOT / "models" / "classification",
    "r": ROOT / "models" / "diabetes_r",
}


def _copy(tmp_path: Path, which: str = "classification") -> Path:
    target = tmp_path / which
    shutil.copytree(PACKAGES[which], target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.mark.parametrize("which", sorted(PACKAGES))
def test_each_shipped_package_meets_the_contract(which: str, tmp_path: Path) -> None:
    checks = check_package(PACKAGES[which], tmp_path)
    assert [c.problem for c in checks if c.problem] == []
    names = " | ".join(c.name for c in checks)
    assert "training on 120 rows" in names
    assert "sample data passes [data.checks]" in names  # each package's sample passes its own checks
    assert "the sample request" in names
    assert "a mini-batch of 5 rows" in names


def _check_model(package: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "check-model", str(package)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_check_model_names_a_missing_run_function_and_exits_2(tmp_path: Path) -> None:
    package = _copy(tmp_path)
    script = package / "score.py"
    script.write_text(script.read_text().replace("def run(", "def score_rows("))
    result = _check_model(package)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "score.py has no run()" in result.stdout
    assert "training on" not in result.stdout  # nothing ran: the contract is read first


def test_check_model_reports_a_training_command_that_fails_with_its_own_error(tmp_path: Path) -> None:
    package = _copy(tmp_path)
    manifest = package / "mlops-model.toml"
    manifest.write_text(manifest.read_text().replace('metric = "auc"', 'metric = "precision"'))
    result = _check_model(package)
    assert result.returncode == 2
    assert "metrics.json has no 'precision', the gate's metric (it has: accuracy, auc, f1, log_loss)" in result.stdout


def test_check_model_on_a_folder_without_a_manifest_exits_2(tmp_path: Path) -> None:
    result = _check_model(tmp_path)
    assert result.returncode == 2
    assert "no mlops-model.toml" in result.stdout

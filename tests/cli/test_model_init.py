"""`mlops model init`: a model package of your own from a sample, in a clean copy of the checkout, that passes
`mlops model check` and `mlops run` with no further edit (the old spellings `mlops init`, `mlops check-model`
in the second test)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_mlops
from tests.support.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def clean_copy(target: Path) -> Path:
    """The checkout's files as a fresh clone has them (tracked and new, nothing ignored: no .env, no .mlops)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            destination = target / os.fsdecode(name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


class Checkout:
    """`mlops` run in the copy: its own code first on the path, its own .env, its own MLOPS_HOME (.mlops)."""

    def __init__(self, root: Path, prefect_api: str) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
        self.env |= {
            "PYTHONPATH": str(root),
            "PREFECT_API_URL": prefect_api,
            "PREFECT_HOME": str(root / ".prefect"),
            "MLOPS_ENDPOINT_PORT": str(free_port()),
        }

    def mlops(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run_mlops(*args, env=self.env, inherit=False, cwd=self.root, timeout=timeout)


@pytest.fixture(scope="module")
def churn(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    checkout = Checkout(clean_copy(tmp_path_factory.mktemp("fresh-clone")), prefect_server)
    steps = {"init": checkout.mlops("model", "init", "churn", "--from", "classification")}
    steps["check"] = checkout.mlops("model", "check")
    steps["run"] = checkout.mlops("run")
    try:
        yield {"checkout": checkout, **steps}
    finally:
        checkout.mlops("endpoint", "stop", timeout=120)


# The lines `mlops init churn --from classification` wrote before issue 23 (besides MLOPS_MODEL_PACKAGE), by field.
EARLIER_LINES = {
    "model_name": "churn_model",  # MLOPS_MODEL_NAME
    "endpoint_name": "churn-endpoint",  # MLOPS_ENDPOINT_NAME
    "dataset_name": "churn_ds",  # MLOPS_DATASET_NAME
    "scoring_dataset_name": "churn_scoring_ds",  # MLOPS_SCORING_DATASET_NAME
    "scoring_input_filename": "churn_scoring_input.csv",  # MLOPS_SCORING_INPUT_FILENAME
    "scoring_output_filename": "churn_scoring_output.csv",  # MLOPS_SCORING_OUTPUT_FILENAME
    "aml_env_name": "churn_training_env",  # MLOPS_AML_ENV_NAME
    "aml_env_name_scoring": "churn_scoring_env",  # MLOPS_AML_ENV_NAME_SCORING
    "aml_batch_endpoint_name": "churn-batch",  # MLOPS_AML_BATCH_ENDPOINT_NAME
}


def _effective(checkout: Checkout) -> dict[str, tuple[Any, str]]:
    """The copy's effective settings (`mlops config show --json`, which reads them with `load_settings`): value, source."""
    rows = json.loads(_done(checkout.mlops("config", "show", "--json")))["settings"]
    return {row["field"]: (row["value"], row["source"]) for row in rows}


def _done(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


class TestInitFromClassification:
    def test_init_creates_the_package_and_points_the_settings_at_it(self, churn: dict[str, Any]) -> None:
        out = _done(churn["init"])
        root = churn["checkout"].root
        manifest = (root / "models" / "churn" / "mlops-model.toml").read_text()
        assert 'name = "churn"' in manifest
        assert 'model_name = "churn_model"' in manifest
        assert manifest.count("[data.checks]") == 1  # a starting schema, from the sample data
        assert 'target = { type = "int", allowed = [0, 1] }' in manifest
        assert "data checks: 31 columns and at least 62 rows, from the sample data" in out
        env = (root / ".env").read_text()
        assert "MLOPS_MODEL_PACKAGE=models/churn" in env
        effective = _effective(churn["checkout"])  # no longer written: derived from the package
        assert effective["model_name"] == ("churn_model", "derived")
        assert effective["endpoint_name"] == ("churn-endpoint", "derived")
        assert "mlops model check" in out

    def test_init_writes_one_variable_and_the_rest_follows_the_package(self, churn: dict[str, Any]) -> None:
        """Issue 23: `mlops init` writes at most one variable; the names the earlier ten lines set are derived."""
        _done(churn["init"])
        root = churn["checkout"].root
        written = [line for line in (root / ".env").read_text().splitlines() if line and not line.startswith("#")]
        assert written == ["MLOPS_MODEL_PACKAGE=models/churn"]
        effective = _effective(churn["checkout"])
        assert effective["model_package"] == (str(root / "models" / "churn"), ".env")
        # what the earlier `mlops init` wrote into .env, line by line, now the effective settings
        assert {field: effective[field] for field in EARLIER_LINES} == {
            field: (value, "derived") for field, value in EARLIER_LINES.items()
        }

    def test_check_model_passes(self, churn: dict[str, Any]) -> None:
        out = _done(churn["check"])
        assert "models/churn" in out
        assert "the package meets the contract" in out
        assert "auc=" in out

    def test_run_completes_and_registers_a_model_with_an_auc_tag(self, churn: dict[str, Any]) -> None:
        out = _done(churn["run"])
        assert "registered: churn_model version 1" in out
        status = json.loads(_done(churn["checkout"].mlops("status", "--json")))
        (model,) = status["models"]
        assert (model["name"], model["version"], model["champion"]) == ("churn_model", 1, True)
        tags = model["tags"]
        assert 0.9 < float(tags["auc"]) <= 1.0
        assert tags["area"] == "churn"

    def test_the_endpoint_answers_with_probabilities(self, churn: dict[str, Any]) -> None:
        _done(churn["run"])
        root = churn["checkout"].root
        key = json.loads((root / ".mlops" / "endpoints" / "churn-endpoint" / "keys.json").read_text())["primary"]
        request = json.loads((root / "models" / "churn" / "sample-request.json").read_text())
        port = churn["checkout"].env["MLOPS_ENDPOINT_PORT"]
        call = urllib.request.Request(
            f"http://127.0.0.1:{port}/score",
            data=json.dumps(request).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(call, timeout=30) as response:
            result = json.loads(response.read())["result"]
        assert len(result) == 2
        assert all(0.0 <= p <= 1.0 for p in result)
        assert result[0] < 0.5 < result[1]  # the sample's first row is malignant (0), the second benign (1)
        request["data"][1][3] *= 1000  # mean_area in another unit: outside the package's [data.checks]
        call = urllib.request.Request(call.full_url, data=json.dumps(request).encode(), headers=call.headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(call, timeout=30)
        assert refused.value.code == 400
        assert "column 'mean_area' (data row 2, column 4)" in refused.value.read().decode()

    def test_batch_output_has_one_probability_per_row(self, churn: dict[str, Any]) -> None:
        _done(churn["run"])
        root = churn["checkout"].root
        outputs = sorted((root / ".mlops" / "batch-output").glob("*/churn_scoring_output_*.csv"))
        assert len(outputs) == 1
        with outputs[0].open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 569  # every row of the breast cancer data
        scores = [float(row["score"]) for row in rows]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert len({round(s, 6) for s in scores}) > 10  # probabilities, not labels


def test_init_renames_the_diabetes_sample_in_place_and_refuses_bad_names(tmp_path: Path) -> None:
    checkout = Checkout(clean_copy(tmp_path / "clone"), "http://127.0.0.1:9/api")
    bad = checkout.mlops("init", "Churn-1")
    assert bad.returncode == 2
    assert "use 2-31 lowercase letters" in bad.stderr
    _done(checkout.mlops("init", "sales"))
    assert 'name = "sales"' in (checkout.root / "models" / "diabetes" / "mlops-model.toml").read_text()
    assert "MLOPS_MODEL_PACKAGE=models/diabetes\n" in (checkout.root / ".env").read_text()
    check = _done(checkout.mlops("check-model"))
    assert "sales, registered as sales_model" in check
    again = checkout.mlops("init", "churn", "--from", "classification")
    assert again.returncode == 0
    exists = checkout.mlops("init", "churn", "--from", "classification")
    assert exists.returncode == 2
    assert "exists (pass --overwrite" in exists.stderr
    replaced = checkout.mlops("init", "churn", "--from", "classification", "--force")  # the old spellings
    assert replaced.returncode == 0, replaced.stderr
    assert "mlops init: --force is deprecated; use --overwrite" in replaced.stderr.splitlines()


def test_init_names_derived_names_an_earlier_init_left_in_env(tmp_path: Path) -> None:
    """Lines an earlier `mlops init` wrote (or a user set) win over the derived names: init says which."""
    from cli.model import _derived_names_set

    env_file = tmp_path / ".env"
    env_file.write_text(
        "MLOPS_MODEL_PACKAGE=models/churn\nMLOPS_ENDPOINT_NAME=old-endpoint\nMLOPS_AML_ENV_NAME=old_env\n"
        "MLOPS_EXPERIMENT_NAME=mine\nMLOPS_SCORING_DATASET_NAME=\n"
    )
    assert sorted(_derived_names_set(env_file)) == ["MLOPS_AML_ENV_NAME", "MLOPS_ENDPOINT_NAME"]

"""The batch-score flow on a real Prefect server, real files and real blob storage (Azurite)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from azure.storage.blob import BlobServiceClient

from flows.batch_score import batch_score
from infra.local.registry import LocalRegistry
from infra.services.azurite import DEVELOPMENT_KEY
from models.diabetes.data import FEATURES, write_sample_csv
from models.diabetes.score import predict_locally
from tests.support.helpers import MODEL, clone_home
from tests.support.prefect_api import artifacts_of, logs_of, task_runs_of

DATED_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}/diabetes_scoring_output_\d{2}_\d{2}_\d{2}_\d{3}\.csv$")


@pytest.fixture(scope="module")
def workspace(prefect_server: str, seeded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = clone_home(seeded_template, tmp_path_factory.mktemp("batch") / "home")
    LocalRegistry(home / "registry.db").set_alias(MODEL, "champion", 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        yield home


def _run(**parameters: Any) -> Any:
    return batch_score(**parameters, return_state=True)


def _model_dir(home: Path, version: int) -> Path:
    return Path(LocalRegistry(home / "registry.db").get(MODEL, version).path)


def _poisoned(tmp_path: Path, line: int) -> Path:
    path = write_sample_csv(tmp_path / "poisoned.csv", for_scoring=True)
    lines = path.read_text().splitlines()
    cells = lines[line].split(",")
    cells[2] = "abc"
    lines[line] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


class TestDefaultInput:
    def test_scores_442_rows_equal_to_the_model(self, workspace: Path) -> None:
        state = _run()
        assert state.is_completed()
        summary = state.result()
        assert (summary.rows_in, summary.rows_out, summary.rows_failed) == (442, 442, 0)
        assert summary.model == f"{MODEL}:1"
        output = Path(summary.output)
        assert DATED_NAME.match(output.relative_to(workspace / "batch-output").as_posix())
        scored = pd.read_csv(output)
        assert list(scored.columns) == [*FEATURES, "score"]
        assert scored["score"].tolist() == predict_locally(
            _model_dir(workspace, 1), scored[list(FEATURES)].to_numpy().tolist()
        )

    def test_the_same_input_and_model_again_take_the_earlier_scores(
        self, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unchanged re-run (`mlops run` twice) scores nothing again: same bytes, model and scoring files."""
        path = write_sample_csv(tmp_path / "input.csv", for_scoring=True)
        first = _run(input=str(path), mini_batch_size=200).result()
        second = _run(input=str(path), mini_batch_size=200).result()
        assert (first.rows_reused, second.rows_reused, second.rows_out) == (0, 442, 442)
        assert Path(second.scored).read_bytes() == Path(first.scored).read_bytes()
        assert Path(second.scored).parent != Path(first.scored).parent  # a folder of its own, as every run
        monkeypatch.setenv("MLOPS_BATCH_REUSE_SCORED", "false")
        assert _run(input=str(path), mini_batch_size=200).result().rows_reused == 0

    def test_summary_and_progress_artifacts(self, workspace: Path) -> None:
        state = _run(mini_batch_size=100)
        artifacts = artifacts_of(state.state_details.flow_run_id)
        summary = {row["item"]: row["value"] for row in json.loads(artifacts["batch-summary"].data)}
        assert (summary["rows in"], summary["rows out"], summary["rows failed"]) == (442, 442, 0)
        assert summary["mini-batches"] == 5
        assert summary["rows per second"] > 0
        assert summary["output"].endswith(".csv")
        assert float(artifacts["batch-progress"].data) == 100.0


class TestModelSelection:
    def test_by_version(self, workspace: Path) -> None:
        summary = _run(model_version=2).result()
        scored = pd.read_csv(summary.output)
        assert summary.model == f"{MODEL}:2"
        assert scored["score"].tolist() == predict_locally(
            _model_dir(workspace, 2), scored[list(FEATURES)].to_numpy().tolist()
        )

    def test_by_tag(self, workspace: Path) -> None:
        assert _run(model_tag_name="alpha", model_tag_value="5.0").result().model == f"{MODEL}:3"

    @pytest.mark.parametrize("given", [{"model_tag_name": "alpha"}, {"model_tag_value": "5.0"}])
    def test_half_a_tag_is_a_clear_error(self, workspace: Path, given: dict[str, str]) -> None:
        state = _run(**given)
        assert state.is_failed()
        assert "model_tag_name and model_tag_value go together" in state.message

    def test_unknown_tag_value(self, workspace: Path) -> None:
        state = _run(model_tag_name="alpha", model_tag_value="9")
        assert state.is_failed()
        assert "no version of model" in state.message
        assert "alpha='9'" in state.message


class TestPoisonedMiniBatch:
    def test_under_the_threshold_completes_and_lists_the_failure(self, workspace: Path, tmp_path: Path) -> None:
        state = _run(input=str(_poisoned(tmp_path, 150)), mini_batch_size=100, error_threshold=1)
        assert state.is_completed()
        summary = state.result()
        assert len(summary.failures) == 1
        failure = summary.failures[0]
        assert failure.first_row <= 150 < failure.first_row + failure.rows
        assert "column 'bmi'" in failure.error
        assert "'abc' is not a number" in failure.error
        assert summary.rows_in == 442
        assert summary.rows_out + summary.rows_failed == summary.rows_in
        assert summary.rows_failed == failure.rows > 0
        assert len(pd.read_csv(summary.output)) == summary.rows_out
        table = artifacts_of(state.state_details.flow_run_id)["batch-summary"].data
        assert f"failed mini-batch {failure.index}" in table

    def test_each_mini_batch_is_a_task_run_of_its_own(self, workspace: Path, tmp_path: Path) -> None:
        """The local backend scores through the flow's runner: one `score-mini-batch-<index>` task run each (retried
        on I/O errors), so the poisoned one fails alone and is seen as such in the UI."""
        state = _run(input=str(_poisoned(tmp_path, 150)), mini_batch_size=100, error_threshold=1)
        assert state.is_completed()
        runs = task_runs_of(state.state_details.flow_run_id, prefix="score-mini-batch-", at_least=5)
        scored = {name: final for name, final in runs.items() if name.startswith("score-mini-batch-")}
        assert sorted(scored) == [f"score-mini-batch-{i}" for i in range(5)]
        [failed] = [name for name, final in scored.items() if final == "Failed"]
        assert failed == f"score-mini-batch-{state.result().failures[0].index}"
        assert [final for final in scored.values() if final != "Failed"] == ["Completed"] * 4
        assert not [name for name in runs if name.startswith("score-with-batch-job")]

    def test_over_the_threshold_fails_naming_the_mini_batch(self, workspace: Path, tmp_path: Path) -> None:
        before = set((workspace / "batch-output").rglob("*.csv"))
        state = _run(input=str(_poisoned(tmp_path, 150)), mini_batch_size=100, error_threshold=0)
        assert state.is_failed()
        assert "over the error threshold of 0" in state.message
        assert re.search(r"mini-batch \d \(.*poisoned.csv, data rows \d+-\d+\): .*'abc' is not a number", state.message)
        assert set((workspace / "batch-output").rglob("*.csv")) == before  # nothing published
        assert "failed mini-batch" in artifacts_of(state.state_details.flow_run_id)["batch-summary"].data

    def test_no_limit(self, workspace: Path, tmp_path: Path) -> None:
        state = _run(input=str(_poisoned(tmp_path, 10)), mini_batch_size=100, error_threshold=-1)
        assert state.is_completed()


class TestDataChecks:
    def test_a_row_outside_the_checks_fails_its_mini_batch_counted_against_the_threshold(
        self, workspace: Path, tmp_path: Path
    ) -> None:
        frame = pd.read_csv(write_sample_csv(tmp_path / "in.csv", for_scoring=True))
        frame.loc[150, "s5"] *= 1000  # data row 151, in another unit
        frame.to_csv(path := tmp_path / "units.csv", index=False)
        state = _run(input=str(path), mini_batch_size=100, error_threshold=1)
        assert state.is_completed()
        [failure] = state.result().failures
        assert failure.first_row <= 151 < failure.first_row + failure.rows
        row = 151 - failure.first_row + 1
        assert f"the data checks fail: column 's5': 1 row(s) outside [-0.3858, 0.3933] (row {row}: " in failure.error
        assert state.result().rows_out + failure.rows == 442
        over = _run(input=str(path), mini_batch_size=100, error_threshold=0)
        assert over.is_failed()
        assert "over the error threshold of 0" in over.message
        assert "column 's5'" in over.message


class TestBadInput:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param("age,sex,bp\n1,2,3\n", "missing column(s) 'bmi'", id="missing-column"),
            pytest.param("", "the file is empty", id="empty-file"),
            pytest.param(",".join(FEATURES) + "\n" + "x," * 9 + "x\n", "'x' is not a number", id="non-numeric"),
        ],
    )
    def test_fails_naming_the_problem(self, workspace: Path, tmp_path: Path, text: str, expected: str) -> None:
        path = tmp_path / "bad.csv"
        path.write_text(text)
        state = _run(input=str(path))
        assert state.is_failed()
        assert expected in state.message

    def test_missing_input(self, workspace: Path, tmp_path: Path) -> None:
        state = _run(input=str(tmp_path / "absent.csv"))
        assert state.is_failed()
        assert "no such file or folder" in state.message


class TestBlobStorage:
    @pytest.fixture
    def blob(self, azurite: str, monkeypatch: pytest.MonkeyPatch) -> BlobServiceClient:
        monkeypatch.setenv("MLOPS_BLOB_CONNECTION_STRING", azurite)
        client = BlobServiceClient.from_connection_string(azurite)
        for name in ("fl-input", "fl-output"):
            if not client.get_container_client(name).exists():
                client.create_container(name)
        return client

    def test_input_and_output_in_containers(self, workspace: Path, blob: BlobServiceClient, tmp_path: Path) -> None:
        sample = write_sample_csv(tmp_path / "in.csv", for_scoring=True)
        blob.get_blob_client("fl-input", "scoring/diabetes.csv").upload_blob(sample.read_bytes(), overwrite=True)
        state = _run(input="blob://fl-input/scoring/diabetes.csv", output="blob://fl-output/runs")
        assert state.is_completed(), state.message
        names = [b.name for b in blob.get_container_client("fl-output").list_blobs()]
        assert len(names) == 1
        assert names[0].startswith("runs/")
        assert DATED_NAME.match(names[0].removeprefix("runs/"))
        assert state.result().output == f"blob://fl-output/{names[0]}"
        downloaded = tmp_path / "out.csv"
        downloaded.write_bytes(blob.get_blob_client("fl-output", names[0]).download_blob().readall())
        scored = pd.read_csv(downloaded)
        assert len(scored) == 442
        assert scored["score"].tolist() == predict_locally(
            _model_dir(workspace, 1), scored[list(FEATURES)].to_numpy().tolist()
        )
        self._assert_no_secret(state)

    def test_default_input_is_seeded_into_the_input_container(
        self, workspace: Path, blob: BlobServiceClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLOPS_SCORING_INPUT_CONTAINER", "fl-input")
        monkeypatch.setenv("MLOPS_SCORING_OUTPUT_CONTAINER", "fl-output")
        state = _run()
        assert state.is_completed(), state.message
        assert "diabetes_scoring_input.csv" in [b.name for b in blob.get_container_client("fl-input").list_blobs()]
        assert state.result().output.startswith("blob://fl-output/")
        self._assert_no_secret(state)

    @staticmethod
    def _assert_no_secret(state: Any) -> None:
        run = state.state_details.flow_run_id
        texts = logs_of(run) + [str(a.data) for a in artifacts_of(run).values()] + [state.message or ""]
        assert len(texts) > 5
        assert not [t for t in texts if DEVELOPMENT_KEY in t or "AccountKey" in t]

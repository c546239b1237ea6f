"""Batch scoring's tasks on the fake backend: choosing the model, scoring, and accounting for every row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.backend import MiniBatch, MiniBatchResult, ModelVersion
from infra.errors import MissingResourceError, MLOpsError, TransientBackendError
from infra.settings import Settings
from tasks.batch import (
    BatchScoringError,
    assemble_output,
    batch_passes,
    check_batch,
    output_name,
    plan_mini_batches,
    score_mini_batch,
    select_batch_model,
    summarize_batch,
)
from tests.support.fakes import FEATURES, FakeBackend, write_fake_model, write_features_csv

MODEL = "diabetes_regression_model.pkl"


def _version(fake: FakeBackend, tmp_path: Path, coef: float, tags: dict[str, str] | None = None) -> ModelVersion:
    folder = write_fake_model(tmp_path / f"model-{coef}", coef)
    return fake.registry.register(MODEL, folder, tags=tags or {}, properties={}).model


def _rows(count: int, bad: set[int] = frozenset()) -> list[list[object]]:  # type: ignore[assignment]
    return [["x" if i in bad else i] + [1] * (len(FEATURES) - 1) for i in range(1, count + 1)]


class _InOrder:
    """What the flow's runner (`FlowRunner`, which needs a flow's task runner) collects, one `score_mini_batch` after
    another: each result, each failure's error; `raising` lets a failure's exception out."""

    def __init__(self, *, raising: bool = False) -> None:
        self.raising = raising

    def each(
        self, score: Callable[[MiniBatch], MiniBatchResult], batches: list[MiniBatch], parallelism: int
    ) -> tuple[list[MiniBatchResult], dict[int, str]]:
        results, failures = [], {}
        for batch in batches:
            try:
                results.append(score_mini_batch.fn(score, batch))
            except MLOpsError as exc:
                if self.raising:
                    raise
                failures[batch.index] = str(exc)
        return results, failures

    def whole(
        self, job: Callable[[], tuple[list[MiniBatchResult], dict[int, str]]], batches: list[MiniBatch]
    ) -> tuple[list[MiniBatchResult], dict[int, str]]:
        raise AssertionError("the fake backend scores each mini-batch")


def _score_all(
    fake: FakeBackend, model: ModelVersion, batches: list[MiniBatch], work: Path, *, raising: bool = False
) -> tuple[list[MiniBatchResult], dict[int, str]]:
    """The backend's `score_all`, each mini-batch through `score_mini_batch`."""
    return fake.batch.score_all(
        model, batches, work, parallelism=1, error_threshold=-1, runner=_InOrder(raising=raising)
    )


def test_the_model_is_the_version_asked_for_else_tagged_else_serving_else_champion(
    fake: FakeBackend, settings: Settings, tmp_path: Path
) -> None:
    first = _version(fake, tmp_path, 1.0, {"stage": "qa"})
    second = _version(fake, tmp_path, 2.0, {"stage": "qa"})
    with pytest.raises(MissingResourceError, match="run `mlops train` first"):
        select_batch_model.fn(fake, settings, MODEL, None, None, None)
    fake.registry.set_alias(MODEL, "champion", 1)
    assert select_batch_model.fn(fake, settings, MODEL, None, None, None) == first
    assert select_batch_model.fn(fake, settings, MODEL, 2, None, None) == second
    assert select_batch_model.fn(fake, settings, MODEL, None, "stage", "qa") == second  # the latest so tagged
    with pytest.raises(MissingResourceError, match="stage='prod'"):
        select_batch_model.fn(fake, settings, MODEL, None, "stage", "prod")
    with pytest.raises(ValueError, match="go together"):
        select_batch_model.fn(fake, settings, MODEL, None, "stage", None)
    fake.endpoints.ensure(settings.endpoint_name)
    fake.endpoints.add_deployment(settings.endpoint_name, "blue", fake.bundles.build(second))
    fake.endpoints.set_traffic(settings.endpoint_name, {"blue": 100})
    assert select_batch_model.fn(fake, settings, MODEL, None, None, None) == second  # serving wins over champion


def test_every_row_is_scored_once_in_input_order(fake: FakeBackend, tmp_path: Path) -> None:
    model = _version(fake, tmp_path, 0.5)
    data = write_features_csv(tmp_path / "in.csv", _rows(25))
    batches = plan_mini_batches.fn(fake, [data], 10)
    assert [b.index for b in batches] == [0, 1, 2]
    scored = _score_all(fake, model, batches, tmp_path / "work")
    results, failures = scored
    assert failures == {}
    out = assemble_output.fn(fake, results, batches[0].columns, tmp_path / "out.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join([*FEATURES, "score"])
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, 26))
    summary = summarize_batch.fn(fake, model, [data], batches, scored, 1.0)
    assert (summary.rows_in, summary.rows_out, summary.rows_failed) == (25, 25, 0)
    assert batch_passes(summary, 0)


def test_a_bad_row_fails_its_mini_batch_which_is_named_with_its_rows(fake: FakeBackend, tmp_path: Path) -> None:
    model = _version(fake, tmp_path, 0.5)
    data = write_features_csv(tmp_path / "in.csv", _rows(25, bad={14}))
    batches = plan_mini_batches.fn(fake, [data], 10)
    scored = _score_all(fake, model, batches, tmp_path / "work")
    assert list(scored[1]) == [1]  # the second mini-batch: rows 11-20
    summary = summarize_batch.fn(fake, model, [data], batches, scored, 1.0)
    assert (summary.rows_in, summary.rows_out, summary.rows_failed) == (25, 15, 10)
    [failure] = summary.failures
    assert (failure.index, failure.first_row, failure.rows) == (1, 11, 10)
    assert "row 4 is not numbers" in failure.error
    check_batch.fn(summary, 1)  # within a threshold of one failed mini-batch
    check_batch.fn(summary, -1)  # no limit
    with pytest.raises(BatchScoringError, match=r"mini-batch 1 \(.*in.csv, data rows 11-20\)"):
        check_batch.fn(summary, 0)


def test_rows_that_do_not_reconcile_fail_the_batch_whatever_the_threshold(fake: FakeBackend, tmp_path: Path) -> None:
    model = _version(fake, tmp_path, 0.5)
    data = write_features_csv(tmp_path / "in.csv", _rows(20))
    batches = plan_mini_batches.fn(fake, [data], 10)
    results, _ = _score_all(fake, model, batches[:1], tmp_path / "work")
    summary = summarize_batch.fn(fake, model, [data], batches, (results, {}), 1.0)  # mini-batch 1 got no outcome
    assert summary.unaccounted == [1]
    assert summary.rows_in == 20
    assert not batch_passes(summary, -1)
    with pytest.raises(BatchScoringError, match="rows do not reconcile: 20 in, 10 out, 0 failed"):
        check_batch.fn(summary, -1)


def test_an_unreadable_input_is_a_transient_error_worth_a_retry(fake: FakeBackend, tmp_path: Path) -> None:
    model = _version(fake, tmp_path, 0.5)
    data = write_features_csv(tmp_path / "in.csv", _rows(5))
    [batch] = plan_mini_batches.fn(fake, [data], 10)
    data.unlink()
    with pytest.raises(TransientBackendError, match=r"in\.csv"):
        _score_all(fake, model, [batch], tmp_path / "work", raising=True)


def test_inputs_with_different_columns_are_refused(fake: FakeBackend, tmp_path: Path) -> None:
    first = write_features_csv(tmp_path / "a.csv", _rows(3))
    second = tmp_path / "b.csv"
    second.write_text("age,sex\n1,2\n")
    with pytest.raises(Exception, match="differ"):
        plan_mini_batches.fn(fake, [first, second], 10)


def test_the_output_name_is_mlopspythons_dated_name(settings: Settings) -> None:
    moment = datetime(2026, 12, 4, 9, 5, 7, 123000, tzinfo=UTC)
    assert output_name(settings, moment) == "2026-12-04/diabetes_scoring_output_09_05_07_123.csv"

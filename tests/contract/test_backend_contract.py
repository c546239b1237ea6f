"""The backend contract: the rules every implementation of `infra.backend.Backend` keeps, run against each.

The same tests run against the in-memory fake (tests/support/fakes.py, which the task tests use), the
local backend (SQLite registry, endpoint server processes) and the Azure ML backend on the emulator
(the real SDK over HTTPS). A rule the fake drops, or an adapter breaks, fails here by name.

The models registered are the seeded template's three trained versions (real files, so the local and
Azure ML endpoints can load them); the fake scores them with its own rule.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.azureml import AzureMLBackend
from infra.backend import Backend, TrainSpec
from infra.errors import BackendError, MissingResourceError
from infra.factory import open_backend
from infra.local import LocalBackend
from infra.settings import load_settings
from models.diabetes.data import write_sample_csv
from tests.support.fakes import FakeBackend
from tests.support.helpers import MODEL, SMOKE, free_port, trained_copies

ENDPOINT = "contract-endpoint"


@pytest.fixture(params=["fake", "local", pytest.param("azureml", marks=pytest.mark.emulator)])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """The backend under test, in a workspace of this test's own."""
    if request.param == "fake":
        yield FakeBackend(tmp_path / "fake")
        return
    if request.param == "local":
        local = LocalBackend(load_settings(home=tmp_path / "mlops", endpoint_port=free_port()))
        try:
            yield local
        finally:
            local.endpoints.stop(ENDPOINT)
        return
    emulated = request.getfixturevalue("emulated")  # the module's emulator, a workspace of this test's own
    azure = open_backend(emulated.settings())
    assert isinstance(azure, AzureMLBackend)
    try:
        yield azure
    finally:
        azure.endpoints.delete(ENDPOINT)  # its server process goes; the module's emulator stays


@pytest.fixture
def trained(seeded_template: Path, tmp_path: Path) -> list[Path]:
    """Three trained model folders with different bytes (copies: registering may not change its source)."""
    return trained_copies(seeded_template, tmp_path / "trained")


# ---- registry ----


def test_versions_are_consecutive_and_the_same_bytes_register_once(backend: Backend, trained: list[Path]) -> None:
    first = backend.registry.register(MODEL, trained[0], tags={"alpha": "0.4"}, properties={"p": "1"})
    second = backend.registry.register(MODEL, trained[1], tags={}, properties={})
    again = backend.registry.register(MODEL, trained[0], tags={"alpha": "other"}, properties={})
    assert (first.model.version, first.created) == (1, True)
    assert (second.model.version, second.created) == (2, True)
    assert (again.model.version, again.created) == (1, False)
    assert again.model.content_hash == first.model.content_hash != second.model.content_hash
    assert [m.version for m in backend.registry.list(MODEL)] == [1, 2]
    kept = backend.registry.get(MODEL, 1)
    assert kept.tags["alpha"] == "0.4"
    assert kept.properties["p"] == "1"


def test_an_unknown_version_is_missing_and_the_message_names_the_versions(
    backend: Backend, trained: list[Path]
) -> None:
    backend.registry.register(MODEL, trained[0], tags={}, properties={})
    with pytest.raises(MissingResourceError, match="7") as missing:
        backend.registry.get(MODEL, 7)
    assert "1" in str(missing.value)
    assert backend.registry.list("no_such_model") == []


def test_an_alias_points_at_one_existing_version_and_moves(backend: Backend, trained: list[Path]) -> None:
    for folder in trained[:2]:
        backend.registry.register(MODEL, folder, tags={}, properties={})
    assert backend.registry.get_alias(MODEL, "champion") is None
    backend.registry.set_alias(MODEL, "champion", 1)
    backend.registry.set_alias(MODEL, "champion", 2)
    champion = backend.registry.get_alias(MODEL, "champion")
    assert champion is not None
    assert champion.version == 2
    assert backend.registry.aliases(MODEL) == {"champion": 2}
    with pytest.raises(MissingResourceError):
        backend.registry.set_alias(MODEL, "champion", 9)
    assert backend.registry.aliases(MODEL) == {"champion": 2}  # a refused move changes nothing


def test_archive_hides_a_version_from_listings_and_keeps_it_readable(backend: Backend, trained: list[Path]) -> None:
    for folder in trained[:2]:
        backend.registry.register(MODEL, folder, tags={}, properties={})
    assert backend.registry.archive(MODEL, 1) is True
    assert backend.registry.archive(MODEL, 1) is False
    assert [m.version for m in backend.registry.list(MODEL)] == [2]
    assert [m.version for m in backend.registry.list(MODEL, include_archived=True)] == [1, 2]
    assert backend.registry.get(MODEL, 1).archived
    third = backend.registry.register(MODEL, trained[2], tags={}, properties={})
    assert third.model.version == 3  # an archived version's number is not reused


def test_an_empty_folder_is_refused(backend: Backend, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError):
        backend.registry.register(MODEL, empty, tags={}, properties={})
    assert backend.registry.list(MODEL) == []


# ---- endpoints ----


def _serving(backend: Backend, trained: list[Path]) -> None:
    """The endpoint with `blue` serving version 1 at 100 %."""
    model = backend.registry.register(MODEL, trained[0], tags={}, properties={}).model
    backend.endpoints.ensure(ENDPOINT)
    backend.endpoints.add_deployment(ENDPOINT, "blue", backend.bundles.build(model))
    backend.endpoints.set_traffic(ENDPOINT, {"blue": 100})


def test_a_new_deployment_takes_no_traffic_until_traffic_names_it(backend: Backend, trained: list[Path]) -> None:
    assert backend.endpoints.get(ENDPOINT) is None
    model = backend.registry.register(MODEL, trained[0], tags={}, properties={}).model
    backend.endpoints.ensure(ENDPOINT)
    staged = backend.endpoints.add_deployment(ENDPOINT, "blue", backend.bundles.build(model))
    assert staged.traffic() == {"blue": 0}
    assert staged.live is None
    live = backend.endpoints.set_traffic(ENDPOINT, {"blue": 100})
    assert live.live == "blue"
    assert live.deployments["blue"].model == model.id
    answer = backend.endpoints.invoke(ENDPOINT, SMOKE)
    assert answer.status == 200, answer.body
    assert answer.headers["azureml-model-deployment"] == "blue"
    assert len(answer.payload()["result"]) == 2


def test_traffic_sums_to_100_and_names_only_known_deployments(backend: Backend, trained: list[Path]) -> None:
    _serving(backend, trained)
    with pytest.raises(BackendError):
        backend.endpoints.set_traffic(ENDPOINT, {"blue": 50})
    with pytest.raises(BackendError, match="nope"):
        backend.endpoints.set_traffic(ENDPOINT, {"blue": 0, "nope": 100})
    state = backend.endpoints.get(ENDPOINT)
    assert state is not None
    assert state.traffic() == {"blue": 100}  # refused changes leave traffic as it was


def test_a_deployment_taking_traffic_is_neither_removed_nor_replaced(backend: Backend, trained: list[Path]) -> None:
    _serving(backend, trained)
    second = backend.registry.register(MODEL, trained[1], tags={}, properties={}).model
    with pytest.raises(BackendError):
        backend.endpoints.remove_deployment(ENDPOINT, "blue")
    backend.endpoints.add_deployment(ENDPOINT, "green", backend.bundles.build(second))
    backend.endpoints.set_traffic(ENDPOINT, {"blue": 0, "green": 100})
    state = backend.endpoints.remove_deployment(ENDPOINT, "blue")
    assert state.traffic() == {"green": 100}
    assert state.deployments["green"].model == second.id


def test_mirror_traffic_is_at_most_50_percent_and_only_to_a_deployment_without_live_traffic(
    backend: Backend, trained: list[Path]
) -> None:
    _serving(backend, trained)
    second = backend.registry.register(MODEL, trained[1], tags={}, properties={}).model
    backend.endpoints.add_deployment(ENDPOINT, "green", backend.bundles.build(second))
    with pytest.raises(BackendError):
        backend.endpoints.set_mirror(ENDPOINT, {"green": 60})
    with pytest.raises(BackendError):
        backend.endpoints.set_mirror(ENDPOINT, {"blue": 10})  # blue takes live traffic
    assert backend.endpoints.set_mirror(ENDPOINT, {"green": 20}) == {"green": 20}
    assert backend.endpoints.set_mirror(ENDPOINT, {}) == {}


def test_collected_holds_the_scored_requests_since_a_time_or_says_there_are_none(
    backend: Backend, trained: list[Path]
) -> None:
    """What the endpoint collected for the drift monitor: each scored request (request and answer), not synthetic
    traffic (`x-mlops-check`), from a time on; or None where the backend collects no scoring data (Azure ML)."""
    _serving(backend, trained)
    before = time.time() - 1
    answered = backend.endpoints.invoke(ENDPOINT, SMOKE, headers={"x-ms-request-id": "contract-request-1"})
    assert answered.status == 200
    assert backend.endpoints.invoke(ENDPOINT, SMOKE, headers={"x-mlops-check": "contract"}).status == 200
    collected = backend.endpoints.collected(ENDPOINT, before)
    if isinstance(backend, AzureMLBackend):  # its deployments enable no data collector
        assert collected is None
        return
    deadline = time.monotonic() + 10  # a local endpoint writes what it collected five times a second
    while collected is not None and not collected.requests and time.monotonic() < deadline:
        time.sleep(0.1)
        collected = backend.endpoints.collected(ENDPOINT, before)
    assert collected is not None
    [request] = collected.requests
    assert request.request == json.loads(SMOKE)
    assert len(request.response["result"]) == 2
    assert before <= request.time <= time.time()
    # what the labels flow joins ground truth on: the request's id, and the version that answered
    assert (request.request_id, request.model) == ("contract-request-1", f"{MODEL}:1")
    assert backend.endpoints.collected(ENDPOINT, time.time() + 60).requests == []  # none since a later time


# ---- batch ----


def test_score_all_scores_every_mini_batch_and_names_each_failed_one(
    backend: Backend, trained: list[Path], tmp_path: Path
) -> None:
    """Plan, score (however the backend does it: here or in one platform job) and assemble: every mini-batch has a
    result or an error, rows in equal rows out plus the failed mini-batch's rows."""
    model = backend.registry.register(MODEL, trained[0], tags={}, properties={}).model
    good = write_sample_csv(tmp_path / "in" / "good.csv", for_scoring=True)
    lines = good.read_text().splitlines()
    good.write_text("\n".join(lines[:21]) + "\n")
    bad = tmp_path / "in" / "bad.csv"
    bad.write_text("\n".join([lines[0], lines[1], "x" + lines[2], lines[3]]) + "\n")
    batches = backend.batch.plan([good, bad], 1000)
    assert [(b.index, b.file) for b in batches] == [(0, good), (1, bad)]
    results, failures = backend.batch.score_all(model, batches, tmp_path / "work", parallelism=2, error_threshold=-1)
    assert [(r.index, r.rows_in, r.rows_out) for r in results] == [(0, 20, 20)]
    assert list(failures) == [1]
    assert failures[1]
    assert backend.batch.count_rows(batches[1]) == 3
    out = tmp_path / "out.csv"
    assert backend.batch.assemble(results, batches[0].columns, out) == out.stat().st_size
    written = out.read_text().splitlines()
    assert written[0] == lines[0] + ",score"
    assert len(written) == 21
    assert [line.rsplit(",", 1)[0] for line in written[1:]] == lines[1:21]


# ---- jobs ----


def test_a_job_name_seen_before_re_attaches_to_the_same_outputs(backend: Backend, tmp_path: Path) -> None:
    data = write_sample_csv(tmp_path / "data" / "diabetes.csv")
    spec = TrainSpec(job_name="contract-train-1", data=data, parameters={"alpha": 0.4})
    first = backend.jobs.train(spec)
    again = backend.jobs.train(spec)
    assert not first.reattached
    assert again.reattached
    assert again.metrics == first.metrics
    assert first.metrics["mse"] > 0
    # What the job logged, where its backend keeps it (Azure ML: the job's MLflow run, logged by the training
    # command itself in the job): the same metrics, and nothing for a job that never ran.
    assert backend.jobs.logged_metrics(first.job_name) == pytest.approx(first.metrics)
    assert backend.jobs.logged_metrics("contract-no-such-job") is None

"""resolve-training-inputs, train-model, register-model and promote-model on the fake backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.events import Event

from infra.settings import Settings
from model.errors import DataValidationError
from model.gate import Decision
from tasks.register import REGISTERED_EVENT, lineage_tags, promote_model, register_model
from tasks.train import TrainRequest, _training_cache_key, resolve_training_inputs, train_model
from tests.support.fakes import FakeBackend

MODEL = "diabetes_regression_model.pkl"


def _data(tmp_path: Path, rows: str = "1\n2\n") -> Path:
    data = tmp_path / "train.csv"
    data.write_text("age\n" + rows)
    return data


def _request(settings: Settings, data: Path, alpha: float | None = None, backend: str = "fake") -> TrainRequest:
    return resolve_training_inputs.fn(settings, backend, str(data), alpha)


def test_the_cache_key_follows_data_parameters_and_backend_and_nothing_else(settings: Settings, tmp_path: Path) -> None:
    data = _data(tmp_path)
    first = _request(settings, data)
    assert _request(settings, data).cache_key == first.cache_key  # the same inputs: the same key
    assert _request(settings, data, alpha=0.9).cache_key != first.cache_key
    assert _request(settings, data, backend="other").cache_key != first.cache_key
    data.write_text("age\n1\n3\n")
    changed = _request(settings, data)
    assert changed.cache_key != first.cache_key
    assert changed.data_sha256 != first.data_sha256
    assert changed.code_sha256 == first.code_sha256


def test_the_job_name_and_prefects_cache_key_come_from_the_inputs(settings: Settings, tmp_path: Path) -> None:
    request = _request(settings, _data(tmp_path), alpha=0.3)
    assert request.spec.job_name == f"train-{request.cache_key[:16]}"
    assert request.spec.parameters["alpha"] == 0.3
    assert request.spec.data == (tmp_path / "train.csv").resolve()
    assert _training_cache_key(None, {"request": request}) == f"train-model-{request.cache_key}"  # type: ignore[arg-type]


def test_a_missing_data_file_is_named(settings: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataValidationError, match=str(missing)):
        _request(settings, missing)


def test_train_model_runs_the_job_once_and_re_attaches_after(
    fake: FakeBackend, settings: Settings, tmp_path: Path
) -> None:
    request = _request(settings, _data(tmp_path))
    first = train_model.fn(fake, request)
    again = train_model.fn(fake, request)
    assert fake.jobs.submitted == [request.spec.job_name]
    assert (first.reattached, again.reattached) == (False, True)
    assert again.outputs == first.outputs


def _registered(fake: FakeBackend, settings: Settings, tmp_path: Path) -> tuple[TrainRequest, object]:
    request = _request(settings, _data(tmp_path), alpha=0.2)
    candidate = train_model.fn(fake, request)
    decision = Decision(True, "no champion yet: this is the first model, so it is promoted", "mse", 3200.0)
    return request, register_model.fn(fake, settings, request, candidate, decision)


def test_registration_carries_lineage_and_the_decision(fake: FakeBackend, settings: Settings, tmp_path: Path) -> None:
    request, registration = _registered(fake, settings, tmp_path)
    model = registration.model  # type: ignore[attr-defined]
    assert registration.created  # type: ignore[attr-defined]
    assert (model.name, model.version) == (settings.model_name, 1)
    assert model.tags["data_sha256"] == request.data_sha256
    assert model.tags["code_sha256"] == request.code_sha256
    assert model.tags["run_id"] == request.spec.job_name
    assert model.tags["mse"] == repr(3200.0)
    assert model.tags["parameters"] == '{"alpha": 0.2}'
    assert model.properties["decision"].startswith("no champion yet")
    assert model.properties["cache_key"] == request.cache_key


def test_registering_the_same_outputs_again_returns_the_version(
    fake: FakeBackend, settings: Settings, tmp_path: Path
) -> None:
    request, first = _registered(fake, settings, tmp_path)
    again = register_model.fn(
        fake, settings, request, train_model.fn(fake, request), Decision(True, "forced", "mse", 3200.0, forced=True)
    )
    assert not again.created
    assert again.model.version == first.model.version  # type: ignore[attr-defined]
    assert [m.version for m in fake.registry.list(settings.model_name)] == [1]


def test_promotion_moves_the_champion_and_announces_it(
    fake: FakeBackend, settings: Settings, tmp_path: Path, events: list[Event]
) -> None:
    _, registration = _registered(fake, settings, tmp_path)
    model = registration.model  # type: ignore[attr-defined]
    promoted = promote_model.fn(fake, model)
    assert fake.registry.aliases(model.name) == {"champion": 1}
    assert promoted.version == 1
    [event] = [e for e in events if e.event == REGISTERED_EVENT]
    assert event.resource.id == f"mlops.model.{model.name}"
    assert event.resource["mlops.chain"] == "true"  # outside a parent flow: the chain continues from here
    assert event.payload == {"name": model.name, "version": 1, "id": model.id, "content_hash": model.content_hash}


def test_lineage_tags_name_the_libraries_and_python(fake: FakeBackend, settings: Settings, tmp_path: Path) -> None:
    request = _request(settings, _data(tmp_path))
    tags = lineage_tags(settings, request, train_model.fn(fake, request))
    assert tags["python"] == "3.11"
    assert tags["lib.scikit-learn"] == "fake"
    assert tags["area"] == "diabetes_regression"


def test_the_sample_command_runs_once_per_package_and_the_scoring_copy_drops_the_target(
    settings: Settings, tmp_path: Path
) -> None:
    import dataclasses
    import sys

    from infra.common.train_inputs import write_sample_data

    runs = tmp_path / "runs.txt"
    writer = (
        "import sys; from pathlib import Path; "
        f"Path({str(runs)!r}).open('a').write('ran\\n'); "
        "Path(sys.argv[1]).write_text('age,Y\\n1,2\\n3,4\\n')"
    )
    package = dataclasses.replace(
        settings.package, root=tmp_path, sample_command=(sys.executable, "-c", writer, "{out}")
    )
    training = write_sample_data(package, tmp_path / "a" / "train.csv")
    scoring = write_sample_data(package, tmp_path / "b" / "score.csv", for_scoring=True)
    assert training.read_text() == "age,Y\n1,2\n3,4\n"
    assert scoring.read_text().split() == ["age", "1", "3"]  # the target column left out
    assert runs.read_text() == "ran\n"  # the second call wrote what the first one got

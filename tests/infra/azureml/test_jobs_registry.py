"""The Azure ML backend through the real, unmodified `MLClient`, against the local emulator: jobs and registry."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from infra.azureml import AzureMLBackend
from infra.backend import ModelVersion, TrainSpec
from infra.errors import BackendError, ConfigError, JobFailedError, MissingResourceError, TransientBackendError
from infra.factory import open_backend
from models.diabetes.data import write_sample_csv
from tests.support.emulator import Emulated

MODEL = "diabetes-test"


def _backend(emulated: Emulated, **overrides: str) -> AzureMLBackend:
    backend = open_backend(emulated.settings(**overrides))
    assert isinstance(backend, AzureMLBackend)
    return backend


def _data(emulated: Emulated) -> Path:
    path = emulated.home / "data" / "diabetes.csv"
    write_sample_csv(path)
    return path


def test_training_job_runs_in_the_emulator_and_its_outputs_come_back(emulated: Emulated) -> None:
    backend = _backend(emulated)
    output = backend.jobs.train(TrainSpec(job_name="train-test-1", data=_data(emulated), parameters={"alpha": 0.4}))
    assert not output.reattached
    assert (output.outputs / "model.joblib").is_file()
    assert output.metrics["mse"] > 0
    assert output.training["parameters"] == {"alpha": 0.4}
    assert "metrics" in output.log.read_text()  # the job's own stdout, downloaded from its user_logs
    assert emulated.jobs() == {"train-test-1": "Completed"}
    sdk = [r for r in emulated.requests() if "azure-ai-ml" in r["user_agent"]]
    calls = [(r["method"], r["path"]) for r in sdk]
    assert any(m == "PUT" and p.endswith("/jobs/train-test-1") for m, p in calls)
    assert any(m == "POST" and "/codes/" in p and p.endswith("/startPendingUpload") for m, p in calls)
    assert any(m == "PUT" and "/data/diabetes_ds/versions/" in p for m, p in calls)
    assert any(m == "PUT" and "/environments/diabetes_regression_training_env/versions/" in p for m, p in calls)


def test_the_same_job_name_re_attaches_and_unchanged_inputs_upload_nothing(emulated: Emulated) -> None:
    backend = _backend(emulated)
    spec = TrainSpec(job_name="train-test-2", data=_data(emulated), parameters={"alpha": 0.4})
    backend.jobs.train(spec)
    uploads = len(emulated.requests("PUT", ".blob."))
    again = _backend(emulated).jobs.train(spec)
    assert again.reattached
    assert len(emulated.requests("PUT", "/jobs/train-test-2")) == 1
    other = _backend(emulated).jobs.train(spec.model_copy(update={"job_name": "train-test-3"}))
    assert not other.reattached
    # the second job reuses the code snapshot and the data asset; only its parameters file is new
    assert len(emulated.requests("PUT", ".blob.")) - uploads <= 2
    assert len(emulated.requests("PUT", "/data/diabetes_ds/versions/")) == 1


def test_a_failing_command_fails_with_the_jobs_own_error_and_log_tail(emulated: Emulated) -> None:
    bad = emulated.home / "bad.csv"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("age,sex\n1,2\n")
    backend = _backend(emulated)
    with pytest.raises(JobFailedError) as failure:
        backend.jobs.train(TrainSpec(job_name="train-bad", data=bad, parameters={"alpha": 0.4}))
    message = str(failure.value)
    assert "training job train-bad failed" in message
    assert "missing column(s) 'bmi'" in message  # models.diabetes.train's own words, through run history's error
    assert "exited with status code 2" in message  # the service's part of the error
    assert "std_log.txt" in message
    assert emulated.jobs()["train-bad"] == "Failed"


def test_a_canceled_training_job_is_trained_again_under_a_new_name_and_registers(emulated: Emulated) -> None:
    """Azure ML never frees a job name (a job cannot be deleted), so a job that ended Canceled (here by our
    own timeout, as during a slow first image build) must not block its inputs: issue 22, point 3."""
    spec = TrainSpec(job_name="train-retry", data=_data(emulated), parameters={"alpha": 0.4}, timeout_seconds=0.01)
    with pytest.raises(JobFailedError, match=r"train-retry ran past 0.01 s .* and was canceled"):
        _backend(emulated).jobs.train(spec)
    assert emulated.jobs() == {"train-retry": "Canceled"}
    backend = _backend(emulated)
    retried = backend.jobs.train(spec.model_copy(update={"timeout_seconds": 600}))
    assert (retried.job_name, retried.reattached) == ("train-retry-r1", False)
    assert emulated.jobs() == {"train-retry": "Canceled", "train-retry-r1": "Completed"}
    registration = backend.registry.register(MODEL, retried.outputs, tags={}, properties={"job_name": "train-retry-r1"})
    assert registration.created
    assert "/paths/azureml/train-retry-r1/model/model" in registration.model.path
    again = _backend(emulated).jobs.train(spec.model_copy(update={"timeout_seconds": 600}))
    assert (again.job_name, again.reattached) == ("train-retry-r1", True)  # a completed attempt is re-attached


def test_registry_versions_idempotence_aliases_and_archive(emulated: Emulated) -> None:
    backend = _backend(emulated)
    data = _data(emulated)
    first = backend.jobs.train(TrainSpec(job_name="train-a", data=data, parameters={"alpha": 0.4}))
    second = backend.jobs.train(TrainSpec(job_name="train-b", data=data, parameters={"alpha": 0.1}))
    registry = backend.registry
    tags = {"mse": repr(first.metrics["mse"]), "area": "diabetes_regression"}
    one = registry.register(MODEL, first.outputs, tags=tags, properties={"job_name": "train-a"})
    assert one.created
    assert one.model.version == 1
    assert one.model.tags == tags
    assert one.model.properties == {"job_name": "train-a"}
    assert "/paths/azureml/train-a/model/model" in one.model.path  # registered from the job output: no upload
    assert not [r for r in emulated.requests("PUT", "/LocalUpload/") if "model.joblib" in r["path"]]
    same = registry.register(MODEL, first.outputs, tags=tags, properties={"job_name": "train-a"})
    assert not same.created
    assert same.model.version == 1
    two = registry.register(MODEL, second.outputs, tags={"mse": "1"}, properties={"job_name": "train-b"})
    assert two.created
    assert two.model.version == 2
    assert [v.version for v in registry.list(MODEL)] == [1, 2]

    registry.set_alias(MODEL, "champion", 1)
    registry.set_alias(MODEL, "champion", 2)
    assert registry.aliases(MODEL) == {"champion": 2}
    champion = registry.get_alias(MODEL, "champion")
    assert champion is not None
    assert champion.version == 2
    assert "mlops.alias.champion" not in champion.tags  # the registry's own tags stay hidden
    assert registry.get_alias(MODEL, "staging") is None

    assert registry.archive(MODEL, 1)
    assert not registry.archive(MODEL, 1)
    assert [v.version for v in registry.list(MODEL)] == [2]
    assert [v.version for v in registry.list(MODEL, include_archived=True)] == [1, 2]
    assert registry.get(MODEL, 1).archived
    with pytest.raises(MissingResourceError, match="has no version 7 \\(registered versions: 1, 2\\)"):
        registry.get(MODEL, 7)


def test_a_registration_that_loses_the_race_for_a_version_looks_again(
    emulated: Emulated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22, point 6: Azure refuses a second write of a version's path with a 400 UserError, "Asset paths
    cannot be updated." (never a 409); the writer that lost the version number looks again."""
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for folder, content in ((mine, b"mine"), (theirs, b"theirs")):
        folder.mkdir()
        (folder / "model.joblib").write_bytes(content)
    registry, other = _backend(emulated).registry, _backend(emulated).registry
    path_of, raced = registry._path, []

    def path_then_lose_the_race(source: Path, properties: dict[str, str]) -> str:
        if not raced:  # after this writer chose its version number, another takes it
            raced.append(other.register(MODEL, theirs, tags={}, properties={}))
        return path_of(source, properties)

    monkeypatch.setattr(registry, "_path", path_then_lose_the_race)
    registration = registry.register(MODEL, mine, tags={}, properties={})
    assert (raced[0].model.version, registration.model.version, registration.created) == (1, 2, True)
    refused = [r for r in emulated.requests("PUT", f"/models/{MODEL}/versions/1") if r["status"] == 400]
    assert len(refused) == 1


def test_a_folder_that_is_not_a_job_output_is_uploaded(emulated: Emulated, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"not really a model")
    registration = _backend(emulated).registry.register(MODEL, folder, tags={}, properties={})
    assert registration.created
    assert "LocalUpload" in registration.model.path
    assert emulated.requests("PUT", "/LocalUpload/")


def test_a_workspace_that_does_not_exist_names_the_setting(emulated: Emulated) -> None:
    backend = _backend(emulated, azure_workspace_name="no-such-ws")
    with pytest.raises(ConfigError, match="AZUREML_WORKSPACE_NAME"):
        backend.registry.list()
    with pytest.raises(ConfigError, match="does not exist"):
        backend.endpoints.get(emulated.endpoint_name)


def test_an_emulator_that_does_not_answer_is_a_transient_error(private_emulated: Emulated) -> None:
    emulated = private_emulated
    backend = _backend(emulated)
    emulated.process.stop()
    with pytest.raises(TransientBackendError, match="could not reach Azure ML"):
        backend.registry.list()


@pytest.fixture(scope="module")
def trained(seeded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained model's files (a copy of the seeded registry's version 1, alpha 0.4: what a training job writes).
    The endpoint and batch tests below register it as an upload: a training job of their own each (~10 s on the
    emulator) would test the jobs again, which the tests above do."""
    from tests.support.helpers import trained_copies

    return trained_copies(seeded_template, tmp_path_factory.mktemp("trained"))[0]


def _registered(backend: AzureMLBackend, trained: Path) -> ModelVersion:
    return backend.registry.register(MODEL, trained, tags={}, properties={}).model


def test_a_deployment_that_fails_to_start_is_deleted_and_names_the_reason(emulated: Emulated, trained: Path) -> None:
    backend = _backend(emulated)
    model = _registered(backend, trained)
    bundle = backend.bundles.build(model)
    (bundle.path / "code" / "score.py").write_text("def init():\n    raise RuntimeError('no model for you')\n")
    backend.endpoints.ensure("ep-failing")
    with pytest.raises(BackendError, match=r"creating deployment ep-failing/blue failed: .*no model for you"):
        backend.endpoints.add_deployment("ep-failing", "blue", bundle)
    assert [d.name for d in backend.client.online_deployments.list("ep-failing")] == []
    state = backend.endpoints.get("ep-failing")
    assert state is not None
    assert state.deployments == {}


def test_mirror_traffic_copies_requests_to_a_deployment_without_live_traffic(emulated: Emulated, trained: Path) -> None:
    backend = _backend(emulated)
    bundle = backend.bundles.build(_registered(backend, trained))
    endpoint = "ep-mirror"
    backend.endpoints.ensure(endpoint)
    backend.endpoints.add_deployment(endpoint, "blue", bundle)
    backend.endpoints.set_traffic(endpoint, {"blue": 100})
    backend.endpoints.add_deployment(endpoint, "green", bundle)
    assert backend.endpoints.set_mirror(endpoint, {"green": 50}) == {"green": 50}
    body = json.dumps({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}).encode()
    answers = [backend.endpoints.invoke(endpoint, body) for _ in range(40)]
    assert {a.headers["azureml-model-deployment"] for a in answers} == {"blue"}  # mirrored answers are dropped
    deadline = time.monotonic() + 10
    while not any(line.get("mirror") for line in _request_log(emulated)) and time.monotonic() < deadline:
        time.sleep(0.3)  # mirrored requests are answered after the live one, and logged five times a second
    lines = _request_log(emulated)
    mirrored = [line for line in lines if line.get("mirror")]
    assert mirrored
    assert {line["deployment"] for line in mirrored} == {"green"}
    assert all(line["status"] == 200 for line in mirrored)
    # a deployment given live traffic stops being mirrored
    backend.endpoints.set_traffic(endpoint, {"blue": 50, "green": 50})
    assert backend.client.online_endpoints.get(endpoint).mirror_traffic in ({}, None)
    backend.endpoints.set_traffic(endpoint, {"blue": 100, "green": 0})
    with pytest.raises(BackendError, match="mirror traffic sums to 60; at most 50 percent"):
        backend.endpoints.set_mirror(endpoint, {"green": 60})


def _request_log(emulated: Emulated) -> list[dict[str, Any]]:
    """Every request line the emulated endpoints' servers logged."""
    folder = emulated.home / "emulator" / "endpoints"
    return [
        json.loads(line)
        for path in folder.rglob("server.log")
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]


def test_keys_regenerate_and_an_aml_token_endpoint_answers_with_its_token(emulated: Emulated, trained: Path) -> None:
    backend = _backend(emulated)
    bundle = backend.bundles.build(_registered(backend, trained))
    body = json.dumps({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}).encode()
    backend.endpoints.ensure("ep-keys")
    backend.endpoints.add_deployment("ep-keys", "blue", bundle)
    backend.endpoints.set_traffic("ep-keys", {"blue": 100})
    old = backend.endpoints.key("ep-keys")
    backend.client.online_endpoints.begin_regenerate_keys("ep-keys", key_type="primary").result()
    fresh = _backend(emulated)  # no cached key
    assert fresh.endpoints.key("ep-keys") != old
    assert fresh.endpoints.invoke("ep-keys", body).status == 200  # the server serves on with its deployments
    stale = fresh.endpoints.invoke("ep-keys", body, headers={"authorization": f"Bearer {old}"})
    assert stale.status == 401

    tokens = _backend(emulated, aml_endpoint_auth_mode="aml_token")
    tokens.endpoints.ensure("ep-token")
    tokens.endpoints.add_deployment("ep-token", "blue", bundle)
    tokens.endpoints.set_traffic("ep-token", {"blue": 100})
    assert tokens.client.online_endpoints.get("ep-token").auth_mode == "aml_token"
    answer = tokens.endpoints.invoke("ep-token", body)
    assert answer.status == 200, answer.body


def test_a_bad_mini_batch_is_named_and_the_threshold_fails_the_batch_job(
    emulated: Emulated, tmp_path: Path, trained: Path
) -> None:
    """Also issue 22, points 1 and 2: a batch invocation is a pipeline job with one child step, `batchscoring`,
    which holds the `score` output and the logs (azure-ai-ml 1.35 `jobs.download`: "Batch Jobs are pipeline
    jobs with only one child"; Microsoft Learn's samples read `jobs.list(parent_job_name=...)`); its
    `predictions.csv` has no header, and our entry script's lines name their file.

    On two nodes (`MLOPS_AZUREML_BATCH_INSTANCE_COUNT=2`, issue 22 "Past one machine"): the deployment says
    `resources.instanceCount: 2`, the job's step runs two nodes, each in a process of its own with its log
    under `logs/sys/node/<node>/` (Microsoft Learn, "Troubleshoot batch endpoints"), and a bad mini-batch
    is reported as on one (the single-node path is the one `test_online` and `test_platform` run)."""
    backend = _backend(emulated, aml_batch_instance_count="2")
    model = _registered(backend, trained)
    good, bad = emulated.home / "good.csv", emulated.home / "bad.csv"
    write_sample_csv(good, for_scoring=True)
    lines = good.read_text().splitlines()
    bad.write_text("\n".join([lines[0], lines[1], "x" + lines[2], lines[3]]) + "\n")
    batches = backend.batch.plan([good, bad], 1000)
    assert len(batches) == 2

    results, failures = backend.batch.score_all(
        model, batches, emulated.home / "work-1", parallelism=2, error_threshold=-1
    )
    assert [(r.index, r.rows_in, r.rows_out) for r in results] == [(0, 442, 442)]
    assert list(failures) == [1]
    assert "part-000001.csv: column 'age', row 2: 'x-0.0018820165277906047' is not a number" in failures[1]
    [name] = [job for job in emulated.jobs() if job.startswith("batch-")]  # its step is not listed on its own
    client = backend.client
    parent = client.jobs.get(name)
    assert (parent.type, parent.status, parent.tags["azureml.batchrun"]) == ("pipeline", "Completed", "true")
    [step] = list(client.jobs.list(parent_job_name=name))
    assert (step.display_name, step.status) == ("batchscoring", "Completed")
    client.jobs.download(name, download_path=str(tmp_path / "parent"))  # the SDK's batch path: the step's output
    lines = (tmp_path / "parent" / "predictions.csv").read_text().splitlines()
    assert len(lines) == 442  # no header line; the bad file's mini-batch wrote none
    assert {line.split(",", 1)[0] for line in lines} == {"part-000000.csv"}
    assert (tmp_path / "parent" / "part-000001.error.txt").is_file()  # the entry script's record of the failure
    [put] = [
        r
        for r in emulated.process.requests(bodies=True)[emulated.since :]
        if r["method"] == "PUT" and "/batchEndpoints/" in r["path"] and "/deployments/" in r["path"]
    ]
    assert put["body"]["properties"]["resources"]["instanceCount"] == 2
    node_logs = sorted((emulated.home / "work-1" / "azureml-job").rglob("logs/sys/node/*/process000.txt"))
    assert [log.parent.name for log in node_logs] == ["0", "1"]
    pids = {re.search(r" pid (\d+) .*init\(\) done", log.read_text())[1] for log in node_logs}  # type: ignore[index]
    assert len(pids) == 2  # each node's init() ran in a process of its own

    with pytest.raises(JobFailedError, match=r"1 mini-batch\(es\) failed, over the deployment's error_threshold of 0"):
        backend.batch.score_all(model, batches, emulated.home / "work-2", parallelism=2, error_threshold=0)


def test_the_r_example_trains_as_a_command_job_and_registers(emulated: Emulated) -> None:
    """MLOpsPython's train_with_r.py, as the R package's own command: `Rscript models/diabetes_r/train.R` in
    the job's code snapshot, run by the emulator; its outputs (coefficients.json, metrics.json) come back."""
    from infra.settings import checkout_root

    package = checkout_root() / "models" / "diabetes_r"
    backend = _backend(emulated, model_package=str(package))
    spec = TrainSpec(job_name="train-r-1", data=_data(emulated), parameters={"test_fraction": 0.2}, package=package)
    output = backend.jobs.train(spec)
    assert json.loads((output.outputs / "coefficients.json").read_text())["r_version"].startswith("4.")
    assert output.metrics["mse"] > 0
    assert set(output.environment["libraries"]) == {"numpy", "pandas"}  # added by the pipeline: R wrote none
    job = backend.client.jobs.get("train-r-1")
    assert job.command.startswith("Rscript models/diabetes_r/train.R --data ${{inputs.training_data}}")
    registered = backend.registry.register("diabetes-r-test", output.outputs, tags={}, properties={})
    assert registered.model.version == 1
    assert (backend.bundles.files(registered.model) / "coefficients.json").is_file()
    environment = backend.client.environments.get(
        job.environment.split(":")[-2], version=job.environment.split(":")[-1]
    )
    assert "r-base=4.2" in str(environment.conda_file)  # the package's [train] conda: R on Azure ML's image

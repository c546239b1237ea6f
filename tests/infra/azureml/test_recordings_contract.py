"""Recordings as the reference (issue 22, "How to keep it true"): our client and the emulator against real traffic.

`recordings.json` holds, per operation our Azure ML backend performs, the request and the response that the
azure-ai-ml SDK's own e2e tests recorded against Azure (repository Azure/azure-sdk-assets; each entry names
its file, commit and entry index, or the entry's correlation id where the index was not counted). Two checks per
operation:

- **client**: the backend drives the real `MLClient` against the emulator; the request it sent (from the
  emulator's log, `GET /emulator/requests?bodies=true`) must have the recorded method, path, api-version
  and body skeleton (keys, nesting, value types), but for the differences listed in `CLIENT_ALLOWED`.
- **emulator**: the recorded request, names adapted to the test's workspace, sent to the emulator, must be
  answered with the recorded status, every recorded key (types as recorded) and the recorded value of
  each of Azure's constants (`constants` in the file), but for the keys in `ANSWER_OMITTED`.

Operations without a usable recording are listed under `not_covered` in the file, with the reason and,
for batch deployments (no recording in the SDK's e2e tests) and an online deployment's DELETE (none in the
recordings read), the documentation that is the reference: their tests, against it, are beside the others
(`BATCH_DEPLOYMENT_DOCUMENTED`, `ONLINE_DEPLOYMENT_DELETE_DOCUMENTED`); for the job cancel, run history's details
and children, the batch invoke and the data outputs' URIs (batchGetResolvedUris), in no recording read, the
azure-ai-ml SDK's source is (each test's comment names it).
"""

from __future__ import annotations

import json
import re
import ssl
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.ai.ml.constants._common import LROConfigurations

from azureml_emulator.process import EmulatorProcess
from infra.azureml import AzureMLBackend, entities
from infra.azureml.client import finished
from infra.azureml.monitoring import legacy_schedule_name
from infra.backend import TrainSpec
from infra.factory import open_backend
from models.diabetes import train
from models.diabetes.data import write_sample_csv
from tests.infra.azureml.monitors import earlier_monitor
from tests.support.emulator import Emulated, join_emulator

_FILE = json.loads((Path(__file__).parent / "recordings.json").read_text())
RECORDINGS: dict[str, Any] = _FILE["operations"]
RECORDED_WORKSPACE = (
    "/subscriptions/00000000-0000-0000-0000-000000000/resourceGroups/00000"
    "/providers/Microsoft.MachineLearningServices/workspaces/00000"
)

# What our client sends that the recorded request did not hold, or the other way round: {operation: {path: reason}}.
# A path is a dotted key path in the body (`*` for a name the user chose); "api-version" is the query parameter.
_NEWER_SDK = "azure-ai-ml 1.35 asks the same operation in a newer api-version than 1.32 recorded"
CLIENT_ALLOWED: dict[str, dict[str, str]] = {
    "workspace_get": {},
    "datastore_get": {"api-version": _NEWER_SDK},
    "datastore_list_secrets": {"api-version": _NEWER_SDK},
    "code_start_pending_upload": {},
    "code_version_put": {
        "properties.isArchived": "azure-ai-ml 1.35 leaves it out of an anonymous (content-hashed) code version; "
        "1.12 recorded it false, the default",
    },
    "data_version_put": {},
    "environment_version_put": {},
    "model_version_put": {
        "properties.flavors": "an MLflow model's flavors; ours is a custom_model, which has none",
    },
    "command_job_put": {
        "properties.codeId": "the recorded job runs an inline command without code; ours ships a code snapshot",
        "properties.inputs.*.mode": "sent only when set: the recorded input chose ReadOnlyMount, ours the default",
        "properties.description": "sent only when set (the user's text)",
        "properties.limits": "sent only when set: our job has a time limit (set_limits)",
    },
    "compute_put": {
        "properties.description": "sent only when set (the user's text)",
        "properties.properties.userAccountCredentials": "sent only when set: the recorded cluster set an admin user",
        "tags": "sent only when set (ours tags the cluster mlops.managed)",
    },
    "online_endpoint_put": {},
    "batch_endpoint_put": {},
    "online_deployment_put": {
        "properties.description": "sent only when set: the recorded deployment had a description, ours has none",
    },
    "online_deployment_get": {},
    "model_version_archive": {
        "properties.description": "sent only when set: the archive sends the version back whole, with our description",
    },
    "mfe_operation_status": {},
    "job_get": {},
    "online_endpoint_list_keys": {},
    "online_endpoint_delete": {},
    "run_data": {},
    "arm_deployment_put": {},
    "arm_operation_status": {},
    "schedule_disable": {
        "properties.action.*": "the recorded schedule's action is a job's (CreateJob, its definition not kept); ours is "
        "the monitor's (CreateMonitor): the envelope is the contract",
        "properties.trigger.*": "the recorded schedule runs on a cron expression; the monitor recurs daily "
        "(RecurrenceTrigger: frequency, interval, schedule)",
        "properties.description": "sent only when set: the monitor has none",
        "properties.displayName": "sent only when set: the monitor has none",
    },
    "schedule_get": {},
    "online_endpoint_token": {},
    "workspace_delete": {"api-version": _NEWER_SDK},
    "workspace_operation_status": {"api-version": _NEWER_SDK},
}
# Maps whose keys the user (or Azure, for an asset's own properties) chose: compared entry by entry, each against the
# recorded entry of the same name, else against the first recorded one. A compute's `properties.properties` is not one.
FREE_FORM = {
    "tags",
    "properties.tags",
    "properties.properties",
    "properties.inputs",
    "properties.outputs",
    "properties.environmentVariables",
    "properties.flavors",
    "properties.parameters",
    "runMetadata.tags",
    "runMetadata.properties",
    "properties.template.parameters",  # an ARM template's parameters and variables, named by its author (the SDK)
    "properties.template.variables",
    "properties.parameters.tagValues.value",  # the workspace's tags, the user's
}
STRUCTURED = {"compute_put": {"properties.properties"}}
# Recorded response keys the emulator leaves out on purpose: {operation: {path: reason}}.
ANSWER_OMITTED: dict[str, dict[str, str]] = {
    "workspace_get": {
        "properties.sdkTelemetryAppInsightsKey": "it would make the SDK send telemetry to Application Insights",
        "properties.notebookInfo.resourceId": "the emulator hosts no notebooks (notebookInfo is null)",
        "properties.notebookInfo.fqdn": "as above",
        "properties.notebookInfo.isPrivateLinkEnabled": "as above",
        "properties.notebookInfo.notebookPreparationError": "as above",
    },
}
# Disagreements found, not covered until decided (see the report in the commit that added them): {operation: evidence}.
# (listSecrets asked for an expirable secret, found answering AccountKey where Azure answered Sas, is settled: the
# emulator answers an account SAS its blob service checks, and the replay below holds it to the recorded `Sas`.)
ANSWER_FINDINGS: dict[str, str] = {}
_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def differences(
    recorded: Any, ours: Any, *, both_ways: bool, free_form: set[str] = FREE_FORM, path: str = ""
) -> list[str]:
    """Where `ours` lacks a recorded key (or, `both_ways`, holds one not recorded) or holds a value of another
    type than the recorded one (where both are set); [] when alike."""
    theirs = "sent" if both_ways else "emulator"
    if isinstance(recorded, dict) and isinstance(ours, dict) and path in free_form:
        templates = [v for v in recorded.values() if isinstance(v, dict)]
        found: list[str] = []
        for key, value in ours.items():
            if templates and isinstance(value, dict):
                template = recorded.get(key, templates[0])
                found += differences(template, value, both_ways=both_ways, free_form=free_form, path=f"{path}.{key}")
        return found
    if isinstance(recorded, dict) and isinstance(ours, dict):
        found = []
        for key in [*recorded, *(k for k in ours if k not in recorded and both_ways)]:
            where = f"{path}.{key}" if path else key
            if key not in ours:
                found.append(f"{where}: recorded, not {theirs}")
            elif key not in recorded:
                found.append(f"{where}: {theirs}, not recorded")
            elif recorded[key] is not None and ours[key] is not None:
                found += differences(recorded[key], ours[key], both_ways=both_ways, free_form=free_form, path=where)
        return found
    if isinstance(recorded, list) and isinstance(ours, list):
        if not (recorded and ours):
            return []
        return differences(recorded[0], ours[0], both_ways=both_ways, free_form=free_form, path=f"{path}[0]")
    kinds = _TYPES.get(type(recorded), "null"), _TYPES.get(type(ours), "null")
    return [] if kinds[0] == kinds[1] else [f"{path or '<body>'}: recorded {kinds[0]}, {theirs} {kinds[1]}"]


def _free_form(operation: str) -> set[str]:
    return FREE_FORM - STRUCTURED.get(operation, set())


def _unexplained(problems: list[str], allowed: dict[str, str]) -> list[str]:
    return [p for p in problems if not any(fnmatchcase(p.split(":")[0], pattern) for pattern in allowed)]


def path_pattern(template: str, workspace: str) -> re.Pattern[str]:
    """The recorded path template as a pattern of paths in `workspace` (`{name}` stands for one segment; `{SUB}` is
    the workspace's subscription, for the operations Azure tracks per subscription and region)."""
    rest = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(_scoped(template, workspace)))
    return re.compile(rest + "$")


def _group(workspace: str) -> str:
    return workspace.split("/resourceGroups/")[1].split("/")[0]


def _scoped(template: str, workspace: str) -> str:
    return template.replace("{WS}", workspace).replace("{SUB}", workspace.split("/resourceGroups/")[0])


# ---- the client side: the backend's own calls against the emulator ----


@pytest.fixture(scope="module")
def emulated_workspace(emulator_server: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield join_emulator(emulator_server, tmp_path_factory.mktemp("contract") / "mlops", patch)


MODEL = "contract-model"
BATCH_ROWS = 4  # the batch job's input: a few rows, one mini-batch
# Which of the requests to a recorded path is the recorded operation, where several operations share the path.
SENT_WHEN = {
    "schedule_get": lambda r: r.get("monitor_step", False),
    "schedule_disable": lambda r: r.get("monitor_step", False),
    "model_version_put": lambda r: not _at(r["body"], "properties.isArchived"),
    "model_version_archive": lambda r: _at(r["body"], "properties.isArchived") is True,
}


@pytest.fixture(scope="module")
def client_log(emulated_workspace: Emulated) -> list[dict[str, Any]]:
    """Every request our backend sent (with its body) while it did each operation of the file once."""
    emulated = emulated_workspace
    backend = open_backend(emulated.settings())
    assert isinstance(backend, AzureMLBackend)
    data = emulated.home / "data.csv"
    write_sample_csv(data)
    # a command job: compute, environment, data and code first; canceled at once (its run is not the point)
    backend.jobs._submit(TrainSpec(job_name="contract-job", data=data, parameters={"alpha": 0.4}), "contract-job")
    # polled every 0.2 s: a job already started is canceled in a poll or two, and the SDK's default is 30 s
    backend.client.jobs.begin_cancel("contract-job", polling_interval=0.2).result()
    assert backend.jobs.wait_for("contract-job", 60) == "Canceled"  # our client's wait: jobs.get
    # what our client reports of a job that did not complete: jobs.stream (run history's details), jobs.download (rundata)
    assert backend.jobs.failure("contract-job", "Canceled").startswith("training job contract-job canceled")
    # a model trained here (the training job above was canceled): registered, served by a deployment, archived
    (emulated.home / "parameters.json").write_text(json.dumps({"training": {"alpha": 0.4}}))
    model = emulated.home / "model"
    train.run(data, emulated.home / "parameters.json", model)
    backend.registry.register(MODEL, model, tags={"stage": "test"}, properties={"source": "contract"})
    backend.endpoints.ensure("contract-endpoint")
    backend.endpoints.add_deployment("contract-endpoint", "blue", backend.bundles.build(backend.registry.get(MODEL, 1)))
    assert backend.endpoints.key("contract-endpoint")  # listKeys
    # an endpoint of MLOPS_AZUREML_ENDPOINT_AUTH_MODE=aml_token, whose caller our client asks a token (get_keys: token)
    tokens = open_backend(emulated.settings(aml_endpoint_auth_mode="aml_token"))
    assert isinstance(tokens, AzureMLBackend)
    tokens.endpoints.ensure("contract-token")
    assert tokens.endpoints.key("contract-token")
    # our client's own deployment GET (what it reads after a failed create), beside the SDK poller's final GET
    assert backend.endpoints._deployment_state("contract-endpoint", "blue") == "Succeeded"
    # the batch endpoint, its scoring cluster and a deployment of the version (documented, not recorded: see below),
    # invoked by our client's own score_all over a few rows (one mini-batch): the invoke POST to the scoring URI and
    # run history's children of the batch job (its step), from which score_all downloads the output
    scoring = emulated.home / "scoring.csv"
    write_sample_csv(scoring, for_scoring=True)
    scoring.write_text("\n".join(scoring.read_text().splitlines()[: BATCH_ROWS + 1]) + "\n")
    batches = backend.batch.plan([scoring], 1000)
    results, failures = backend.batch.score_all(
        backend.registry.get(MODEL, 1), batches, emulated.home / "batch", parallelism=1, error_threshold=1
    )
    assert ([(r.rows_in, r.rows_out) for r in results], failures) == ([(BATCH_ROWS, BATCH_ROWS)], {})
    # the model monitor an earlier version left (enabled, tagged mlops.managed), as a stand-in created here; our
    # client's monitor step reads it and disables it (schedules.get, then begin_disable: a GET and a PUT)
    # (as test_online builds it, with the preprocessing component the emulator asks of custom data: it refuses the
    # monitor without one, which Azure took, then failed every run)
    monitor = earlier_monitor(
        backend,
        name=legacy_schedule_name(backend.settings.endpoint_name),
        endpoint="contract-endpoint",
        component="azureml:production_data_preprocessing:1",
    )
    backend.client.schedules.begin_create_or_update(monitor).result()
    start = len(emulated.process.requests())
    assert backend.monitoring.ensure(backend.registry.get(MODEL, 1), {}) is None
    end = len(emulated.process.requests())
    backend.registry.archive(MODEL, 1)
    backend.endpoints.remove_deployment("contract-endpoint", "blue")  # a deployment DELETE (documented, see below)
    backend.endpoints.ensure("contract-deleted")  # an endpoint of its own to delete: the replays use the first
    assert backend.endpoints.delete("contract-deleted")
    # a workspace of our client's (entities.workspace, as `ensure` creates it when missing): the ARM deployment PUT
    # and its operationStatuses poll. The SDK sleeps LROConfigurations.SLEEP_TIME (5 s) between its looks at the
    # deployment and polls every POLL_INTERVAL (5 s): shortened here, as begin_cancel's polling_interval above.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LROConfigurations, "SLEEP_TIME", 0.1)
        patch.setattr(LROConfigurations, "POLL_INTERVAL", 0.1)
        created = entities.workspace(emulated.settings(azure_workspace_name="contract-created"))
        assert finished(backend.client.workspaces.begin_create(created), 60, "creating the workspace").name
        # and torn down by our client's own teardown (`mlops cleanup --teardown`: AzureMLWorkspace.delete): its
        # endpoints and clusters (none there: a GET each, 404), then workspaces.begin_delete(delete_dependent_resources
        # =True, permanently_delete=True): the dependent resources' DELETEs, the workspace's DELETE and its poll
        torn = open_backend(emulated.settings(azure_workspace_name="contract-created"))
        assert isinstance(torn, AzureMLBackend)
        assert any(
            change.startswith("deleted workspace contract-created permanently") for change in torn.workspace.delete()
        )
    log: list[dict[str, Any]] = emulated.process.requests(bodies=True)
    for request in log[start:end]:
        request["monitor_step"] = True  # sent by our client's monitor step, not by the stand-in's creation
    return log[emulated.since :]


@pytest.fixture(scope="module")
def sent(emulated_workspace: Emulated, client_log: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The first request of each recorded operation that our backend sent, as the emulator logged it."""
    emulated, log = emulated_workspace, client_log
    found = {}
    for operation, recording in RECORDINGS.items():
        request = recording["request"]
        pattern = path_pattern(request["path"], emulated.workspace)
        chosen = SENT_WHEN.get(operation, lambda _: True)
        matching = [r for r in log if r["method"] == request["method"] and pattern.match(r["path"]) and chosen(r)]
        # the SDK reads some resources in more than one api-version: the recorded one's request, if it sent one
        matching.sort(key=lambda r: r["api_version"] != request["api_version"])
        if matching:
            found[operation] = matching[0]
    return found


@pytest.mark.parametrize("operation", sorted(RECORDINGS))
def test_the_client_sends_the_recorded_request(operation: str, sent: dict[str, dict[str, Any]]) -> None:
    recorded = RECORDINGS[operation]["request"]
    assert operation in sent, f"the backend sent no {recorded['method']} {recorded['path']}"
    ours, allowed = sent[operation], CLIENT_ALLOWED[operation]
    problems = differences(recorded["body"], ours["body"], both_ways=True, free_form=_free_form(operation))
    if ours["api_version"] != recorded["api_version"]:
        problems.append(f"api-version: recorded {recorded['api_version']}, sent {ours['api_version']}")
    unexplained = _unexplained(problems, allowed)
    assert unexplained == [], f"{operation} differs from {RECORDINGS[operation]['source']['recording']}"
    unused = [pattern for pattern in allowed if not any(fnmatchcase(p.split(":")[0], pattern) for p in problems)]
    assert unused == [], f"{operation}: allowances no longer needed, remove them"


# ---- the emulator side: the recorded requests, replayed ----

# The names each replayed request uses in the test's workspace (the recorded ones' stand-ins).
REPLAY_NAMES: dict[str, dict[str, str]] = {
    "workspace_get": {},
    "datastore_get": {"name": "workspaceblobstore"},
    "datastore_list_secrets": {"name": "workspaceblobstore"},
    "code_start_pending_upload": {"name": "replayed-code", "version": "2"},
    "code_version_put": {"name": "replayed-code", "version": "2"},
    "data_version_put": {"name": "replayed-data", "version": "2"},
    "environment_version_put": {"name": "replayed-env", "version": "1"},
    "model_version_put": {"name": "replayed-model", "version": "3"},
    "command_job_put": {"name": "replayed-job"},
    "compute_put": {"name": "replayed-cluster"},
    "online_endpoint_put": {"name": "replayed-endpoint"},
    "batch_endpoint_put": {"name": "replayed-batch"},
    "online_deployment_put": {"endpoint": "contract-endpoint", "name": "replayed-deployment"},
    "online_deployment_get": {"endpoint": "contract-endpoint", "name": "replayed-deployment"},
    "model_version_archive": {"name": "replayed-archived", "version": "1"},
    "mfe_operation_status": {},
    "job_get": {"name": "replayed-job"},
    "online_endpoint_list_keys": {"name": "contract-endpoint"},
    "online_endpoint_delete": {"name": "replayed-endpoint"},
    "run_data": {},
    "arm_deployment_put": {"name": "replayed-ws-deployment"},
    "arm_operation_status": {},
    "schedule_disable": {"name": "replayed-schedule"},
    "schedule_get": {"name": "replayed-schedule"},
    "online_endpoint_token": {"name": "contract-token"},
    # the workspace the replayed ARM deployment (arm_deployment_put) created, by its recorded name, deleted as recorded
    "workspace_delete": {"name": "e2etest_test_863132474581"},
    "workspace_operation_status": {},
}
# Recorded ids of assets the test workspace does not hold, replaced by those our client's request named: {operation: paths}.
ADOPTED = {
    "online_deployment_put": [
        "properties.codeConfiguration.codeId",
        "properties.environmentId",
        "properties.model",
    ],
    "run_data": ["runId"],  # the run our client's download asked for (the canceled job)
}
# Requests whose path is the URL an earlier answer named in a header: {operation: (earlier operation, header)}.
FOLLOWED = {
    "mfe_operation_status": ("online_endpoint_put", "Azure-AsyncOperation"),
    "arm_operation_status": ("arm_deployment_put", "Azure-AsyncOperation"),
    "workspace_operation_status": ("workspace_delete", "Azure-AsyncOperation"),
}


def _adapted(value: Any, workspace: str) -> Any:
    """A recorded body with the recorded workspace's ids turned into the test workspace's."""
    text = json.dumps(value).replace(RECORDED_WORKSPACE, workspace)
    text = text.replace("/computes/testCompute", "/computes/train-cluster")  # the cluster the client side created
    return json.loads(text)


def _replayed_body(operation: str, body: Any, workspace: str, sent: dict[str, dict[str, Any]]) -> Any:
    if body is None:
        return None
    body = _adapted(body, workspace)
    for path in ADOPTED.get(operation, []):
        *parents, key = path.split(".")
        (_at(body, ".".join(parents)) if parents else body)[key] = _at(sent[operation]["body"], path)
    return body


@pytest.fixture(scope="module")
def answers(emulated_workspace: Emulated, sent: dict[str, Any]) -> dict[str, httpx.Response]:
    """The emulator's answer to each recorded request (in the file's order: the code's upload before its PUT),
    sent after the client side's (`sent`), whose training cluster, endpoint and assets the replayed requests name.
    A request recorded after another of the same test (`before`: the version an archive changes) follows it."""
    emulated = emulated_workspace
    trust = ssl.create_default_context(cafile=str(emulated.home / "emulator" / "tls" / "ca.pem"))
    found: dict[str, httpx.Response] = {}
    with httpx.Client(base_url=emulated.process.url, verify=trust, headers={"Authorization": "Bearer t"}) as client:
        for operation, recording in RECORDINGS.items():
            request = recording["request"]
            if operation in FOLLOWED:
                earlier, header = FOLLOWED[operation]
                path = httpx.URL(found[earlier].headers[header]).path
            else:
                path = _scoped(request["path"], emulated.workspace).format(
                    group=_group(emulated.workspace), **REPLAY_NAMES[operation]
                )
            params = {"api-version": request["api_version"], **request.get("query", {})}
            before = request.get("before")
            if before is not None:
                answer = client.request(
                    before["method"], path, params=params, json=_adapted(before["body"], emulated.workspace)
                )
                assert answer.status_code == before["status"], f"{operation} (before): {answer.text}"
            body = _replayed_body(operation, request["body"], emulated.workspace, sent)
            found[operation] = client.request(request["method"], path, params=params, json=body)
        client.post(f"{emulated.workspace}/jobs/replayed-job/cancel", params={"api-version": "2025-01-01-preview"})
    return found


def _at(body: Any, path: str) -> Any:
    for key in path.split("."):
        body = body.get(key) if isinstance(body, dict) else None
    return body


@pytest.mark.parametrize("operation", sorted(set(RECORDINGS) - set(ANSWER_FINDINGS)))
def test_the_emulator_answers_the_recorded_request_as_recorded(
    operation: str, answers: dict[str, httpx.Response]
) -> None:
    recorded, answer = RECORDINGS[operation]["response"], answers[operation]
    assert answer.status_code == recorded["status"], answer.text
    missing = [header for header in recorded.get("headers", []) if not answer.headers.get(header)]
    assert missing == [], f"{operation}: recorded headers not answered (a poller follows them)"
    if recorded["body"] is None:
        return  # a body Azure answered without (a DELETE's 202): the status is the contract
    ours, omitted = answer.json(), ANSWER_OMITTED.get(operation, {})
    problems = _unexplained(
        differences(recorded["body"], ours, both_ways=False, free_form=_free_form(operation)), omitted
    )
    problems += [
        f"{path}: recorded {_at(recorded['body'], path)!r}, emulator {_at(ours, path)!r}"
        for path in recorded["constants"]
        if _at(ours, path) != _at(recorded["body"], path)
    ]
    assert problems == [], f"{operation} differs from {RECORDINGS[operation]['source']['recording']}"


# ---- the ARM deployment's parameters: the names our client passes, against the recorded ones ----

# The template itself is the SDK's (azure/ai/ml/_arm_deployments/arm_templates/workspace_base.json), compared by its
# top-level keys only (arm_deployment_put); the parameters passed to it are compared here by name, beside their value
# types (free-form entries of properties.parameters, above).
_NEWER_TEMPLATE = "azure-ai-ml 1.35's workspace template takes a parameter 1.17's (recorded) did not"
ARM_PARAMETERS_ALLOWED = dict.fromkeys(
    (
        "allowRoleAssignmentOnRG",
        "associatedResourcePNA",
        "provisionNetworkNow",
        "storageAccountSubscriptionId",
        "systemDatastoresAuthMode",
    ),
    _NEWER_TEMPLATE,
)


def test_the_client_passes_the_recorded_workspace_template_parameters(sent: dict[str, dict[str, Any]]) -> None:
    recorded = set(RECORDINGS["arm_deployment_put"]["request"]["body"]["properties"]["parameters"])
    ours = set(sent["arm_deployment_put"]["body"]["properties"]["parameters"])
    unexplained = sorted((recorded ^ ours) - set(ARM_PARAMETERS_ALLOWED))
    assert unexplained == [], (
        f"passed but not recorded: {sorted(ours - recorded)}; recorded, not passed: {sorted(recorded - ours)}"
    )


# ---- batch deployments: no recording, the documentation is the reference ----

# The SDK's e2e tests recorded no batch deployment write (batch_services/e2etests/* create endpoints and run jobs),
# so the REST reference is the documentation: Microsoft Learn, Azure Machine Learning REST API, "Batch Deployments -
# Create Or Update" (https://learn.microsoft.com/en-us/rest/api/azureml/batch-deployments/create-or-update) and the
# same model's BatchDeploymentProperties as Learn documents it for @azure/arm-machinelearning (compute,
# deploymentConfiguration, errorThreshold, loggingLevel, maxConcurrencyPerInstance, miniBatchSize, model,
# outputAction, outputFileName, provisioningState, resources, retrySettings), with what every endpoint deployment
# holds (EndpointDeploymentPropertiesBase: codeConfiguration, description, environmentId, environmentVariables,
# properties; codeConfiguration as recorded for online deployments). The batch invoke (a POST to the endpoint's
# scoring URI) is checked against the SDK's source, below (BATCH_JOB_SCHEMA).
BATCH_DEPLOYMENT_DOCUMENTED = {
    "": {"identity", "kind", "location", "properties", "sku", "tags"},
    "properties": {
        "codeConfiguration",
        "compute",
        "deploymentConfiguration",
        "description",
        "environmentId",
        "environmentVariables",
        "errorThreshold",
        "loggingLevel",
        "maxConcurrencyPerInstance",
        "miniBatchSize",
        "model",
        "outputAction",
        "outputFileName",
        "properties",
        "provisioningState",
        "resources",
        "retrySettings",
    },
    "properties.codeConfiguration": {"codeId", "scoringScript"},
}
BATCH_DEPLOYMENT = re.compile(r"/batchEndpoints/[^/]+/deployments/[^/]+$")


def test_the_batch_deployment_put_holds_only_documented_properties(client_log: list[dict[str, Any]]) -> None:
    puts = [r for r in client_log if r["method"] == "PUT" and BATCH_DEPLOYMENT.search(r["path"])]
    assert puts, "the backend sent no batch deployment PUT"
    undocumented = [
        f"{where}.{key}".lstrip(".")
        for where, documented in BATCH_DEPLOYMENT_DOCUMENTED.items()
        for key in (puts[0]["body"] if not where else _at(puts[0]["body"], where)) or {}
        if key not in documented
    ]
    assert undocumented == []


def test_the_emulator_answers_the_batch_deployment_with_a_documented_provisioning_state(
    emulated_workspace: Emulated, client_log: list[dict[str, Any]]
) -> None:
    put = next(r for r in client_log if r["method"] == "PUT" and BATCH_DEPLOYMENT.search(r["path"]))
    answer = emulated_workspace.process.get(f"{put['path']}?api-version={put['api_version']}")
    # DeploymentProvisioningState, as the REST reference lists it
    documented = {"Creating", "Deleting", "Scaling", "Updating", "Succeeded", "Failed", "Canceled"}
    assert answer["properties"]["provisioningState"] in documented
    assert set(answer["properties"]) >= set(put["body"]["properties"]) - {"properties"}


# ---- online deployment DELETE: no recording read, the documentation is the reference ----

# The recordings read (test_online_deployment*.json) delete the endpoint, never a deployment on its own, so the
# reference is the documentation: Microsoft Learn, Az.MachineLearningServices, "MachineLearningServices.
# OnlineDeploymentsDelete" ("Delete Inference Endpoint Deployment (asynchronous)": onOk, onNoContent) and
# "IOnlineDeploymentsDeleteAcceptedResponseHeaders" (its 202 Accepted); the REST reference, "Online Deployments -
# Delete" (https://learn.microsoft.com/en-us/rest/api/azureml/online-deployments/delete), was not read. Likely, as
# the recorded endpoint DELETE (online_endpoint_delete) answered 202 with Azure-AsyncOperation and Location headers.
ONLINE_DEPLOYMENT_DELETE_DOCUMENTED = {200, 202, 204}
ONLINE_DEPLOYMENT = re.compile(r"/onlineEndpoints/[^/]+/deployments/[^/]+$")


def test_the_client_deletes_an_online_deployment_as_documented(client_log: list[dict[str, Any]]) -> None:
    deletes = [r for r in client_log if r["method"] == "DELETE" and ONLINE_DEPLOYMENT.search(r["path"])]
    assert deletes, "the backend sent no online deployment DELETE"
    # the api-version of the deployment PUT and GET the recordings hold (online_deployment_put, online_deployment_get)
    assert deletes[0]["api_version"] == RECORDINGS["online_deployment_get"]["request"]["api_version"]
    assert not deletes[0]["body"]


def test_the_emulator_answers_an_online_deployment_delete_as_documented(
    emulated_workspace: Emulated, answers: dict[str, httpx.Response]
) -> None:
    """The replayed deployment (online_deployment_put's), deleted: a documented status, and for 202 the header
    its poller follows; then it is gone (a GET answers 404)."""
    emulated = emulated_workspace
    path = _scoped(RECORDINGS["online_deployment_get"]["request"]["path"], emulated.workspace).format(
        **REPLAY_NAMES["online_deployment_get"]
    )
    params = {"api-version": RECORDINGS["online_deployment_get"]["request"]["api_version"]}
    trust = ssl.create_default_context(cafile=str(emulated.home / "emulator" / "tls" / "ca.pem"))
    with httpx.Client(base_url=emulated.process.url, verify=trust, headers={"Authorization": "Bearer t"}) as client:
        answer = client.delete(path, params=params)
        assert answer.status_code in ONLINE_DEPLOYMENT_DELETE_DOCUMENTED, answer.text
        if answer.status_code == 202:
            assert answer.headers.get("Azure-AsyncOperation") or answer.headers.get("Location"), "a 202 names its poll"
        for _ in range(100):  # gone within 10 s (a 202's removal may finish after the answer)
            if client.get(path, params=params).status_code == 404:
                break
            time.sleep(0.1)
        assert client.get(path, params=params).status_code == 404


# ---- job cancel: no recording read, the SDK's generated client is the reference ----

# No recording read holds a job cancel (command_job/*), and the REST reference, "Jobs - Cancel", was not read: the
# reference is azure-ai-ml 1.35's generated client, azure/ai/ml/_restclient/arm_ml_service/operations/_operations.py,
# JobsOperations._cancel_initial (POST {WS}/jobs/{id}/cancel, no body; 200 or 202, a 202's Location and Retry-After
# read for its poll). The operationResults poll the Location names is not checked (not_covered).
JOB_CANCEL_DOCUMENTED = {200, 202}
JOB_CANCEL = re.compile(r"/jobs/[^/]+/cancel$")


def test_the_client_cancels_a_job_and_the_emulator_answers_as_the_sdk_expects(
    client_log: list[dict[str, Any]],
) -> None:
    cancels = [r for r in client_log if r["method"] == "POST" and JOB_CANCEL.search(r["path"])]
    assert cancels, "the backend sent no job cancel"
    assert not cancels[0]["body"]
    assert cancels[0]["status"] in JOB_CANCEL_DOCUMENTED


# The cancel's poll: the GET of the Location its 202 named. Reference: azure-ai-ml 1.35's generated begin_cancel
# (_operations.py) polls with azure-mgmt-core's ARMPolling, which follows a Location-only 202 by GETs, 202 while
# running and 200 when done (azure-core's LocationPolling). No recording read holds one.
OPERATION_RESULT = re.compile(r"/operationResults/[^/]+$")


def test_the_client_polls_the_cancel_where_its_answer_said(client_log: list[dict[str, Any]]) -> None:
    polls = [r for r in client_log if r["method"] == "GET" and OPERATION_RESULT.search(r["path"])]
    assert polls, "the backend never polled the cancel's operationResults"
    assert all(not p["body"] for p in polls)
    assert {p["status"] for p in polls} <= {200, 202}
    assert polls[-1]["status"] == 200, "the poll ended before the operation did"


# Run history's details of a job: what `jobs.stream` reads (our client's report of a job that did not complete).
# No recording read holds one (not_covered); the reference is azure-ai-ml 1.35's source: operations/_run_operations.py
# `get_run_details` (GET /history/v1.0{WS}/runs/{id}/details through the generated runhistory client, no body)
# deserialized as `_restclient/runhistory/models/_models_py3.py` RunDetails, of which `stream_logs_until_completion`
# (operations/_job_ops_helper.py) reads `status`, `logFiles` and, for a failed run, `error`.
RUN_DETAILS = re.compile(r"^/history/v1\.0/.*/runs/([^/]+)/details$")
RUN_DETAILS_READ = {"runId", "status", "logFiles"}


def test_the_client_reads_run_details_and_the_emulator_answers_what_the_sdk_reads(
    client_log: list[dict[str, Any]], emulated_workspace: Emulated
) -> None:
    reads = [r for r in client_log if r["method"] == "GET" and RUN_DETAILS.search(r["path"])]
    assert reads, "the backend never read a job's run details"
    assert all(not r["body"] and r["status"] == 200 for r in reads)
    run = RUN_DETAILS.search(reads[0]["path"])
    assert run is not None
    trust = ssl.create_default_context(cafile=str(emulated_workspace.home / "emulator" / "tls" / "ca.pem"))
    with httpx.Client(
        base_url=emulated_workspace.process.url, verify=trust, headers={"Authorization": "Bearer t"}
    ) as c:
        answer = c.get(reads[0]["path"], params={"api-version": "v1.0"})
    assert answer.status_code == 200
    details = answer.json()
    assert set(details) >= RUN_DETAILS_READ
    assert details["runId"] == run[1]
    assert details["status"] in {
        "NotStarted",
        "Queued",
        "Preparing",
        "Running",
        "Finalizing",
        "CancelRequested",
        "Completed",
        "Failed",
        "Canceled",
    }
    assert isinstance(details["logFiles"], dict)


# ---- the file and the comparisons themselves ----


def test_every_operation_names_its_source_and_holds_no_secret() -> None:
    for operation, recording in RECORDINGS.items():
        assert {"recording", "commit", "entry"} <= set(recording["source"]), operation
        # an entry not counted is named by its correlation id (unique in a recording)
        assert recording["source"]["entry"] is not None or recording["source"].get("correlation_id"), operation
        before = recording["request"].get("before")
        assert before is None or {"entry", "method", "status", "body"} <= set(before), operation
        assert operation in CLIENT_ALLOWED, operation
        assert operation in REPLAY_NAMES, operation
    text = json.dumps(_FILE)
    for secret in ("Bearer ", "sig=", 'sasToken": "?', "ssh-rsa", "AccountKey=", "eyJ0"):
        assert secret not in text, secret
    for entry in _FILE["not_covered"].values():
        assert entry["reason"], entry
        assert entry.get("reference") or entry.get("recording"), entry


def test_the_comparison_catches_a_missing_an_extra_and_a_retyped_key() -> None:
    recorded = {"properties": {"isArchived": False, "tags": {}, "codeUri": "u"}, "location": "eastus"}
    same = {"properties": {"isArchived": True, "tags": {"a": "b"}, "codeUri": "v"}, "location": "westus"}
    assert differences(recorded, same, both_ways=True) == []
    assert differences(recorded, {"properties": same["properties"]}, both_ways=True) == ["location: recorded, not sent"]
    assert differences(recorded, {**recorded, "sku": {}}, both_ways=True) == ["sku: sent, not recorded"]
    assert differences(recorded, {**recorded, "sku": {}}, both_ways=False) == []
    retyped = {"properties": {"isArchived": "false", "tags": {}, "codeUri": "u"}, "location": "eastus"}
    assert differences(recorded, retyped, both_ways=False) == [
        "properties.isArchived: recorded boolean, emulator string"
    ]


# ---- batch invoke and run history's children: no recording, the SDK's source is the reference ----

# The batch recordings (batch_services/e2etests/test_batch_endpoint.py*) hold no invoke: ...test_batch_component.json
# has no entries, ...test_batch_endpoint_create.json (read to offset 16000 of 31440) creates, polls, reads and deletes
# an endpoint; ...test_mlflow_batch_endpoint_create_and_update.json was not read. Microsoft Learn's REST example of
# an invoke (properties.InputData) was not found in the search corpus. The reference is azure-ai-ml 1.35's source,
# operations/_batch_endpoint_operations.py `invoke`: it GETs the endpoint and POSTs to its properties.scoringUri
# {"properties": <BatchJobSchema's dump>}, whose keys are those of _schema/_deployment/batch/batch_job.py
# (inputData, name from job_name, properties: experimentName, ...); an input folder is `{"<input>": {"jobInputType":
# ..., "uri": ...}}`. The answer is read by entities/_deployment/batch_job.py BatchJob._from_rest_object: id, name,
# type and properties.status.
BATCH_JOB_SCHEMA = {
    "compute",
    "dataset",
    "errorThreshold",
    "inputData",
    "miniBatchSize",
    "name",
    "outputData",
    "outputDataset",
    "outputFileName",
    "retrySettings",
    "properties",
}


def _batch_invokes(client_log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in client_log if r["method"] == "POST" and r["path"].startswith("/inference/batch/")]


def test_the_client_invokes_the_batch_endpoint_as_the_sdk_does(
    emulated_workspace: Emulated, client_log: list[dict[str, Any]]
) -> None:
    invokes = _batch_invokes(client_log)
    assert len(invokes) == 1, "the backend sent no batch invoke (or more than one)"
    endpoint = emulated_workspace.settings().aml_batch_endpoint_name
    scoring = emulated_workspace.process.get(
        f"{emulated_workspace.workspace}/batchEndpoints/{endpoint}?api-version=2023-10-01"
    )["properties"]["scoringUri"]
    assert httpx.URL(scoring).path == invokes[0]["path"], "the invoke went elsewhere than the endpoint's scoringUri"
    body = invokes[0]["body"]
    assert set(body) == {"properties"}
    assert set(body["properties"]) <= BATCH_JOB_SCHEMA, sorted(set(body["properties"]) - BATCH_JOB_SCHEMA)
    assert body["properties"]["name"].startswith("batch-")  # our job name (_job_name)
    assert body["properties"]["properties"] == {"experimentName": endpoint}
    [(name, data)] = body["properties"]["inputData"].items()
    assert (name, set(data)) == ("data", {"jobInputType", "uri"})
    # the SDK resolves the datastore path to its long form (azureml://subscriptions/.../datastores/<name>/paths/...)
    assert data["uri"].startswith("azureml://")
    assert "/datastores/" in data["uri"]
    assert data["jobInputType"] == "UriFolder"  # BatchJobSchema's _JOB_DATA_TYPE_MAP for a uri_folder
    assert invokes[0]["status"] == 200


def test_the_emulator_answers_a_batch_invoke_with_what_the_sdk_reads(
    emulated_workspace: Emulated, client_log: list[dict[str, Any]]
) -> None:
    """Our client's invoke body, sent again under another job name (and that job canceled at once)."""
    emulated, sent = emulated_workspace, _batch_invokes(client_log)[0]
    body = {"properties": {**sent["body"]["properties"], "name": "replayed-batch-job"}}
    deployment = next(r for r in client_log if r["method"] == "PUT" and BATCH_DEPLOYMENT.search(r["path"]))
    trust = ssl.create_default_context(cafile=str(emulated.home / "emulator" / "tls" / "ca.pem"))
    headers = {"Authorization": "Bearer t", "azureml-model-deployment": deployment["path"].rsplit("/", 1)[1]}
    with httpx.Client(base_url=emulated.process.url, verify=trust, headers=headers) as client:
        answer = client.post(sent["path"], json=body)
        client.post(
            f"{emulated.workspace}/jobs/replayed-batch-job/cancel", params={"api-version": "2025-01-01-preview"}
        )
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert {"id", "name", "type", "properties"} <= set(job)
    assert job["name"] == "replayed-batch-job"
    assert job["id"].endswith("/replayed-batch-job")
    assert isinstance(job["properties"]["status"], str)


# Run history's children of a run (jobs.list(parent_job_name=...): our client's way to the batch job's step). No
# recording found (command_job/*register_output.json holds a single 400; the batch recordings none). The reference is
# azure-ai-ml 1.35's source: operations/_run_operations.py `get_run_children`, through the generated runhistory client
# (_restclient/runhistory/operations/_runs_operations.py `get_child`: GET /history/v1.0{WS}/runs/{runId}/children, no
# body, paged as models PaginatedRunList: value, continuationToken, nextLink), each Run read by
# entities/_job/base_job.py `_BaseJob._load_from_rest` (runId as the name, status, displayName, experimentId, ...).
RUN_CHILDREN = re.compile(r"^/history/v1\.0/.*/runs/([^/]+)/children$")


def test_the_client_lists_the_batch_jobs_step_and_the_emulator_answers_a_page_of_runs(
    emulated_workspace: Emulated, client_log: list[dict[str, Any]]
) -> None:
    reads = [r for r in client_log if r["method"] == "GET" and RUN_CHILDREN.search(r["path"])]
    assert reads, "the backend never listed a run's children"
    assert all(not r["body"] and r["status"] == 200 for r in reads)
    parent = RUN_CHILDREN.search(reads[0]["path"])
    assert parent is not None
    assert parent[1] == _batch_invokes(client_log)[0]["body"]["properties"]["name"]  # the batch job's
    trust = ssl.create_default_context(cafile=str(emulated_workspace.home / "emulator" / "tls" / "ca.pem"))
    with httpx.Client(
        base_url=emulated_workspace.process.url, verify=trust, headers={"Authorization": "Bearer t"}
    ) as c:
        answer = c.get(reads[0]["path"], params={"api-version": reads[0]["api_version"]})
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert set(page) >= {"value", "nextLink"}
    assert page["nextLink"] is None  # one page: the SDK would follow a link
    [step] = page["value"]
    assert {"runId", "status", "displayName", "experimentId", "parentRunId"} <= set(step)
    assert step["parentRunId"] == parent[1]
    assert step["runId"] != parent[1]
    assert step["status"] == "Completed"  # score_all downloaded its output


# ---- the workspace DELETE: our client's teardown, against the recording's (workspace_delete) ----

# The recorded begin_delete(delete_dependent_resources=True, permanently_delete=True) deleted the storage account and
# the key vault (generic ARM DELETEs, 200) before the workspace, whose DELETE carried forceToPurge=true
# (test_workspace_create_and_delete.json, correlation f6c5f9e2-...). The emulator's log keeps no query, so
# forceToPurge is checked by its effect: a workspace deleted without it is soft-deleted and its name refused for 14
# days (Microsoft Learn, "Workspace soft deletion"); the name of the one our client tore down is free at once.
DEPENDENT = re.compile(r"/providers/(Microsoft\.Storage/storageAccounts|Microsoft\.Keyvault/vaults)/[^/]+$", re.I)
WORKSPACE = re.compile(r"/workspaces/contract-created$")


def test_the_client_deletes_the_dependents_then_purges_the_workspace(
    emulated_workspace: Emulated, client_log: list[dict[str, Any]], answers: dict[str, httpx.Response]
) -> None:
    deletes = [r for r in client_log if r["method"] == "DELETE"]
    workspace = [i for i, r in enumerate(deletes) if WORKSPACE.search(r["path"])]
    assert len(workspace) == 1, "our client's teardown sent no workspace DELETE (or more than one)"
    dependents = {
        DEPENDENT.search(r["path"])[1].lower() for r in deletes[: workspace[0]] if DEPENDENT.search(r["path"])
    }
    assert dependents == {"microsoft.storage/storageaccounts", "microsoft.keyvault/vaults"}, "as recorded, before it"
    assert deletes[workspace[0]]["status"] == 202
    assert not deletes[workspace[0]]["body"]
    # the name is not held: an ARM deployment of a workspace by that name (the replayed one's body, renamed) is taken
    emulated = emulated_workspace
    put = RECORDINGS["arm_deployment_put"]["request"]
    body = _adapted(put["body"], emulated.workspace)
    body["properties"]["parameters"]["workspaceName"]["value"] = "contract-created"
    path = _scoped(put["path"], emulated.workspace).format(group=_group(emulated.workspace), name="contract-recreated")
    trust = ssl.create_default_context(cafile=str(emulated.home / "emulator" / "tls" / "ca.pem"))
    with httpx.Client(base_url=emulated.process.url, verify=trust, headers={"Authorization": "Bearer t"}) as client:
        answer = client.put(path, params={"api-version": put["api_version"]}, json=body)
    assert answer.status_code in {200, 201}, answer.text


# ---- the data outputs' URIs (jobs.download): no recording read, the SDK's generated client is the reference ----

# test_pipeline_job_download.json's rundata answer is followed by the job's GET, no batchGetResolvedUris (read at
# offset 160000 of 178698, likely as its failed pipeline had no output asset). The reference is azure-ai-ml 1.35's
# source: operations/_job_ops_helper.py get_job_output_uris_from_dataplane sends the output assets' ids through
# operations/_dataset_dataplane_operations.py get_batch_dataset_uris, the generated
# _restclient/dataset_dataplane/operations/_data_version_operations.py batch_get_resolved_uris (POST
# /data/v1.0{WS}/dataversion/batchGetResolvedUris, 200 only), body models BatchGetResolvedURIs ({"values": [str]}),
# answer BatchDataUriResponse ({"values": {asset id: DataUriV2Response {"uri", "type"}}}), of which it reads `uri`.
RESOLVED_URIS = re.compile(
    r"^/data/v1\.0/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/[^/]+/dataversion/batchGetResolvedUris$"
)


def test_the_client_resolves_output_uris_and_the_emulator_answers_what_the_sdk_reads(
    emulated_workspace: Emulated, client_log: list[dict[str, Any]]
) -> None:
    asks = [r for r in client_log if r["method"] == "POST" and RESOLVED_URIS.search(r["path"])]
    assert asks, "the backend never resolved a job output's URI"
    body = asks[0]["body"]
    assert set(body) == {"values"}
    assert body["values"]
    assert all(isinstance(v, str) for v in body["values"])
    assert asks[0]["status"] == 200
    trust = ssl.create_default_context(cafile=str(emulated_workspace.home / "emulator" / "tls" / "ca.pem"))
    with httpx.Client(
        base_url=emulated_workspace.process.url, verify=trust, headers={"Authorization": "Bearer t"}
    ) as c:
        answer = c.post(asks[0]["path"], params={"api-version": asks[0]["api_version"] or "v1.0"}, json=body)
    assert answer.status_code == 200, answer.text
    resolved = answer.json()
    assert set(resolved) == {"values"}
    assert isinstance(resolved["values"], dict)
    assert resolved["values"]
    assert set(resolved["values"]) <= set(body["values"])
    for uri in resolved["values"].values():
        assert set(uri) <= {"uri", "type"}
        assert isinstance(uri["uri"], str)
        assert uri["uri"].startswith("azureml://")  # the long form the SDK's download parses

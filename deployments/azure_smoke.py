"""`make azure-smoke`: one small round trip through your Azure ML workspace with the Azure ML backend.

    MLOPS_BACKEND=azureml AZURE_SUBSCRIPTION_ID=... AZURE_RESOURCE_GROUP=... AZUREML_WORKSPACE_NAME=... make azure-smoke
    ... make azure-smoke ONLINE=1     # also an online deployment (billed while it exists; deleted after)

What only a real workspace can settle, each step through the backend's own client code (`infra/azureml/`),
the code `mlops` runs:

1. reads the workspace (a wrong name or a missing role stops here, naming the setting to fix);
2. trains the diabetes sample as a command job on MLOPS_AZUREML_TRAIN_CLUSTER_NAME (the job is named
   `smoke-<time>`, so each smoke run submits one job);
3. registers its output as `<MLOPS_MODEL_NAME>-smoke` (the real model's versions are not touched);
4. downloads that version again (`models.download`: a model registered from a job output has been
   reported to download from the wrong place, azure-fidelity #15), checks its bytes are the ones
   registered, and has it predict the package's sample request here;
5. scores a small sample in a batch job on a batch endpoint of its own, `smoke-batch-<8 hex>` (named the
   way the real ones are, so unique in the region and never one of them), checks that every row got a
   prediction, then deletes that endpoint with its deployment;
6. with `--online` only: deploys the version to an online endpoint of its own, `smoke-online-<8 hex>`,
   sends the sample request, checks the answer against step 4's, and deletes the endpoint, also when a
   step failed; if that deletion fails, it says what is left behind and the command that deletes it;
7. archives the smoke version, so it stays out of listings.

Before each step it prints what the step costs: the billable resource (cluster and node count, instance
type and count from settings) and roughly how long, from Azure's own recordings where they show it
(endpoint ~1.5 min, deployment ~6.5 min, +10-20 min for a first image build). No price: none is known
here that a source backs (rates vary by region, agreement and date), so it says which meter bills.

With MLOPS_AZUREML_EMULATOR=1 it runs against the local emulator instead (the test suite does).
Exit codes: 0 done, 1 an Azure ML call or a check failed (the message names the step), 2 bad settings.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.azureml import AzureMLBackend, AzureMLEndpoints
from infra.azureml.batch import AzureMLBatch
from infra.azureml.endpoints import AzureMLBundles
from infra.azureml.entities import cluster_settings
from infra.backend import ModelVersion, TrainSpec
from infra.common.hashing import folder_sha256
from infra.common.train_inputs import write_sample_data
from infra.errors import BackendError, ConfigError, MLOpsError, TransientBackendError
from infra.factory import open_backend
from infra.settings import Settings, load_settings, regional_endpoint_name
from model import layout
from model.package import ContractError
from model.scripts import load_script

BATCH_ROWS = 20  # scored in two mini-batches: enough to show the split and the reassembly
BATCH_ROWS_PER_MINI_BATCH = 10
ONLINE_DEPLOYMENT = "smoke"
_NOT_READY = {502, 503, 504}  # a new deployment still starting
# Azure's recorded durations (azure-sdk-assets, test_online_deployment.json; shared/reference/azure-fidelity.md #8)
_ONLINE_DURATION = (
    "endpoint ~1.5 min, deployment ~6.5 min with a cached image, +10-20 min the first time its image is built, "
    "then its deletion"
)
_NO_RECORDED_DURATION = "Azure's recordings show no duration for it: a cold cluster takes minutes to start a node"


class SmokeCheckError(BackendError):
    """A step's call succeeded but what came back is wrong (missing files, wrong predictions, missing rows)."""


def smoke_names(settings: Settings) -> dict[str, str]:
    """The smoke's own endpoint names, suffixed as the real ones are (unique per region, stable per workspace)."""
    names = {
        "endpoint_name": regional_endpoint_name("smoke-online", settings),
        "aml_batch_endpoint_name": regional_endpoint_name("smoke-batch", settings),
    }
    for field, name in names.items():
        if name in (settings.endpoint_name, settings.aml_batch_endpoint_name):
            raise ConfigError(f"the smoke endpoint name {name!r} ({field}) is one of your real endpoints' names")
    return names


class Steps:
    """Numbers and announces each step with its cost; remembers which one runs, for the error message."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.current = total, 0, "reading the settings"

    def start(self, title: str, cost: str) -> None:
        self.done += 1
        self.current = title
        print(f"step {self.done}/{self.total}: {title}")  # noqa: T201 - a command line
        print(f"  cost: {cost}")  # noqa: T201 - a command line

    def say(self, line: str) -> None:
        print(f"  {line}")  # noqa: T201 - a command line


def cluster_cost(settings: Settings, *, scoring: bool) -> str:
    """What a job on the training (or scoring) cluster bills: its nodes, per node-minute, while they exist."""
    name, sku, low, high, priority = cluster_settings(settings, scoring=scoring)
    return (
        f"1 node of compute cluster {name} ({sku}, {priority}, {low}-{high} nodes), billed per node-minute at your "
        f"subscription's rate for {sku} while the job runs and while it idles before scaling back to {low} nodes "
        f"(2 min on a cluster this project created); {_NO_RECORDED_DURATION}, plus the job itself"
    )


def online_cost(settings: Settings) -> str:
    count, sku = settings.aml_online_instance_count, settings.aml_online_instance_type
    return (
        f"{count} x {sku} (the online deployment's instances), billed per instance-minute at your subscription's "
        f"rate for {sku} from the deployment's creation until its deletion: {_ONLINE_DURATION}"
    )


@contextmanager
def deleted_after(what: str, delete: Callable[[], Any], command: str) -> Iterator[None]:
    """Run the block, then `delete`, also when the block failed. A deletion that fails is said at once on
    stderr, naming what is left behind and the command that deletes it; it fails the smoke."""
    failed = True
    try:
        yield
        failed = False
    finally:
        try:
            delete()
        except MLOpsError as exc:
            print(  # noqa: T201 - a command line
                f"azure-smoke: LEFT BEHIND: {what}: deleting it failed: {exc}\n  delete it with: {command}",
                file=sys.stderr,
            )
            if not failed:
                raise BackendError(f"{what} could not be deleted (see LEFT BEHIND above)") from exc


def train(backend: AzureMLBackend, settings: Settings, steps: Steps) -> tuple[Path, str, dict[str, float]]:
    data = settings.default_data_file
    if not data.is_file():
        write_sample_data(settings.package, data)  # the package's own sample-data command, as train-register runs it
    job = f"smoke-{time.strftime('%Y%m%d-%H%M%S')}"
    steps.start(f"training job {job}", cluster_cost(settings, scoring=False))
    trained = backend.jobs.train(
        TrainSpec(job_name=job, data=data, parameters={"alpha": 0.4}, timeout_seconds=settings.train_timeout_seconds)
    )
    steps.say(f"job completed: mse {trained.metrics['mse']:.2f}")
    return trained.outputs, job, trained.metrics


def download_and_predict(backend: AzureMLBackend, settings: Settings, model: ModelVersion, steps: Steps) -> list[float]:
    """The version's files, downloaded again, hold what was registered, and the model predicts the sample request."""
    steps.start(
        f"downloading {model.id} and predicting the sample request here",
        "none billed beyond storage: a few KB read from the workspace's storage account",
    )
    folder = backend.bundles.files(model, fresh=True)
    missing = [f for f in (layout.METRICS_FILE, layout.ENVIRONMENT_FILE) if not (folder / f).is_file()]
    if missing:
        raise SmokeCheckError(f"{model.id} downloaded to {folder} without {', '.join(missing)}")
    if folder_sha256(folder) != model.content_hash:
        raise SmokeCheckError(f"{model.id} downloaded to {folder} holds other bytes than were registered")
    package = settings.package
    request = package.sample_request_body()
    try:  # here, as the local batch scorer loads a model: a fresh interpreter would cost two seconds more
        result = load_script(package.score_script, folder).run(request)["result"]
    except (ContractError, OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise SmokeCheckError(f"the downloaded {model.id} did not load and predict: {exc}") from exc
    rows = len(json.loads(request)["data"])
    if len(result) != rows or not all(isinstance(v, int | float) and math.isfinite(v) for v in result):
        raise SmokeCheckError(f"the downloaded {model.id} predicted {result!r} for {rows} sample row(s)")
    files = sum(1 for f in folder.rglob("*") if f.is_file())
    steps.say(f"downloaded {files} files, the bytes registered; the model predicts {result}")
    return [float(v) for v in result]


def batch_job(batch: AzureMLBatch, model: ModelVersion, steps: Steps) -> None:
    """A sample scored by a batch job on the smoke batch endpoint (`batch`'s settings name it); every row must come
    back with a prediction."""
    settings = batch.settings
    name = settings.aml_batch_endpoint_name
    steps.start(
        f"batch job on batch endpoint {name} ({BATCH_ROWS} rows), then deleting the endpoint",
        f"{cluster_cost(settings, scoring=True)}; +10-20 min the first time the scoring image is built. The batch "
        "endpoint and deployment themselves bill nothing between jobs",
    )
    work = settings.home / "azure-smoke" / time.strftime("%Y%m%d-%H%M%S")
    scoring = write_sample_data(settings.package, work / "scoring-full.csv", for_scoring=True)
    sample = _batch_sample(scoring, work / "input.csv")
    command = (
        f"az ml batch-endpoint delete --name {name} --resource-group {settings.azure_resource_group} "
        f"--workspace-name {settings.azure_workspace_name} --yes"
    )

    def delete() -> None:
        for deleted in batch.delete_endpoint():
            steps.say(f"deleted {'batch endpoint' if '/' not in deleted else 'batch deployment'} {deleted}")

    with deleted_after(f"batch endpoint {name} (and its deployment)", delete, command):
        batches = batch.plan([sample], BATCH_ROWS_PER_MINI_BATCH)
        results, failures = batch.score_all(model, batches, work, parallelism=1, error_threshold=0)
        if failures:
            raise SmokeCheckError(f"the batch job failed mini-batch(es): {failures}")
        out = work / "predictions.csv"
        batch.assemble(results, batches[0].columns, out)
        with out.open(newline="") as scored:
            rows = list(csv.DictReader(scored))
        unscored = [i for i, row in enumerate(rows) if not _is_number(row.get("score"))]
        if len(rows) != BATCH_ROWS or unscored:
            raise SmokeCheckError(
                f"the batch job returned {len(rows)} row(s) of {BATCH_ROWS}; rows without a prediction: {unscored}"
            )
        steps.say(f"the batch job scored {len(rows)} rows in {len(results)} mini-batches, each with a prediction")


def _batch_sample(full: Path, out: Path) -> Path:
    lines = full.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[: BATCH_ROWS + 1]))
    return out


def _is_number(value: str | None) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except ValueError:
        return False


def online_deployment(
    endpoints: AzureMLEndpoints, bundles: AzureMLBundles, model: ModelVersion, expected: list[float], steps: Steps
) -> None:
    """The version on the smoke online endpoint (`endpoints`' settings name it) answers the sample request as it did
    here; then the endpoint is deleted."""
    settings = endpoints.settings
    name = settings.endpoint_name
    steps.start(
        f"online deployment {name}/{ONLINE_DEPLOYMENT} of {model.id}, then deleting the endpoint",
        online_cost(settings),
    )
    command = (
        f"az ml online-endpoint delete --name {name} --resource-group {settings.azure_resource_group} "
        f"--workspace-name {settings.azure_workspace_name} --yes"
    )
    what = (
        f"online endpoint {name} (deployment {ONLINE_DEPLOYMENT}: {settings.aml_online_instance_count} x "
        f"{settings.aml_online_instance_type}, billed until deleted)"
    )

    def delete() -> None:
        if endpoints.delete(name):
            if endpoints.get(name) is not None:
                raise BackendError(f"online endpoint {name} is still there after its deletion finished")
            steps.say(f"deleted online endpoint {name}")

    with deleted_after(what, delete, command):
        endpoints.ensure(name)
        steps.say(f"online endpoint {name} is ready")
        endpoints.add_deployment(name, ONLINE_DEPLOYMENT, bundles.build(model))
        steps.say(f"deployment {ONLINE_DEPLOYMENT} serves {model.id}")
        answer = _ask(endpoints, name, settings.package.sample_request_body())
        # the deploy flow's own check of a new deployment; imported here: Prefect costs a second to import
        from tasks.smoke import check_answer

        problem = "no answer" if answer is None else check_answer(answer, expected, ONLINE_DEPLOYMENT)
        if problem or answer is None:
            raise SmokeCheckError(f"online endpoint {name}: {problem}")
        steps.say(f"the deployment answered {answer.payload()['result']}, as the downloaded model predicts")


def _ask(endpoints: AzureMLEndpoints, name: str, body: bytes, attempts: int = 30) -> Any:
    """The sample request's answer, asked again while the deployment is still starting (as the deploy flow does)."""
    answer = None
    for _ in range(attempts):
        try:
            answer = endpoints.invoke(name, body, deployment=ONLINE_DEPLOYMENT)
        except TransientBackendError:
            answer = None
        if answer is not None and answer.status not in _NOT_READY:
            return answer
        time.sleep(1.0)
    return answer


def run(settings: Settings, steps: Steps, *, online: bool) -> None:
    backend = open_backend(settings)
    if not isinstance(backend, AzureMLBackend):
        raise ConfigError(f"MLOPS_BACKEND={settings.backend}: make azure-smoke runs on the Azure ML backend")
    where = settings.emulator_url or f"subscription {settings.azure_subscription_id}"
    print(f"workspace {settings.azure_workspace_name} (resource group {settings.azure_resource_group}, {where})")  # noqa: T201 - a command line
    steps.start(
        "reading the workspace",
        "none billed: it reads, and creates only what bills nothing idle if missing (clusters at 0 nodes, "
        "endpoints without deployments)",
    )
    backend.workspace.ensure()
    steps.say("workspace answers")
    outputs, job, metrics = train(backend, settings, steps)
    name = f"{settings.model_name}-smoke"
    steps.start(f"registering {name} from the job's output", "none billed beyond storage: the model's few KB")
    registration = backend.registry.register(
        name, outputs, tags={"purpose": "azure-smoke", "mse": repr(metrics["mse"])}, properties={"job_name": job}
    )
    model = registration.model
    if registration.created:
        steps.say(f"registered {model.id} from the job's output")
    else:  # training is deterministic: an earlier smoke in this workspace registered the same bytes
        steps.say(f"{model.id} already holds these bytes (registered from an earlier smoke's job output)")
    expected = download_and_predict(backend, settings, model, steps)
    # the smoke's own endpoints: the same client code, with settings that name them instead of the real ones
    smoke = settings.model_copy(update=smoke_names(settings))
    batch_job(AzureMLBatch(backend.client, smoke, backend.bundles, backend.jobs), model, steps)
    if online:
        online_deployment(AzureMLEndpoints(backend.client, smoke), backend.bundles, model, expected, steps)
    else:
        print(f"online deployment: skipped (--online, or make azure-smoke ONLINE=1; it bills {online_cost(settings)})")  # noqa: T201 - a command line
    steps.start(f"archiving {model.id}", "none billed")
    archived = backend.registry.archive(name, model.version)
    steps.say(f"archived {model.id}" if archived else f"{model.id} was already archived")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="azure-smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--online",
        action="store_true",
        help="also deploy the smoke model to an online endpoint of its own, ask it, and delete it (billed)",
    )
    args = parser.parse_args(argv)
    steps = Steps(total=7 if args.online else 6)
    try:
        run(load_settings(backend="azureml"), steps, online=args.online)
    except ConfigError as exc:
        print(f"azure-smoke: step {steps.current!r} failed: {exc}", file=sys.stderr)  # noqa: T201 - a command line
        return 2
    except BackendError as exc:
        print(f"azure-smoke: step {steps.current!r} failed: {exc}", file=sys.stderr)  # noqa: T201 - a command line
        return 1
    print("azure-smoke: passed")  # noqa: T201 - a command line
    return 0


if __name__ == "__main__":
    sys.exit(main())

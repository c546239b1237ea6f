"""Batch scoring on Azure ML: a batch endpoint whose model deployment runs the package's batch script.

Mini-batches are planned exactly as on the local backend (`infra.common.batching`: byte ranges of whole
lines). Here each
mini-batch becomes one file, `part-<index>.csv`, of a `uri_folder` data asset on the workspace's
blob datastore, and the deployment takes one file per mini-batch (`mini_batch_size=1`), so our
rows-per-mini-batch setting, the error threshold (failed mini-batches) and the retries mean the
same on both backends. Parallelism is the deployment's `max_concurrency_per_instance`, on each of its
`MLOPS_AZUREML_BATCH_INSTANCE_COUNT` nodes (`resources.instance_count`, default 1).

The deployment's scoring script is our entry script, `model/azureml_batch.py`, which runs the
package's `batch_score.py` (`MLOPS_BATCH_SCRIPT`) and returns each row as a line it formats itself,
`<part file>,<row as CSV>`: with `append_row` Azure writes a DataFrame space-separated and without
a header, quoting as it does not document, but writes a list's items as they are. A mini-batch that
fails leaves `<part>.error.txt` with its error beside the output.

`score_all` runs one batch job through the runner's `whole` (the flow: one task run, retried): it
invokes the endpoint with that folder (`Input(type=uri_folder)`) and waits for the batch
job (`jobs.get`, re-attaching by name if the task is retried). On Azure a batch job is a pipeline
job with one step, its child, which holds the `score` output and the logs; the child is found with
`jobs.list(parent_job_name=...)` and downloaded. Its lines are split back into one part file per
mini-batch, in input order, so the flow reconciles and assembles them as it does local results. A
mini-batch with no rows is a failed one, with its error file's text (or the child's
`logs/user/error.txt` line that names it).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import re
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from azure.ai.ml import Input, MLClient
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Data
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from infra.azureml import entities
from infra.azureml.client import finished, translated
from infra.azureml.endpoints import AzureMLBundles, ensure_environment, model_id, name_taken, name_taken_message
from infra.azureml.jobs import AzureMLJobs, snapshot_path
from infra.backend import BatchRunner, MiniBatch, MiniBatchResult, ModelVersion, Scored
from infra.common import batching
from infra.common.hashing import folder_sha256
from infra.errors import BackendError, ConfigError, JobFailedError
from infra.settings import Settings

_log = logging.getLogger(__name__)
_FAILED = re.compile(r"^mini-batch \d+ \[(?P<files>[^\]]*)\] failed[^:]*: (?P<error>.*)$")
_PART = re.compile(r"part-(\d{6})\.csv")
ERROR_SUFFIX = ".error.txt"  # what model/azureml_batch.py writes beside the output for a failed file


def batch_script_path(settings: Settings) -> str:
    """The package's batch scoring script inside the code snapshot (`models/diabetes/batch_score.py` for the diabetes sample)."""
    package = settings.package
    return f"{snapshot_path(package)}/{package.batch_script.relative_to(package.root).as_posix()}"


class AzureMLBatch:
    """Plans and assembles as the local backend does (`infra.common.batching`); a batch job on Azure ML scores."""

    def __init__(self, client: MLClient, settings: Settings, bundles: AzureMLBundles, jobs: AzureMLJobs) -> None:
        self.client = client
        self.settings = settings
        self.bundles = bundles
        self.jobs = jobs
        self.yaml = settings.home / "azureml" / "yaml"

    def plan(self, files: list[Path], rows_per_batch: int) -> list[MiniBatch]:
        return batching.plan(files, rows_per_batch, self.settings.package.features)

    def count_rows(self, batch: MiniBatch) -> int:
        return batching.count_rows(batch)

    def assemble(self, results: list[MiniBatchResult], columns: list[str], out: Path) -> int:
        return batching.assemble(results, columns, out)

    def score_all(
        self,
        model: ModelVersion,
        batches: list[MiniBatch],
        work: Path,
        *,
        parallelism: int,
        error_threshold: int,
        runner: BatchRunner | None = None,
    ) -> Scored:
        """Every mini-batch scored in one batch job, through the runner's `whole` (a retry re-attaches to it)."""
        job = partial(self._run_job, model, batches, work, parallelism=parallelism, error_threshold=error_threshold)
        return (runner or batching.InProcess()).whole(job, batches)

    def _run_job(
        self, model: ModelVersion, batches: list[MiniBatch], work: Path, *, parallelism: int, error_threshold: int
    ) -> Scored:
        """Score every mini-batch in one batch job; return the results and each failed mini-batch's error."""
        folder = _write_inputs(batches, work / "azureml-input")
        data = self._upload(folder)
        deployment = self._ensure_deployment(model, parallelism, error_threshold)
        name = _job_name(model, data, deployment, work)
        self._invoke(name, deployment, data)
        status = self.jobs.wait_for(
            name,
            self.settings.aml_batch_timeout_seconds,
            what="batch job",
            setting="MLOPS_AZUREML_BATCH_TIMEOUT_SECONDS",
        )
        step = self._step(name)
        if status != "Completed":
            raise JobFailedError(self.jobs.failure(name, status, what="batch job", step=step))
        if step is None:
            raise BackendError(f"batch job {name} completed but has no step (child job) holding its output")
        predictions, errors = self._download(step, work / "azureml-job")
        return _split(predictions, errors, batches, work)

    def delete_endpoint(self) -> list[str]:
        """Delete the batch endpoint and its deployments; what was there (`endpoint/deployment`, then the endpoint).
        Raises BackendError when either is still there afterwards."""
        name = self.settings.aml_batch_endpoint_name
        # the SDK's progress dots on stdout are dropped, as the online endpoints' waits drop them
        with translated(self.settings, f"deleting batch endpoint {name}"), contextlib.redirect_stdout(io.StringIO()):
            try:
                held = [f"{name}/{d.name}" for d in self.client.batch_deployments.list(endpoint_name=name)]
            except ResourceNotFoundError:
                return []
            if not delete_batch_endpoint(self.client, self.settings):
                return []
            try:
                self.client.batch_endpoints.get(name)
            except ResourceNotFoundError:
                return [*held, name]
        raise BackendError(f"batch endpoint {name} is still there after its deletion finished")

    # ---- steps ----
    def _upload(self, folder: Path) -> str:
        """The mini-batch files as a data asset (created once per content); its datastore URI."""
        name, version = self.settings.scoring_dataset_name, folder_sha256(folder)[:16]
        with translated(self.settings, f"uploading the batch input as {name}:{version}"):
            try:
                asset = self.client.data.get(name, version=version)
            except ResourceNotFoundError:
                asset = self.client.data.create_or_update(
                    Data(name=name, version=version, path=str(folder), type=AssetTypes.URI_FOLDER)
                )
                _log.info("uploaded the batch input as data asset %s:%s", name, version)
        return str(asset.path)

    def _ensure_deployment(self, model: ModelVersion, parallelism: int, error_threshold: int) -> str:
        settings = self.settings
        endpoint_name = settings.aml_batch_endpoint_name
        deployment_name = _deployment_name(model)
        with translated(settings, f"preparing batch endpoint {endpoint_name}"):
            try:
                self.client.compute.get(settings.aml_compute_cluster_name_scoring)
            except ResourceNotFoundError:
                cluster = entities.compute_cluster(settings, scoring=True)
                entities.write_yaml(cluster, self.yaml, "compute")
                finished(
                    self.client.compute.begin_create_or_update(cluster),
                    settings.aml_deploy_timeout_seconds,
                    f"creating compute cluster {cluster.name}",
                )
                _log.info("created compute cluster %s (min 0 nodes)", cluster.name)
            endpoint, _ = ensure_batch_endpoint(self.client, settings)
            wanted = entities.batch_deployment(
                settings,
                deployment_name,
                model=f"azureml:{model.id}",
                code=self.jobs.code_snapshot(settings.package),
                script=batch_script_path(settings),
                environment=ensure_environment(self.client, settings, self.bundles.build(model), batch=True)[0],
                parallelism=parallelism,
                error_threshold=error_threshold,
            )
            if not self._same_deployment(endpoint_name, wanted, model):
                entities.write_yaml(wanted, self.yaml, f"batch-deployment-{endpoint_name}")
                self.client.batch_deployments.begin_create_or_update(wanted).result(
                    timeout=settings.aml_deploy_timeout_seconds
                )
                _log.info("batch deployment %s/%s serves %s", endpoint_name, deployment_name, model.id)
            if endpoint.defaults is None or endpoint.defaults.deployment_name != deployment_name:
                endpoint = self.client.batch_endpoints.get(endpoint_name)
                endpoint.defaults = {"deployment_name": deployment_name}
                self.client.batch_endpoints.begin_create_or_update(endpoint).result(
                    timeout=settings.aml_deploy_timeout_seconds
                )
        return deployment_name

    def _same_deployment(self, endpoint: str, wanted: Any, model: ModelVersion) -> bool:
        """Whether the deployment exists with this model and these settings (then it is not sent again)."""
        try:
            current = self.client.batch_deployments.get(name=wanted.name, endpoint_name=endpoint)
        except ResourceNotFoundError:
            return False
        fields = (
            "instance_count",
            "max_concurrency_per_instance",
            "error_threshold",
            "mini_batch_size",
            "output_file_name",
            "environment_variables",
        )
        retries = [(r.max_retries, r.timeout) if r else None for r in (current.retry_settings, wanted.retry_settings)]
        scripts = [getattr(d.code_configuration, "scoring_script", None) for d in (current, wanted)]
        return (
            model_id(str(current.model)) == model.id
            and all(getattr(current, f, None) == getattr(wanted, f, None) for f in fields)
            and retries[0] == retries[1]
            and scripts[0] == scripts[1]
            and _environment_id(current.environment) == _environment_id(wanted.environment)
        )

    def _invoke(self, name: str, deployment: str, data: str) -> None:
        with translated(self.settings, f"starting batch job {name}"):
            try:
                self.client.jobs.get(name)
                _log.info("re-attaching to batch job %s", name)
                return
            except ResourceNotFoundError:
                pass
            job = self.client.batch_endpoints.invoke(
                endpoint_name=self.settings.aml_batch_endpoint_name,
                deployment_name=deployment,
                inputs={"data": Input(type=AssetTypes.URI_FOLDER, path=data)},
                job_name=name,
                experiment_name=self.settings.aml_batch_endpoint_name,
            )
        _log.info("submitted batch job %s to %s/%s", job.name, self.settings.aml_batch_endpoint_name, deployment)

    def _step(self, name: str) -> str | None:
        """The batch job's step (its one child job, which holds the output and the logs), if it has one yet."""
        with translated(self.settings, f"finding the step of batch job {name}"):
            children = list(self.client.jobs.list(parent_job_name=name))
        return str(children[0].name) if children else None

    def _download(self, step: str, folder: Path) -> tuple[Path, dict[str, str]]:
        """The step's `predictions.csv`, and each failed mini-batch file's error (`part-000003.csv`: text)."""
        shutil.rmtree(folder, ignore_errors=True)
        with translated(self.settings, f"downloading batch job step {step}"), contextlib.redirect_stdout(io.StringIO()):
            self.client.jobs.download(step, download_path=str(folder), all=True)
        score = folder / "named-outputs" / "score"
        found = sorted(score.rglob(entities.BATCH_OUTPUT_FILE))
        if not found:
            raise BackendError(f"batch job step {step} completed but its output holds no {entities.BATCH_OUTPUT_FILE}")
        errors = {}
        for path in sorted(score.rglob(f"*{ERROR_SUFFIX}")):
            errors[path.name.removesuffix(ERROR_SUFFIX) + ".csv"] = path.read_text(errors="replace").strip()
        for log in sorted((folder / "artifacts").rglob("error*.txt")):
            for line in log.read_text(errors="replace").splitlines():
                failed = _FAILED.match(line.strip())
                if failed:
                    for file in failed.group("files").split(", "):
                        errors.setdefault(file, failed.group("error"))
        return found[0], errors


def _environment_id(environment: Any) -> str:
    """`name:version` of a deployment's environment, given as an ARM id or `azureml:name:version`."""
    return model_id(str(environment))


def ensure_batch_endpoint(client: MLClient, settings: Settings) -> tuple[Any, bool]:
    """The batch endpoint `MLOPS_AZUREML_BATCH_ENDPOINT_NAME`, created if missing (and whether it was now). A name held
    elsewhere in the region (endpoint names are unique per region) is a ConfigError naming the setting."""
    name = settings.aml_batch_endpoint_name
    try:
        return client.batch_endpoints.get(name), False
    except ResourceNotFoundError:
        pass
    endpoint = entities.batch_endpoint(settings)
    entities.write_yaml(endpoint, settings.home / "azureml" / "yaml", "batch-endpoint")
    try:
        created = client.batch_endpoints.begin_create_or_update(endpoint).result(
            timeout=settings.aml_deploy_timeout_seconds
        )
    except HttpResponseError as exc:
        if name_taken(exc):
            raise ConfigError(name_taken_message("MLOPS_AZUREML_BATCH_ENDPOINT_NAME", name)) from None
        raise
    _log.info("created batch endpoint %s", name)
    return created, True


def delete_batch_endpoint(client: MLClient, settings: Settings) -> bool:
    """Delete the batch endpoint `MLOPS_AZUREML_BATCH_ENDPOINT_NAME` with its deployments (Azure ML deletes them with
    it; its default deployment cannot be deleted on its own); False if it did not exist. Its cluster is kept."""
    name = settings.aml_batch_endpoint_name
    try:
        finished(
            client.batch_endpoints.begin_delete(name=name),
            settings.aml_deploy_timeout_seconds,
            f"deleting batch endpoint {name}",
        )
    except ResourceNotFoundError:
        return False
    return True


def _write_inputs(batches: list[MiniBatch], folder: Path) -> Path:
    """One CSV per mini-batch: the header, then the mini-batch's lines."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for batch in batches:
        (folder / f"part-{batch.index:06d}.csv").write_bytes(_csv_line(batch.columns) + batching.read(batch))
    return folder


def _csv_line(values: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode()


def _split(predictions: Path, errors: dict[str, str], batches: list[MiniBatch], work: Path) -> Scored:
    """One part file per mini-batch from the job's lines (`file,<features...>,score`), and the failed ones' errors."""
    work.mkdir(parents=True, exist_ok=True)
    parts: dict[int, list[bytes]] = {}
    with predictions.open("rb") as rows:
        for line in rows:
            file, _, rest = line.partition(b",")
            match = _PART.fullmatch(file.decode(errors="replace"))
            if match is None:
                raise BackendError(f"{predictions}: a row names no mini-batch file: {line[:120]!r}")
            parts.setdefault(int(match.group(1)), []).append(rest if rest.endswith(b"\n") else rest + b"\n")
    results, failures = [], {}
    for batch in batches:
        lines = parts.get(batch.index)
        if lines is None:
            failures[batch.index] = errors.get(
                f"part-{batch.index:06d}.csv", "the batch job wrote no rows for this mini-batch (see its step's logs/)"
            )
            continue
        part = work / f"part-{batch.index:06d}.csv"
        part.write_bytes(b"".join(lines))
        rows_in = batching.count_rows(batch)
        results.append(MiniBatchResult(index=batch.index, rows_in=rows_in, rows_out=len(lines), part=part))
    return results, failures


def _deployment_name(model: ModelVersion) -> str:
    """`<model>-<version>` as a deployment name: letters, digits and '-', starting with a letter, at most 32."""
    name = re.sub(r"[^A-Za-z0-9-]", "-", model.name).strip("-") or "model"
    if not name[0].isalpha():
        name = "m" + name
    suffix = f"-{model.version}"
    return name[: 32 - len(suffix)].rstrip("-") + suffix


def _job_name(model: ModelVersion, data: str, deployment: str, work: Path) -> str:
    digest = hashlib.sha256(f"{model.id}|{data}|{deployment}|{work.name}".encode()).hexdigest()[:16]
    return f"batch-{deployment}-{digest}"

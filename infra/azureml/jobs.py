"""Training as an Azure ML command job: the same training command of the model package the local backend runs.

    code=        a snapshot of the `model` package and the model package, laid out as in the checkout
                 (content-addressed, so an unchanged one is not uploaded again)
    environment= `<MLOPS_AZUREML_TRAINING_ENV_NAME>:<hash>`: a conda file pinning the package's libraries on Azure ML's image
    inputs       training_data: the CSV as data asset `<MLOPS_AZUREML_DATASET_NAME>:<sha256[:16]>` (uploaded once per content)
                 parameters: the run's parameters.json (uri_file)
    outputs      model: uri_folder; the command writes into `model/` inside it

The job is named `spec.job_name`, derived from data, code and parameters: a retried or re-run task
finds the job it submitted before (`jobs.get`) and waits for it instead of submitting another, if
that job is running or completed. Azure never frees a job name, so after a Failed, Canceled or
NotResponding job the next attempt is submitted as `<name>-r1` (then `-r2`, ...).
Waiting is polling `jobs.get` (one log line per status change, our timeout, `begin_cancel` when it
passes). Outputs come back with `jobs.download` into `<MLOPS_HOME>/azureml/jobs/<job>/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
import shlex
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml
from azure.ai.ml import Input, MLClient, Output, command
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Data, Environment
from azure.ai.ml.exceptions import JobException
from azure.core.exceptions import ResourceNotFoundError

from infra.azureml import entities
from infra.azureml.client import finished, translated
from infra.backend import TrainOutput, TrainSpec
from infra.common.hashing import code_files, files_sha256
from infra.common.training import MAX_ATTEMPTS, attempt_name, collect_outputs, job_error
from infra.errors import BackendError, JobFailedError, TransientBackendError
from infra.settings import Settings
from infra.telemetry import current_traceparent
from model import layout
from model.package import ContractError, ModelPackage, capture_environment, complete_outputs, file_sha256
from model.paths import code_root, model_package

TRAINING_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
# The job's MLflow client: MLflow itself at this environment's version, and Azure ML's plugin for its
# `azureml://` tracking URI (1.62.0.post6 is the newest; it allows mlflow-skinny<=3.15.0). Only in the job's
# environment: the plugin pins azure-storage-blob<=12.27.1 and pytz<=2025.2, below this project's.
TRACKING_PACKAGES = ("mlflow-skinny", "azureml-mlflow==1.62.0.post6")
TRACKING_SCOPE = "https://management.azure.com/.default"  # azureml-mlflow: the cloud's resource manager + /.default
OUTPUT = "model"
TERMINAL = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")
_UNUSABLE = ("Failed", "Canceled", "NotResponding")  # ended without outputs: the next attempt gets a name of its own
_log = logging.getLogger("mlops.azureml")


def job_command(package: ModelPackage) -> str:
    """The package's training command as a command job's: inputs and outputs as `${{...}}`, run in the code folder."""
    parts = package.command(
        package.train_command,
        python="python",
        package=snapshot_path(package),
        data="${{inputs.training_data}}",
        params="${{inputs.parameters}}",
        out="${{outputs.model}}/model",
    )
    return " ".join(part if "${{" in part else shlex.quote(part) for part in parts)


def snapshot_path(package: ModelPackage) -> str:
    """Where the package sits in the code snapshot: its path in the checkout (`model`, `models/churn`)."""
    root = code_root()
    if package.root == root / "model" or package.root.is_relative_to(root):
        return package.root.relative_to(root).as_posix()
    return f"packages/{package.name}"


def conda_file(package: ModelPackage) -> dict[str, Any]:
    """The training environment: this interpreter's Python and the package's libraries at their exact versions,
    and MLflow with Azure ML's plugin, so a training command's `mlflow.log_*` reaches the job's run."""
    lock = capture_environment(package.libraries)
    pins = [f"{name}=={version}" for name, version in sorted(lock["libraries"].items())]
    pins += [pin if "==" in pin else f"{pin}=={metadata.version(pin)}" for pin in TRACKING_PACKAGES]
    return {
        "name": "mlops-train",
        "channels": ["conda-forge"],
        "dependencies": [f"python={lock['python']}", *package.conda, "pip", {"pip": pins}],
    }


class AzureMLJobs:
    def __init__(self, client: MLClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.root = settings.home / "azureml"
        self.poll_seconds = settings.azureml_poll_seconds or (0.5 if settings.emulator_url else 10.0)
        self._cluster_checked = False
        self._tracking: str | None = None  # the workspace's MLflow API, read once

    def train(self, spec: TrainSpec) -> TrainOutput:
        with translated(self.settings, f"training job {spec.job_name}"):
            name, existing = self._attempt(spec.job_name)
            if existing is None:
                self._submit(spec, name)
            else:
                _log.info("job %s exists (status %s): re-attaching", name, job_status(existing))
            status = self.wait_for(name, spec.timeout_seconds)
            if status != "Completed":
                raise JobFailedError(self.failure(name, status))
            outputs = self._download(name)
        package = spec.model_package()
        try:
            complete_outputs(package, outputs, data=spec.data, parameters=spec.parameters)
        except ContractError as exc:
            raise JobFailedError(f"training job {name} of package {package.name}: {exc}") from None
        return _collect(name, outputs, reattached=existing is not None)

    def logged_metrics(self, job_name: str) -> dict[str, float] | None:
        """The metrics the job logged with MLflow (its run in the workspace's MLflow tracking), latest value of
        each; None when no such run exists or it logged no metric. The MLflow REST call azureml-mlflow makes,
        made directly: azureml-mlflow cannot be installed beside this project's pins (see `tracking_base`)."""
        if self._tracking is None:
            with translated(self.settings, "reading the workspace's MLflow tracking URI"):
                workspace = self.client.workspaces.get(self.settings.azure_workspace_name)
            self._tracking = tracking_base(str(workspace.mlflow_tracking_uri or ""))
        if not self._tracking:
            return None
        credential = self.client._credential  # the MLClient's own credential: no second sign-in
        token = credential.get_token(TRACKING_SCOPE).token
        try:
            response = requests.get(
                f"{self._tracking}/api/2.0/mlflow/runs/get",
                params={"run_id": job_name},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        except requests.RequestException as exc:
            raise TransientBackendError(f"job {job_name}'s MLflow run: {exc}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            detail = response.text.strip().splitlines()[0][:300] if response.text.strip() else response.reason
            raise BackendError(
                f"job {job_name}'s MLflow run: {self._tracking} answered {response.status_code} ({detail})"
            )
        metrics = ((response.json().get("run") or {}).get("data") or {}).get("metrics") or []
        return {str(m["key"]): float(m["value"]) for m in metrics} or None

    def _find(self, name: str) -> Any:
        try:
            return self.client.jobs.get(name)
        except ResourceNotFoundError:
            return None

    def _attempt(self, base: str) -> tuple[str, Any]:
        """The job to wait for: the first of `base`, `base-r1`, `base-r2`, ... that is running or completed
        (re-attached), else the first free name (submitted).

        Azure ML never frees a job name (a job cannot be deleted; archiving keeps the name), so a Failed,
        Canceled or NotResponding job must not be waited for again: one pre-emption on a low-priority
        cluster, or our own timeout's cancel, would otherwise block these inputs until they change.
        """
        for attempt in range(MAX_ATTEMPTS):
            name = attempt_name(base, attempt)
            existing = self._find(name)
            if existing is None:
                return name, None
            status = job_status(existing)
            if status not in _UNUSABLE:
                return name, existing
            _log.info("job %s ended %s: training again as a new attempt", name, status)
        msg = f"training job {base}: {MAX_ATTEMPTS} attempts ended without completing; change the data, code or parameters"
        raise JobFailedError(msg)

    def _ensure_cluster(self) -> None:
        """The training cluster, created if missing (min 0 nodes: nothing billed idle). Azure refuses a job whose
        compute does not exist ("Unknown compute target"), so `mlops run` needs no `mlops provision` first."""
        if self._cluster_checked:
            return
        try:
            self.client.compute.get(self.settings.aml_compute_cluster_name)
        except ResourceNotFoundError:
            cluster = entities.compute_cluster(self.settings)
            finished(
                self.client.compute.begin_create_or_update(cluster),
                self.settings.aml_deploy_timeout_seconds,
                f"creating compute cluster {cluster.name}",
            )
            _log.info("created compute cluster %s (min %s nodes)", cluster.name, cluster.min_instances)
        self._cluster_checked = True

    def _submit(self, spec: TrainSpec, name: str) -> None:
        self._ensure_cluster()
        staging = self.root / "jobs" / name / "inputs"
        staging.mkdir(parents=True, exist_ok=True)
        parameters = staging / "parameters.json"
        parameters.write_text(json.dumps({"training": spec.parameters}, indent=2, sort_keys=True) + "\n")
        package = spec.model_package()
        job = command(
            code=str(self.code_snapshot(package)),
            command=job_command(package),
            inputs={
                "training_data": Input(type=AssetTypes.URI_FILE, path=self._training_data(spec.data)),
                "parameters": Input(type=AssetTypes.URI_FILE, path=str(parameters)),
            },
            outputs={OUTPUT: Output(type=AssetTypes.URI_FOLDER)},
            environment=self.ensure_environment(package)[0],
            compute=self.settings.aml_compute_cluster_name,
            experiment_name=self.settings.experiment_name,
            display_name="train",
            description=f"the training command of model package {package.name}, submitted by the mlops train-register flow",
            # the submitting task run's trace: the job is found from the flow run's trace, and back
            tags={"mlops.job": "train", **current_traceparent()},
        )
        job.name = name
        job.set_limits(timeout=int(spec.timeout_seconds))
        submitted = self.client.jobs.create_or_update(job)
        _log.info("submitted job %s (%s)", submitted.name, submitted.studio_url)

    def code_snapshot(self, package: ModelPackage | None = None) -> Path:
        """The `model` package's source files and the model package's files, laid out as in the checkout,
        copied into a folder named by their code hash."""
        package = package or self.settings.package
        shared = model_package()
        files = [(path, Path("model") / path.relative_to(shared)) for path in code_files(shared)]
        if package.root != shared:
            files += [
                (path, Path(snapshot_path(package)) / path.relative_to(package.root))
                for path in code_files(package.root)
            ]
        target = self.root / "code" / files_sha256(files)[:16]
        if not (target / "model").is_dir():
            staging = Path(tempfile.mkdtemp(prefix=".code-", dir=self.root))
            for path, relative in files:
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(target)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)  # a concurrent run made it first
        return target

    def _training_data(self, data: Path) -> str:
        """The data asset holding these bytes: `<dataset>:<sha256[:16]>`, created (and uploaded) only when new."""
        name, version = self.settings.dataset_name, file_sha256(data)[:16]
        try:
            asset = self.client.data.get(name, version=version)
        except ResourceNotFoundError:
            asset = self.client.data.create_or_update(
                Data(
                    name=name,
                    version=version,
                    path=str(data),
                    type=AssetTypes.URI_FILE,
                    description=f"training data {data.name}",
                )
            )
            _log.info("uploaded training data %s as data asset %s:%s", data, name, version)
        return str(asset.id)

    def ensure_environment(self, package: ModelPackage | None = None) -> tuple[str, bool]:
        """The training environment (`azureml:name:version`), and whether it was created now."""
        conda = conda_file(package or self.settings.package)
        version = hashlib.sha256(json.dumps([TRAINING_IMAGE, conda], sort_keys=True).encode()).hexdigest()[:16]
        name = self.settings.aml_env_name
        try:
            self.client.environments.get(name, version=version)
            return f"azureml:{name}:{version}", False
        except ResourceNotFoundError:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "conda.yml"
                path.write_text(yaml.safe_dump(conda, sort_keys=False))
                self.client.environments.create_or_update(
                    Environment(
                        name=name,
                        version=version,
                        image=TRAINING_IMAGE,
                        conda_file=str(path),
                        description="the pinned training environment",
                    )
                )
        return f"azureml:{name}:{version}", True

    def wait_for(
        self, name: str, timeout: float, what: str = "training job", setting: str = "MLOPS_TRAIN_TIMEOUT_SECONDS"
    ) -> str:
        deadline = time.monotonic() + timeout
        last = None
        while True:
            status = job_status(self.client.jobs.get(name))
            if status != last:
                _log.info("job %s: %s", name, status)
                last = status
            if status in TERMINAL:
                return status
            if time.monotonic() > deadline:
                # Polled at our own interval: without a Retry-After (or with "0", which azure-core reads as none)
                # the SDK's poller waits its default 30 s between looks at the cancel operation.
                self.client.jobs.begin_cancel(name, polling_interval=self.poll_seconds).result()
                msg = f"{what} {name} ran past {timeout:g} s ({setting}) and was canceled"
                raise JobFailedError(msg)
            time.sleep(self.poll_seconds)

    def failure(self, name: str, status: str, what: str = "training job", *, step: str | None = None) -> str:
        """The job's own error (run history's, as `jobs.stream` reports it) and the tail of its user log (of its
        `step` for a pipeline job: azure-ai-ml streams no pipeline child, `PipelineChildJobError`)."""
        error = f"the job ended {status}"
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                self.client.jobs.stream(name)
            except JobException as exc:
                error = _service_error(str(exc.message)) or error
        tail = ""
        folder = self.root / "jobs" / name / "logs"
        with contextlib.suppress(Exception):
            shutil.rmtree(folder, ignore_errors=True)
            self.client.jobs.download(step or name, download_path=str(folder))
            log = folder / "artifacts" / "user_logs" / "std_log.txt"
            tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-10:])
        return f"{what} {name} {status.lower()}: {error}" + (
            f"\nlast lines of its user_logs/std_log.txt:\n{tail}" if tail else ""
        )

    def _download(self, name: str) -> Path:
        folder = self.root / "jobs" / name / "download"
        outputs = folder / "named-outputs" / OUTPUT / "model"
        if (outputs / layout.METRICS_FILE).is_file():
            return outputs
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.client.jobs.download(name, download_path=str(staging), all=True)
            if not (staging / "named-outputs" / OUTPUT / "model" / layout.METRICS_FILE).is_file():
                raise TransientBackendError(
                    f"training job {name} completed but its output {OUTPUT!r} holds no {layout.METRICS_FILE}"
                )
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return outputs


def job_status(job: Any) -> str:
    """A job's status as the service names it (`Completed`), whether the SDK gives a string or an enum."""
    status = job.status
    return str(getattr(status, "value", status))


def _service_error(message: str) -> str:
    """The `message` of run history's error inside the SDK's JobException text, else its first lines."""
    for line in message.splitlines():
        stripped = line.strip().strip(",")
        if stripped.startswith('"message":'):
            with contextlib.suppress(ValueError):
                return str(json.loads("{" + stripped + "}")["message"])
    return job_error(message)


def tracking_base(mlflow_tracking_uri: str) -> str:
    """The https base of a workspace's MLflow REST API, derived as azureml-mlflow 1.62 derives it
    (`_store/azureml_reststore.py`, `get_host_creds`): the `azureml://<host>/mlflow/v1.0/<workspace>` URI the
    workspace gives, as `https://<host>/mlflow/v2.0/<workspace>` (v2.0 for MLflow 2 and 3). '' for no URI."""
    parts = urlsplit(mlflow_tracking_uri)
    if not parts.netloc:
        return ""
    return f"https://{parts.netloc}/mlflow/v2.0{re.sub(r'^/mlflow/v[0-9.]+', '', parts.path)}"


def _collect(name: str, outputs: Path, *, reattached: bool) -> TrainOutput:
    log = outputs.parents[2] / "artifacts" / "user_logs" / "std_log.txt"
    return collect_outputs(name, outputs, log=log, reattached=reattached)

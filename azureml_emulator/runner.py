"""The emulator's job runner: command jobs really run, in a subprocess, through the local backend's job runner.

A job moves NotStarted → Queued → Starting → Preparing (its code and inputs are downloaded from the
emulator's blob storage into `<home>/jobs/<job>/`) → Running (`${{inputs.x}}` and `${{outputs.y}}`
replaced by local paths, the command run by `bash -c` in the code folder with this interpreter first
on PATH) → Finalizing (outputs and `user_logs/std_log.txt` uploaded where Azure ML keeps them) →
Completed, or Failed with the service's kind of error message, or Canceled. `slots` jobs run at once;
the rest wait in Queued. The environment's image and conda file are recorded, not built: jobs run
with the emulator's own Python, which holds the pinned libraries.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from azureml_emulator.batch_driver import JOB_LOGS_VARIABLE
from azureml_emulator.core.arm import ARTIFACT_CONTAINER, PROVIDER, asset_reference
from azureml_emulator.core.emulator import Emulator
from azureml_emulator.core.job_bodies import job_timeout, output_uri
from azureml_emulator.core.storage import MissingFiles, blob_location, copy_blobs
from azureml_emulator.core.store import now
from azureml_emulator.tls import CA_FILE
from infra.common.training import job_error, run_logged

_PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")


class JobRunner:
    """`slots` threads taking queued jobs from the emulator's store."""

    def __init__(self, emulator: Emulator, *, slots: int = 2) -> None:
        self.emulator = emulator
        self.store = emulator.store
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._queue_loop, name="job-queue", daemon=True)]
        self._threads += [
            threading.Thread(target=self._loop, name=f"job-runner-{i}", daemon=True) for i in range(slots)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _queue_loop(self) -> None:
        """Submitted jobs (NotStarted) join the queue; with no slots (`--max-jobs 0`) they wait there."""
        while not self._stop.wait(0.1):
            with self.store.transaction() as db:
                db.execute("UPDATE jobs SET status = 'Queued' WHERE status = 'NotStarted' AND runnable = 1")

    def _loop(self) -> None:
        while not self._stop.is_set():
            claimed = self.store.claim_job()
            if claimed is None:
                self._stop.wait(0.1)
                continue
            scope, name = claimed
            try:
                self._run(scope, name)
            except Exception as exc:  # noqa: BLE001 - an emulator bug fails the job, not the runner
                traceback.print_exc()
                self._fail(scope, name, "SystemError", f"the emulator could not run the job: {exc}")

    def _run(self, scope: str, name: str) -> None:
        """Run one job from Preparing to its end state, with its logs, outputs and run history.

        Long because: a job's life is one sequence of state changes (each conditional on a cancel not having won) and
        keeping it together is what makes the cancel races readable."""
        record = self.store.get_job(scope, name)
        if record is None:
            return
        properties: dict[str, Any] = record["body"]["properties"]
        folder = self.emulator.home / "jobs" / hashlib.sha256(scope.encode()).hexdigest()[:12] / name
        shutil.rmtree(folder, ignore_errors=True)  # a re-queued job starts from nothing
        (folder / "user_logs").mkdir(parents=True)
        (folder / "logs").mkdir()
        if not self.store.set_status(scope, name, "Preparing", only_from=("Starting",), started=now()):
            self._end_if_canceled(scope, name)  # canceled meanwhile
            return
        try:
            code = self._materialise_code(scope, properties, folder / "code")
            values = self._materialise_inputs(scope, properties, folder / "inputs")
        except MissingFiles as exc:
            self._fail(scope, name, "UserError", str(exc))
            return
        outputs = {}
        for output in properties.get("outputs") or {}:
            if output != "default":
                outputs[output] = folder / "outputs" / output
                outputs[output].mkdir(parents=True)
        command = _PLACEHOLDER.sub(
            lambda m: shlex.quote(str((values if m[1] == "inputs" else outputs)[m[2]])), properties["command"]
        )
        env = {
            **_clean_environment(),
            **{str(k): str(v) for k, v in (properties.get("environmentVariables") or {}).items()},
        }
        env |= {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")]),
            "PYTHONPATH": str(code),
            "PYTHONUNBUFFERED": "1",
            "AZUREML_RUN_ID": name,
            JOB_LOGS_VARIABLE: str(folder / "logs"),  # the batch driver writes its logs/ files there
            "AZUREML_EXPERIMENT_NAME": str(properties.get("experimentName")),
            **self._tracking_environment(scope, name, properties),
        }
        if not self.store.set_status(scope, name, "Running", only_from=("Preparing",)):
            self._end_if_canceled(scope, name)
            return
        log = folder / "user_logs" / "std_log.txt"
        timeout = job_timeout(properties.get("limits"))
        returncode = run_logged(
            ["bash", "-c", command],
            env=env,
            log=log,
            timeout=timeout,
            cwd=code,
            cancelled=lambda: self._cancel_requested(scope, name) or self._stop.is_set(),
        )
        self._upload_logs(name, folder)
        status = (self.store.get_job(scope, name) or {}).get("status")
        if status == "CancelRequested":
            self.store.set_status(scope, name, "Canceled", ended=now())
            return
        if returncode is None and self._stop.is_set():
            return  # the emulator is stopping: the job stays Running and is re-queued at the next start
        if returncode != 0:
            program = shlex.split(command)[0] if command.strip() else "?"
            reason = "ran past its timeout" if returncode is None else f"exited with status code {returncode}"
            detail = job_error(log.read_text(errors="replace"))
            message = (
                f"Execution failed. User process '{program}' {reason}. Please check log file "
                f"'user_logs/std_log.txt' for error details. Error: {detail}"
            )
            self._fail(scope, name, "UserError", message)
            return
        if not self.store.set_status(scope, name, "Finalizing", only_from=("Running",)):
            self._end_if_canceled(scope, name)
            return
        self._upload_outputs(scope, name, outputs)
        if not self.store.set_status(scope, name, "Completed", only_from=("Finalizing",), ended=now()):
            self._end_if_canceled(scope, name)

    def _tracking_environment(self, scope: str, name: str, properties: dict[str, Any]) -> dict[str, str]:
        """What Azure ML tells a job's process about MLflow, so `mlflow.log_metrics` there logs to the job's run.

        Azure sets these five (azureml-mlflow 1.62 `get_service_context_from_tracking_url_mlflow_env_vars` reads
        them in a job), with the URI in `azureml://` form for the azureml-mlflow plugin, which turns it into
        `https://<host>/mlflow/v2.0/<workspace>` (`_store/azureml_reststore.py`). Here the URI is that https form
        already: azureml-mlflow cannot be installed beside this project's pins (it wants azure-storage-blob
        <=12.27.1), so jobs here use MLflow's own REST client, which sends the token as a bearer token, as the
        plugin does. `MLFLOW_TRACKING_SERVER_CERT_PATH` makes it trust the emulator's CA.
        """
        sub, rg, ws = scope.split("/")
        workspace = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{PROVIDER}/workspaces/{ws}"
        experiment = str(properties.get("experimentName") or "Default")
        return {
            "MLFLOW_TRACKING_URI": f"{self.emulator.base_url}/mlflow/v2.0{workspace}",
            "MLFLOW_TRACKING_TOKEN": "mlops-emulator-job-token",
            "MLFLOW_RUN_ID": name,
            "MLFLOW_EXPERIMENT_NAME": experiment,
            "MLFLOW_EXPERIMENT_ID": experiment,
            "MLFLOW_TRACKING_SERVER_CERT_PATH": str(self.emulator.home / "tls" / CA_FILE),
        }

    def _end_if_canceled(self, scope: str, name: str) -> None:
        """A cancel that arrived between two steps (Starting, Preparing, Finalizing: `CancelRequested`) ends the
        job Canceled here. Left as it was, the job stayed `CancelRequested` for good, and a client waiting for the
        cancel operation (`begin_cancel(...).result()`) polled it forever."""
        self.store.set_status(scope, name, "Canceled", only_from=("CancelRequested",), ended=now())

    def _cancel_requested(self, scope: str, name: str) -> bool:
        record = self.store.get_job(scope, name)
        return record is None or record["status"] == "CancelRequested"

    def _fail(self, scope: str, name: str, code: str, message: str) -> None:
        error: dict[str, Any] = {
            "code": code,
            "severity": None,
            "message": message,
            "messageFormat": None,
            "messageParameters": {},
            "referenceCode": None,
            "detailsUri": None,
            "target": None,
            "details": [],
            "innerError": None,
            "debugInfo": None,
            "additionalInfo": None,
            "time": now(),
        }
        self.store.set_status(scope, name, "Failed", ended=now(), error=error)

    # ---- files in and out ----
    def _materialise_code(self, scope: str, properties: dict[str, Any], target: Path) -> Path:
        target.mkdir(parents=True)
        code_id = properties.get("codeId")
        if not code_id:
            return target
        reference = asset_reference(str(code_id))
        body = self.store.get_asset(scope, *reference) if reference else None
        if body is None:
            raise MissingFiles(f"code {code_id} does not exist")
        container, prefix = blob_location(self.emulator, str(body["properties"]["codeUri"]))
        return copy_blobs(self.emulator, container, prefix, target)

    def _materialise_inputs(self, scope: str, properties: dict[str, Any], folder: Path) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in (properties.get("inputs") or {}).items():
            kind = value.get("jobInputType")
            if kind == "literal":
                values[name] = value.get("value")
                continue
            uri = str(value.get("uri"))
            reference = asset_reference(uri)
            if reference:
                asset = self.store.get_asset(scope, *reference)
                if asset is None:
                    raise MissingFiles(f"input {name!r}: data asset {uri} does not exist")
                uri = str(asset["properties"]["dataUri"])
            container, path = blob_location(self.emulator, uri)
            if kind in ("custom_model", "mlflow_model") and self.emulator.store.get_blob(container, path) is not None:
                # a single-file model (Azure registers one: model/e2etests/test_model.py TestModeltest_model_archive_
                # restore_version.json, entry 5): its file in the input's folder, as AZUREML_MODEL_DIR holds it for
                # an online deployment (Microsoft Learn, "Specify model to deploy for use in online endpoint")
                copy_blobs(self.emulator, container, path, folder / name, single=True)
                values[name] = folder / name
                continue
            values[name] = copy_blobs(self.emulator, container, path, folder / name, single=kind == "uri_file")
        return values

    def _upload_folder(self, folder: Path, container: str, prefix: str) -> None:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            self.emulator.blobs.write(
                container, prefix + relative, path.read_bytes(), content_type="application/octet-stream", metadata={}
            )

    def _upload_logs(self, name: str, folder: Path) -> None:
        """The job's `user_logs/` (its output) and `logs/` (what the batch driver writes) into its artifacts."""
        for logs in ("user_logs", "logs"):
            self._upload_folder(folder / logs, ARTIFACT_CONTAINER, f"ExperimentRun/dcid.{name}/{logs}/")

    def _upload_outputs(self, scope: str, name: str, outputs: dict[str, Path]) -> None:
        record = self.store.get_job(scope, name)
        assert record is not None
        body = record["body"]
        for output, folder in outputs.items():
            uri, container, prefix = output_uri(scope, name, output)
            self._upload_folder(folder, container, prefix)
            body["properties"]["outputs"][output]["uri"] = uri
        self.store.update_job_body(scope, name, body)


def _clean_environment() -> dict[str, str]:
    """The emulator's environment without what would point a job's own Azure calls back at a cloud choice."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "MLOPS_AZUREML"))}

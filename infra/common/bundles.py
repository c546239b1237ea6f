"""Deployable bundles, one per model version, laid out as an Azure ML online deployment needs them.

    <home>/packages/<model name>/<version>/
        code/score.py          the package's online scoring script (code_configuration: code=code, scoring_script=score.py)
        code/batch_score.py    the package's batch scoring script
        code/sample-request.json  the smoke test's request
        code/mlops-model.toml  the package's manifest (the scripts read their feature columns from it)
        model/                 the registered files (AZUREML_MODEL_DIR): the model, metrics.json, environment.json, ...
        requirements.txt       pinned from the model's environment lock, plus Azure ML's inference server
        conda.yml              the same, as an Azure ML environment's conda file
        Dockerfile             an image that serves the bundle with azmlinfsrv
        bundle.json            which model version this is (and whether its score.py may be micro-batched)

A bundle is written once (to a staging folder, then renamed) and reused afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from infra.backend import DEFAULT_PACKAGE, Bundle, ModelVersion
from infra.errors import BackendError
from model import layout
from model.package import MANIFEST, ModelPackage, load_package

INFERENCE_SERVER = "azureml-inference-server-http==1.5.1"
SCORE_SCRIPT, BATCH_SCRIPT, SAMPLE_REQUEST = "score.py", "batch_score.py", "sample-request.json"


class BundleBuilder:
    """Builds bundles of the model package's versions under `root` (normally `<home>/packages`)."""

    def __init__(self, root: Path, package: ModelPackage | None = None) -> None:
        self.root = root
        self.package = package or load_package(DEFAULT_PACKAGE)

    def build(self, model: ModelVersion) -> Bundle:
        target = self.root / model.name / str(model.version)
        if (target / "bundle.json").is_file() and not (target / "code" / SAMPLE_REQUEST).is_file():
            _set_aside(target)  # a bundle of an earlier release (no batch script, no sample request): built again
        if not (target / "bundle.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
            try:
                _write_bundle(staging, model, self.package)
                try:
                    os.rename(staging, target)
                except OSError:
                    if not (target / "bundle.json").is_file():
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return read_bundle(target)


def read_bundle(path: Path) -> Bundle:
    manifest = json.loads((path / "bundle.json").read_text())
    environment = json.loads((path / "model" / layout.ENVIRONMENT_FILE).read_text())
    return Bundle(model=manifest["model"], path=path, environment=environment)


def _set_aside(target: Path) -> None:
    aside = target.with_name(f".old-{target.name}-{os.getpid()}")
    with contextlib.suppress(OSError):
        os.rename(target, aside)
        shutil.rmtree(aside, ignore_errors=True)


def _write_bundle(folder: Path, model: ModelVersion, package: ModelPackage) -> None:
    source = Path(model.path)
    lock_file = source / layout.ENVIRONMENT_FILE
    if not (source / layout.METRICS_FILE).is_file() or not lock_file.is_file():
        raise BackendError(
            f"{model.id}: registered files at {source} lack {layout.METRICS_FILE} or {layout.ENVIRONMENT_FILE}"
        )
    shutil.copytree(source, folder / "model")
    (folder / "code").mkdir()
    shutil.copy2(package.score_script, folder / "code" / SCORE_SCRIPT)
    shutil.copy2(package.batch_script, folder / "code" / BATCH_SCRIPT)
    shutil.copy2(package.sample_request, folder / "code" / SAMPLE_REQUEST)
    shutil.copy2(package.manifest, folder / "code" / MANIFEST)
    lock: dict[str, Any] = json.loads(lock_file.read_text())
    pins = [f"{name}=={version}" for name, version in sorted(lock["libraries"].items())]
    (folder / "requirements.txt").write_text("\n".join([*pins, INFERENCE_SERVER]) + "\n")
    (folder / "conda.yml").write_text(_conda_file(model, lock["python"], [*pins, INFERENCE_SERVER]))
    (folder / "Dockerfile").write_text(_dockerfile(model, lock["python"]))
    manifest = {
        "model": model.id,
        "name": model.name,
        "version": model.version,
        "content_hash": model.content_hash,
        "package": package.name,
        "micro_batching": package.micro_batching,
    }
    (folder / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _conda_file(model: ModelVersion, python: str, pins: list[str]) -> str:
    lines = [f"# Scoring environment of {model.id}", "name: scoring", "channels: [conda-forge]", "dependencies:"]
    lines += [f"  - python={python}", "  - pip", "  - pip:", *(f"      - {pin}" for pin in pins)]
    return "\n".join(lines) + "\n"


def _dockerfile(model: ModelVersion, python: str) -> str:
    model_dir = f"/var/azureml-app/azureml-models/{model.name}/{model.version}"
    return f"""# Serves {model.id} with Azure ML's inference server, as an Azure ML online deployment would.
FROM python:{python}-slim
WORKDIR /var/azureml-app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY code/ code/
COPY model/ {model_dir}/
ENV AML_APP_ROOT=/var/azureml-app AZUREML_ENTRY_SCRIPT=code/score.py AZUREML_MODEL_DIR={model_dir}
EXPOSE 5001
CMD ["azmlinfsrv", "--entry_script", "code/score.py", "--model_dir", "{model_dir}", "--port", "5001"]
"""

"""An in-memory backend for unit tests of tasks: the `infra.backend.Backend` protocol, no process, no server.

It keeps the rules the real adapters keep, and `tests/contract/` checks that it does (the same module
runs against it, the local backend and the Azure ML emulator):

- registry: versions of a name are consecutive from 1; the same bytes register once (idempotent on the
  folder's SHA-256); an unknown version is `MissingResourceError` naming the versions there are; an alias
  points at exactly one existing version; archiving hides a version from `list()` and keeps it readable.
- endpoints: deployment names of 3-32 letters, digits or '-'; a deployment taking traffic can be neither
  replaced nor removed; traffic names only existing deployments, whole percentages summing to 100 (or 0);
  mirror traffic at most 50 % and only to deployments taking no live traffic.
- jobs: a job name seen before re-attaches (`reattached=True`) and returns the same outputs; a missing
  data file fails the job (`JobFailedError`).

What it does not do, by design: load or run a model. A trained "model" is a coefficient (`fake-model.json`),
and scoring a row is that coefficient times the sum of its features, which is enough for the tasks' logic
(expected answers, wrong answers, failed rows) and fast. `broken_scoring` makes a bundle answer wrongly.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from infra.backend import (
    BatchRunner,
    Bundle,
    Collected,
    CollectedRequest,
    DeploymentInfo,
    EndpointState,
    Invocation,
    MiniBatch,
    MiniBatchResult,
    ModelVersion,
    Registration,
    Scored,
    TrainOutput,
    TrainSpec,
)
from infra.common.batching import InProcess
from infra.common.hashing import folder_sha256
from infra.common.training import attempt_name
from infra.errors import BackendError, JobFailedError, MissingResourceError
from infra.settings import Settings
from infra.storage import Storage
from model import layout
from model.package import SCORE_COLUMN

FAKE_MODEL = "fake-model.json"
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


class FakeRefusedError(BackendError):
    """The fake refused an operation the real adapters refuse too (a bad name, bad traffic, ...)."""


def coefficient(alpha: float) -> float:
    """The fake model's one parameter, from the training's alpha (a smaller alpha fits "better")."""
    return round(1.0 / (1.0 + alpha), 6)


def model_coefficient(folder: Path) -> float:
    """The fake model's coefficient; a folder the fake did not train (real model files) scores with 1."""
    model_file = folder / FAKE_MODEL
    return float(json.loads(model_file.read_text())["coef"]) if model_file.is_file() else 1.0


def write_fake_model(folder: Path, coef: float, metrics: dict[str, float] | None = None) -> Path:
    """A trained folder as the fake's jobs write it: the coefficient, metrics and the environment lock."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAKE_MODEL).write_text(json.dumps({"coef": coef}))
    (folder / layout.METRICS_FILE).write_text(json.dumps(metrics or {"mse": 3000.0}))
    (folder / layout.ENVIRONMENT_FILE).write_text(json.dumps({"python": "3.11", "libraries": {"scikit-learn": "fake"}}))
    return folder


def score_rows(coef: float, rows: list[list[float]]) -> list[float]:
    return [round(coef * sum(row), 6) for row in rows]


class FakeJobs:
    """Training that writes what a real job writes (model file, metrics, environment, training record)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.submitted: list[str] = []  # job names, in the order they were really run (re-attaching is not a run)
        self._done: dict[str, TrainOutput] = {}
        self._failed: set[str] = set()

    def logged_metrics(self, job_name: str) -> dict[str, float] | None:
        done = self._done.get(job_name)
        return dict(done.metrics) if done else None

    def train(self, spec: TrainSpec) -> TrainOutput:
        attempt = (
            0  # a failed job's name is never used again (Azure ML's rule; infra.common.training names the attempts)
        )
        while attempt_name(spec.job_name, attempt) in self._failed:
            attempt += 1
        name = attempt_name(spec.job_name, attempt)
        spec = spec.model_copy(update={"job_name": name})
        if spec.job_name in self._done:
            return self._done[spec.job_name].model_copy(update={"reattached": True})
        if not spec.data.is_file():
            self._failed.add(name)
            raise JobFailedError(f"job {spec.job_name} failed: {spec.data}: no such training data file")
        self.submitted.append(spec.job_name)
        alpha = float(spec.parameters.get("alpha", 0.5))
        outputs = self.root / spec.job_name / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        metrics = {"mse": round(3000 + 1000 * alpha, 6)}
        training = {"parameters": spec.parameters, "data": str(spec.data)}
        write_fake_model(outputs, coefficient(alpha), metrics)
        environment = json.loads((outputs / layout.ENVIRONMENT_FILE).read_text())
        (outputs / layout.TRAINING_FILE).write_text(json.dumps(training))
        log = self.root / spec.job_name / "std_log.txt"
        log.write_text(f"trained with alpha={alpha}\n")
        output = TrainOutput(
            job_name=spec.job_name,
            outputs=outputs,
            metrics=metrics,
            environment=environment,
            training=training,
            log=log,
        )
        self._done[spec.job_name] = output
        return output


class FakeRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._versions: dict[str, list[ModelVersion]] = {}
        self._aliases: dict[str, dict[str, int]] = {}

    def register(self, name: str, source: Path, *, tags: dict[str, str], properties: dict[str, str]) -> Registration:
        content_hash = folder_sha256(source)  # raises BackendError for an empty or missing folder, as the others
        versions = self._versions.setdefault(name, [])
        for existing in versions:
            if existing.content_hash == content_hash:
                return Registration(model=existing, created=False)
        stored = self.root / content_hash
        if not stored.is_dir():
            shutil.copytree(source, stored)
        model = ModelVersion(
            name=name,
            version=len(versions) + 1,
            content_hash=content_hash,
            path=str(stored),
            tags=dict(tags),
            properties=dict(properties),
            created_time=datetime.now(UTC),
        )
        versions.append(model)
        return Registration(model=model, created=True)

    def get(self, name: str, version: int) -> ModelVersion:
        versions = self._versions.get(name, [])
        if not 1 <= version <= len(versions):
            known = ", ".join(str(v.version) for v in versions) or "none"
            raise MissingResourceError(f"model {name!r} has no version {version} (registered versions: {known})")
        return versions[version - 1]

    def list(self, name: str | None = None, *, include_archived: bool = False) -> list[ModelVersion]:
        names = sorted(self._versions) if name is None else [name]
        return [v for n in names for v in self._versions.get(n, []) if include_archived or not v.archived]

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.get(name, version)
        self._aliases.setdefault(name, {})[alias] = version

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        version = self._aliases.get(name, {}).get(alias)
        return None if version is None else self.get(name, version)

    def archive(self, name: str, version: int) -> bool:
        model = self.get(name, version)
        if model.archived:
            return False
        self._versions[name][version - 1] = model.model_copy(update={"archived": True})
        return True

    def aliases(self, name: str) -> dict[str, int]:
        return dict(sorted(self._aliases.get(name, {}).items()))


class FakeBundles:
    """A bundle is the model's files and the sample request, in a folder per version."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: list[str] = []

    def build(self, model: ModelVersion) -> Bundle:
        target = self.root / model.name / str(model.version)
        source = Path(model.path)
        if not (source / layout.METRICS_FILE).is_file() or not (source / layout.ENVIRONMENT_FILE).is_file():
            raise BackendError(
                f"{model.id}: registered files at {source} lack {layout.METRICS_FILE} or {layout.ENVIRONMENT_FILE}"
            )
        if not (target / "bundle.json").is_file():
            shutil.copytree(model.path, target / "model", dirs_exist_ok=True)
            (target / "code").mkdir(parents=True, exist_ok=True)
            request = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}
            (target / "code" / "sample-request.json").write_text(json.dumps(request))
            (target / "bundle.json").write_text(json.dumps({"model": model.id}))
            self.built.append(model.id)
        environment = json.loads((target / "model" / layout.ENVIRONMENT_FILE).read_text())
        return Bundle(model=model.id, path=target, environment=environment)


def broken_scoring(bundle: Bundle) -> None:
    """Make a bundle answer wrong values (its coefficient doubled), as a bad `score.py` would."""
    (bundle.model_dir / FAKE_MODEL).write_text(json.dumps({"coef": model_coefficient(bundle.model_dir) * 2}))


@dataclass
class _Endpoint:
    deployments: dict[str, Bundle] = field(default_factory=dict)
    traffic: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)
    running: bool = True


def _valid_deployment_name(name: str) -> bool:
    return 3 <= len(name) <= 32 and name[0].isalpha() and all(c.isalnum() or c == "-" for c in name)


_CHECK_HEADER = "x-mlops-check"  # synthetic traffic (smoke test, rollout checks), which endpoints do not collect


class FakeEndpoints:
    def __init__(self) -> None:
        self._endpoints: dict[str, _Endpoint] = {}
        self.invocations: list[tuple[str, str]] = []  # (endpoint, deployment that answered)
        self._collected: dict[str, list[CollectedRequest]] = {}  # the scored requests, as an endpoint server keeps

    def _endpoint(self, name: str) -> _Endpoint:
        if name not in self._endpoints:
            raise MissingResourceError(f"endpoint {name!r} does not exist")
        return self._endpoints[name]

    def _running(self, name: str) -> _Endpoint:
        """The endpoint, for an operation that needs it serving (as a local endpoint's management API does)."""
        endpoint = self._endpoint(name)
        if not endpoint.running:
            raise MissingResourceError(f"endpoint {name!r} is not running (start it with `mlops endpoint start`)")
        return endpoint

    def _state(self, name: str) -> EndpointState:
        endpoint = self._endpoint(name)
        deployments = {
            d: DeploymentInfo(model=bundle.model, traffic=endpoint.traffic.get(d, 0))
            for d, bundle in endpoint.deployments.items()
        }
        return EndpointState(name=name, url=f"fake://{name}", running=endpoint.running, deployments=deployments)

    def ensure(self, name: str) -> EndpointState:
        self._endpoints.setdefault(name, _Endpoint()).running = True
        return self._state(name)

    def get(self, name: str) -> EndpointState | None:
        return self._state(name) if name in self._endpoints else None

    def add_deployment(self, name: str, deployment: str, bundle: Bundle) -> EndpointState:
        endpoint = self._running(name)
        if not _valid_deployment_name(deployment):
            raise FakeRefusedError(
                f"deployment name {deployment!r}: use 3-32 letters, digits or '-', starting with a letter"
            )
        if endpoint.traffic.get(deployment, 0) > 0:
            raise FakeRefusedError(
                f"deployment {deployment!r} takes {endpoint.traffic[deployment]} % of traffic; "
                "move its traffic before replacing it"
            )
        endpoint.deployments[deployment] = bundle
        endpoint.traffic.setdefault(deployment, 0)
        return self._state(name)

    def set_traffic(self, name: str, traffic: dict[str, int]) -> EndpointState:
        endpoint = self._running(name)
        unknown = sorted(set(traffic) - set(endpoint.deployments))
        if unknown:
            raise FakeRefusedError(f"traffic names unknown deployment(s) {', '.join(unknown)}")
        if any(type(v) is not int or not 0 <= v <= 100 for v in traffic.values()):
            raise FakeRefusedError(f"traffic weights must be whole numbers from 0 to 100, got {traffic}")
        if sum(traffic.values()) not in (0, 100):
            raise FakeRefusedError(f"traffic weights must sum to 100, got {sum(traffic.values())} ({traffic})")
        endpoint.traffic = {d: traffic.get(d, 0) for d in endpoint.deployments}
        endpoint.mirror = {d: p for d, p in endpoint.mirror.items() if endpoint.traffic[d] == 0}
        return self._state(name)

    def remove_deployment(self, name: str, deployment: str) -> EndpointState:
        endpoint = self._running(name)
        if deployment not in endpoint.deployments:
            raise MissingResourceError(f"deployment {deployment!r} does not exist on endpoint {name!r}")
        if endpoint.traffic.get(deployment, 0) > 0:
            raise FakeRefusedError(
                f"deployment {deployment!r} takes {endpoint.traffic[deployment]} % of traffic; "
                "move its traffic before removing it"
            )
        del endpoint.deployments[deployment]
        endpoint.traffic.pop(deployment, None)
        endpoint.mirror.pop(deployment, None)
        return self._state(name)

    def set_mirror(self, name: str, mirror: dict[str, int]) -> dict[str, int]:
        endpoint = self._running(name)
        unknown = sorted(set(mirror) - set(endpoint.deployments))
        if unknown:
            raise FakeRefusedError(f"mirror traffic names unknown deployment(s) {', '.join(unknown)}")
        if any(type(v) is not int or not 0 <= v <= 50 for v in mirror.values()):
            raise FakeRefusedError(f"mirror traffic must be whole percentages from 0 to 50, got {mirror}")
        live = sorted(d for d, v in mirror.items() if v > 0 and endpoint.traffic.get(d, 0) > 0)
        if live:
            raise FakeRefusedError(f"deployment(s) {', '.join(live)} take live traffic and cannot also be mirrored")
        endpoint.mirror = {d: v for d, v in mirror.items() if v > 0}
        return dict(endpoint.mirror)

    def invoke(
        self, name: str, body: bytes, *, deployment: str | None = None, headers: dict[str, str] | None = None
    ) -> Invocation:
        endpoint = self._running(name)
        chosen = deployment or self._pick(endpoint)
        if chosen is None or chosen not in endpoint.deployments:
            answer = {"error": f"endpoint {name!r} has no deployment {chosen or 'taking traffic'}"}
            return Invocation(
                status=503 if chosen is None else 404, body=json.dumps(answer).encode(), headers={}, latency_ms=0.1
            )
        self.invocations.append((name, chosen))
        coef = model_coefficient(endpoint.deployments[chosen].model_dir)
        out_headers = {"azureml-model-deployment": chosen, **(headers or {})}
        try:
            rows = json.loads(body)["data"]
            result = score_rows(coef, [[float(v) for v in row] for row in rows])
        except (ValueError, KeyError, TypeError) as exc:
            return Invocation(
                status=400, body=json.dumps({"error": str(exc)}).encode(), headers=out_headers, latency_ms=0.1
            )
        answer = {"result": result}
        if _CHECK_HEADER not in {h.lower() for h in headers or {}}:  # synthetic traffic is not collected
            request_id = {k.lower(): v for k, v in (headers or {}).items()}.get("x-ms-request-id") or uuid.uuid4().hex
            self._collected.setdefault(name, []).append(
                CollectedRequest(
                    time=time.time(),
                    request=json.loads(body),
                    response=answer,
                    request_id=request_id,
                    model=endpoint.deployments[chosen].model,
                )
            )
        return Invocation(status=200, body=json.dumps(answer).encode(), headers=out_headers, latency_ms=0.1)

    def collected(self, name: str, since: float) -> Collected:
        kept = [r for r in self._collected.get(name, []) if r.time >= since]
        return Collected(source=f"fake://{name}/collected", requests=kept)

    def _pick(self, endpoint: _Endpoint) -> str | None:
        """Deterministic weighted choice: the n-th request goes where the cumulative shares put it."""
        serving = [(d, p) for d, p in sorted(endpoint.traffic.items()) if p > 0]
        if not serving:
            return None
        slot = (len(self.invocations) * 37) % 100
        for deployment, percent in serving:
            if slot < percent:
                return deployment
            slot -= percent
        return serving[-1][0]

    def key(self, name: str) -> str:
        self._endpoint(name)
        return f"fake-key-{name}"

    def stop(self, name: str) -> bool:
        endpoint = self._endpoints.get(name)
        if endpoint is None or not endpoint.running:
            return False
        endpoint.running = False
        return True


class FakeBatch:
    """Mini-batches of whole rows (a list of lines, not byte ranges); a row that is not numbers fails its mini-batch.
    Scored one at a time through the runner, as the local backend does."""

    def plan(self, files: list[Path], rows_per_batch: int) -> list[MiniBatch]:
        batches: list[MiniBatch] = []
        header: list[str] | None = None
        for file in files:
            text = file.read_bytes()
            first_line_end = text.index(b"\n") + 1
            columns = text[:first_line_end].decode().strip().split(",")
            if header is not None and columns != header:
                raise FakeRefusedError(f"{file}: columns {','.join(columns)} differ from {','.join(header)}")
            header = columns
            starts = [first_line_end]
            position, lines = first_line_end, 0
            while position < len(text):
                position = text.index(b"\n", position) + 1 if b"\n" in text[position:] else len(text)
                lines += 1
                if lines % rows_per_batch == 0 and position < len(text):
                    starts.append(position)
            ends = [*starts[1:], len(text)]
            for start, end in zip(starts, ends, strict=True):
                batches.append(MiniBatch(index=len(batches), file=file, start=start, end=end, columns=columns))
        return batches

    def score(self, model: ModelVersion, batch: MiniBatch, work: Path) -> MiniBatchResult:
        coef = model_coefficient(Path(model.path))
        lines = _read_lines(batch)
        scored = []
        for number, line in enumerate(lines, start=1):
            values = next(csv.reader([line]))
            try:
                score = score_rows(coef, [[float(v) for v in values[: len(FEATURES)]]])[0]
            except ValueError:
                raise FakeRefusedError(f"{batch.describe()}: row {number} is not numbers: {line!r}") from None
            scored.append(f"{line},{score}")
        work.mkdir(parents=True, exist_ok=True)
        part = work / f"part-{batch.index:06d}.csv"
        part.write_text("".join(f"{row}\n" for row in scored))
        return MiniBatchResult(index=batch.index, rows_in=len(lines), rows_out=len(scored), part=part)

    def count_rows(self, batch: MiniBatch) -> int:
        return len(_read_lines(batch))

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
        return (runner or InProcess()).each(partial(self.score, model, work=work), batches, parallelism)

    def assemble(self, results: list[MiniBatchResult], columns: list[str], out: Path) -> int:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w") as target:
            target.write(",".join([*columns, SCORE_COLUMN]) + "\n")
            for result in sorted(results, key=lambda r: r.index):
                target.write(result.part.read_text())
        return out.stat().st_size


def _read_lines(batch: MiniBatch) -> list[str]:
    with batch.file.open("rb") as source:
        source.seek(batch.start)
        data = source.read(batch.end - batch.start)
    return [line for line in io.StringIO(data.decode()).read().splitlines() if line]


class FakeWorkspace:
    def __init__(self) -> None:
        self.exists = False

    def ensure(self) -> list[str]:
        if self.exists:
            return []
        self.exists = True
        return ["created fake workspace"]

    def reserve_names(self) -> list[str]:
        return []

    def tidy(self) -> list[str]:
        return []

    def delete(self) -> list[str]:
        existed, self.exists = self.exists, False
        return ["deleted fake workspace"] if existed else []


class FakeMonitoring:
    def ensure(self, model: ModelVersion, thresholds: dict[str, float]) -> str | None:
        return None


class FakeBackend:
    """Every sub-protocol in memory (files under `root` where the protocol passes paths); storage is folders."""

    name = "fake"

    def __init__(self, root: Path, settings: Settings | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.jobs = FakeJobs(root / "jobs")
        self.registry = FakeRegistry(root / "registry")
        self.bundles = FakeBundles(root / "bundles")
        self.endpoints = FakeEndpoints()
        self.batch = FakeBatch()
        self.workspace = FakeWorkspace()
        self.monitoring = FakeMonitoring()
        self.storage = Storage(settings) if settings is not None else None


def write_features_csv(path: Path, rows: list[list[Any]]) -> Path:
    """A CSV with the diabetes features' header and `rows`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(FEATURES) + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path

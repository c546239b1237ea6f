"""The one interface between the pipeline and the platform it runs on, and the values that cross it.

A `Backend` groups operations the way Azure ML's `MLClient` does: `jobs` (training runs),
`registry` (model versions and aliases), `bundles` (what is deployed) and `endpoints` (online
endpoints with deployments and traffic); batch scoring, storage and provisioning join it as the pipeline grows.
The adapters (`infra.local`, `infra.azureml`) import this module, never the reverse; `infra.factory.open_backend`
picks one."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from infra.storage import Storage
from model.package import ModelPackage, default_package, load_package

DEFAULT_PACKAGE = default_package()
# A version's property, when it was promoted through a registry outside this machine: that registry's version, as a
# deployment names it (an Azure ML registry's `azureml://registries/<registry>/models/<name>/versions/<v>`)
SHARED_MODEL = "shared_model"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True)


class TrainSpec(_Value):
    """A training run to perform. `job_name` is deterministic so a retried run re-attaches instead of repeating."""

    job_name: str
    data: Path
    parameters: dict[str, Any]
    timeout_seconds: float = 3600
    package: Path | None = None  # the model package whose training command runs; None: the diabetes sample (`model/`)

    def model_package(self) -> ModelPackage:
        return load_package(self.package or DEFAULT_PACKAGE)


class TrainOutput(_Value):
    """A finished training run: the folder with the model, metrics, environment lock and training record."""

    job_name: str
    outputs: Path
    metrics: dict[str, float]
    environment: dict[str, Any]
    training: dict[str, Any]
    log: Path
    reattached: bool = False


class ModelVersion(_Value):
    """One registered model version, as Azure ML's registry describes it."""

    name: str
    version: int
    content_hash: str
    path: str
    tags: dict[str, str]
    properties: dict[str, str]
    created_time: datetime
    archived: bool = False

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"


class Registration(_Value):
    """The answer to a registration: the version, and whether it was created now or already held these bytes."""

    model: ModelVersion
    created: bool


class Bundle(_Value):
    """A deployable bundle of one model version: `code/score.py`, `model/`, the pinned environment, a Dockerfile."""

    model: str
    path: Path
    environment: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def score_script(self) -> Path:
        return self.path / "code" / "score.py"

    @property
    def batch_script(self) -> Path:
        return self.path / "code" / "batch_score.py"

    @property
    def sample_request(self) -> Path:
        return self.path / "code" / "sample-request.json"


class DeploymentInfo(_Value):
    """One deployment of an endpoint: the model it serves and its share of traffic (percent)."""

    model: str
    traffic: int


class DiskUse(_Value):
    """Bytes an endpoint holds on disk in one kind of file, against its cap (bytes) and age (hours)."""

    held_bytes: int
    cap_bytes: int
    max_age_hours: float


class EndpointState(_Value):
    """An online endpoint: where to send requests and what serves them."""

    name: str
    url: str
    running: bool
    deployments: dict[str, DeploymentInfo]
    health: dict[str, Any] | None = None  # a local endpoint's supervision: state, restarts, last exit
    disk: dict[str, DiskUse] | None = None  # a local endpoint's files: collected requests, span files

    @property
    def scoring_url(self) -> str:
        return f"{self.url}/score"

    @property
    def live(self) -> str | None:
        """The deployment with the largest share of traffic, if any takes traffic."""
        serving = [(info.traffic, name) for name, info in self.deployments.items() if info.traffic > 0]
        return max(serving)[1] if serving else None

    def traffic(self) -> dict[str, int]:
        return {name: info.traffic for name, info in self.deployments.items()}


class Invocation(_Value):
    """One scoring request's answer."""

    status: int
    body: bytes
    headers: dict[str, str]
    latency_ms: float

    def payload(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class CollectedRequest(_Value):
    """One scored request an endpoint collected (as Azure ML's data collector does): when (epoch seconds), and its
    request and response bodies as JSON (a body that was not JSON: its text); the request's id (`x-ms-request-id`) and
    the model (`name:version`) that answered, where the backend keeps them ("" where it does not)."""

    time: float
    request: Any
    response: Any
    request_id: str = ""
    model: str = ""


class Collected(_Value):
    """What an endpoint collected since some time: where it was read (for reports), and the requests in order.
    `dropped_before`: the endpoint's retention deleted requests up to this time (epoch seconds); when it is later
    than the time asked for, the window was cut short (None: nothing dropped that the window asked for)."""

    source: str
    requests: list[CollectedRequest]
    dropped_before: float | None = None


class MiniBatch(_Value):
    """A byte range of one input CSV holding whole lines; `columns` is the file's header."""

    index: int
    file: Path
    start: int
    end: int
    columns: list[str]

    def describe(self) -> str:
        return f"{self.file.name} mini-batch {self.index} (bytes {self.start}-{self.end})"


class MiniBatchResult(_Value):
    """A scored mini-batch: its rows (input lines) and the part file holding them with their scores."""

    index: int
    rows_in: int
    rows_out: int
    part: Path
    reused: bool = False  # an earlier run's scores of the same bytes and model (local batch scoring)


class Jobs(Protocol):
    def train(self, spec: TrainSpec) -> TrainOutput:
        """Run the package's training command on the spec and return its outputs (re-attaching to a finished run)."""
        ...

    def logged_metrics(self, job_name: str) -> dict[str, float] | None:
        """What the training job logged as its metrics, where its backend keeps them (Azure ML: the job's MLflow
        run; local: the job's `metrics.json`); None when the job is unknown or logged none."""
        ...


class Registry(Protocol):
    def register(self, name: str, source: Path, *, tags: dict[str, str], properties: dict[str, str]) -> Registration:
        """Register the folder `source` as the next version of `name`, unless these bytes are already a version."""
        ...

    def get(self, name: str, version: int) -> ModelVersion:
        """One version; `MissingResourceError` if it does not exist."""
        ...

    def list(self, name: str | None = None, *, include_archived: bool = False) -> list[ModelVersion]:
        """Versions ordered by name and version."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` (for example `champion`) at an existing version."""
        ...

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version an alias points at, or None."""
        ...

    def archive(self, name: str, version: int) -> bool:
        """Archive a version (hidden from `list()`, files kept); False if it already was."""
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of a model and its version."""
        ...


class Bundles(Protocol):
    def build(self, model: ModelVersion) -> Bundle:
        """The bundle of a registered version, built once and reused."""
        ...


class Endpoints(Protocol):
    def ensure(self, name: str) -> EndpointState:
        """Create the endpoint if needed and make sure it is serving requests."""
        ...

    def get(self, name: str) -> EndpointState | None:
        """The endpoint's state, or None if it was never created."""
        ...

    def add_deployment(self, name: str, deployment: str, bundle: Bundle) -> EndpointState:
        """Add (or replace, at 0 % traffic) a deployment serving `bundle`; it takes no traffic yet."""
        ...

    def set_traffic(self, name: str, traffic: dict[str, int]) -> EndpointState:
        """Set every deployment's share of traffic; the shares sum to 100."""
        ...

    def remove_deployment(self, name: str, deployment: str) -> EndpointState:
        """Remove a deployment that takes no traffic."""
        ...

    def set_mirror(self, name: str, mirror: dict[str, int]) -> dict[str, int]:
        """Copy a share (percent, at most 50) of unpinned requests to deployments taking no traffic, answers
        dropped; `{}` stops it. Returns the shares now set."""
        ...

    def invoke(
        self, name: str, body: bytes, *, deployment: str | None = None, headers: dict[str, str] | None = None
    ) -> Invocation:
        """Send one scoring request (pinned to `deployment` when given) and return the answer, whatever its status."""
        ...

    def key(self, name: str) -> str:
        """The endpoint's primary scoring key."""
        ...

    def stop(self, name: str) -> bool:
        """Stop serving (deployments and traffic are kept for the next start); False if it was not running."""
        ...

    def collected(self, name: str, since: float) -> Collected | None:
        """The scored requests the endpoint collected at or after `since` (epoch seconds), for the drift monitor
        (an endpoint that collected nothing yet: none); None when this backend collects no scoring data for it
        (Azure ML: infra/azureml/endpoints.py says why)."""
        ...


Scored = tuple[list[MiniBatchResult], dict[int, str]]
"""What scoring the mini-batches gave: each scored one's result, and each failed one's error by its index."""


class BatchRunner(Protocol):
    """How the caller runs the scoring a backend asks for: the batch-score flow runs each mini-batch as a task run
    of its own (retried, with progress), and a platform job as one task run (a retry re-attaches to the job);
    `infra.common.batching.InProcess` runs them without a flow."""

    def each(self, score: Callable[[MiniBatch], MiniBatchResult], batches: list[MiniBatch], parallelism: int) -> Scored:
        """Score every mini-batch with `score`, `parallelism` at a time; an error fails only its mini-batch."""
        ...

    def whole(self, job: Callable[[], Scored], batches: list[MiniBatch]) -> Scored:
        """Run `job`, which scores every mini-batch in one job of the platform."""
        ...


class Batch(Protocol):
    def plan(self, files: list[Path], rows_per_batch: int) -> list[MiniBatch]:
        """Cut the inputs into mini-batches of about `rows_per_batch` rows, after checking their headers."""
        ...

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
        """Score every mini-batch into part files under `work`: the results, and each failed mini-batch's error
        (bad input fails its mini-batch, naming the problem). The backend decides how: here, one mini-batch at a
        time through `runner.each` (local), or in one batch job of the platform through `runner.whole` (Azure ML,
        where `parallelism` and `error_threshold` configure the job). `runner` defaults to `InProcess`."""
        ...

    def count_rows(self, batch: MiniBatch) -> int:
        """The data lines in a mini-batch (for the reconciliation of one that failed)."""
        ...

    def assemble(self, results: list[MiniBatchResult], columns: list[str], out: Path) -> int:
        """Write the header and the parts, in order, as one CSV; return the bytes written."""
        ...


class Workspace(Protocol):
    def ensure(self) -> list[str]:
        """Create what the workspace needs; say what was created (nothing when it all exists)."""
        ...

    def reserve_names(self) -> list[str]:
        """Make sure the endpoint names are this workspace's before anything trains (on Azure ML they are unique
        per region across all customers: the endpoints are created, without deployments); say what was created.
        A name held elsewhere raises ConfigError naming its setting."""
        ...

    def tidy(self) -> list[str]:
        """Release idle capacity (compute scaled to 0 nodes); say what changed."""
        ...

    def delete(self) -> list[str]:
        """Delete the workspace and everything in it; say what was deleted."""
        ...


class Monitoring(Protocol):
    def ensure(self, model: ModelVersion, thresholds: dict[str, float]) -> str | None:
        """Keep the platform's own drift monitor of the serving deployment as it should be; return its name, or
        None when the `monitor` flow is the only monitor (locally, and on Azure ML: infra/azureml/monitoring.py
        says why)."""
        ...


class Backend(Protocol):
    @property
    def name(self) -> str:
        """`local` or `azureml`."""
        ...

    @property
    def jobs(self) -> Jobs: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def bundles(self) -> Bundles: ...

    @property
    def endpoints(self) -> Endpoints: ...

    @property
    def batch(self) -> Batch: ...

    @property
    def workspace(self) -> Workspace: ...

    @property
    def monitoring(self) -> Monitoring: ...

    @property
    def storage(self) -> Storage: ...

"""What `mlops run` starts before it imports Prefect (issue 27), on the local backend.

Prefect's import and the pipeline's flow run take about two seconds of a run's start, in this process, while the
machine's other core idles. Two things the pipeline will certainly need start then, each in a thread of its own:

- the training job (`training_started_early`): its inputs resolved as the train-register flow resolves them
  (`infra.common.train_inputs`), so it is the same job, and the flow's `train-model` task finds it running or
  done (`infra.factory.train_ahead`). The package's data checks run beside it: data that fails them stops the job
  and leaves none, as the flow would have started none;
- the endpoint the deploy step deploys to (`endpoint_started_early`).

Both are work the run would do anyway, started sooner; what fails here is left for the flow, which does it again
and reports it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.common.train_inputs import training_request
from infra.errors import BackendError
from infra.factory import train_ahead
from infra.settings import Settings
from model.package import ModelPackage

_log = logging.getLogger(__name__)


@contextmanager
def started_early(settings: Settings, args: argparse.Namespace) -> Iterator[None]:
    """`mlops run`'s `prepare`: the training job and the endpoint, both at once. Three processes on two cores for
    about two seconds, Prefect's import being the third: measured against starting the endpoint once the training
    is over, the same run time (5.9 s, four runs each), and simpler."""
    with training_started_early(settings, args), endpoint_started_early(settings, args):
        yield


@contextmanager
def training_started_early(settings: Settings, args: argparse.Namespace) -> Iterator[None]:
    """Start the run's training job now, in a thread; the flow's `train-model` waits for it (one run of a job name
    at a time in a process) and finds its outputs. The package's data checks run beside the job: data that fails
    them stops it, and no job is left (the flow's `check-training-data` then stops the run before any job). The
    early training is over when the block ends. Issue 27: the job's 1.5 s ran after Prefect's start; now beside it."""
    if settings.backend != "local":
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=_train_ahead,
        args=(settings, getattr(args, "alpha", None), stop),
        name="mlops-train-early",
        daemon=True,
    )
    thread.start()
    try:
        yield
    except BaseException:  # the run ends before its flow took the job (Ctrl-C, an error): a running job stops
        stop.set()
        raise
    finally:
        thread.join()


def _train_ahead(settings: Settings, alpha: float | None, stop: threading.Event) -> None:
    try:
        request = training_request(settings, settings.backend, None, alpha)  # "local": LocalBackend.name
        # an unchanged re-run finds its job there: nothing starts, nothing is checked
        train_ahead(settings, request.spec, lambda: _passes_checks(settings.package, request.spec.data), stop)
    except Exception:  # noqa: BLE001 - the flow resolves, checks and trains again, and reports what fails
        _log.debug("the early training start failed; the flow trains", exc_info=True)


def _passes_checks(package: ModelPackage, data: Path) -> bool:
    """The flow's `check-training-data` verdict on `data` (True when the package declares no checks)."""
    if not package.schema.declared:
        return True
    from model.validation import check_file  # pandas: the main thread imports it too, for the flows

    return check_file(data, package.schema, (*package.features, package.target)).passed


@contextmanager
def endpoint_started_early(settings: Settings, args: argparse.Namespace) -> Iterator[None]:  # noqa: ARG001
    """`mlops run` on the local backend: the endpoint it deploys to starts now, in a thread, while this process
    imports Prefect and trains; the deploy step's `ensure-endpoint` then finds it up (or waits for this start,
    serialised by the endpoint's start lock) and its first deployment loads without importing the model's
    libraries, which the server imported as it started (`EndpointConfig.preload`). Issue 27: ~2 s of a new
    workspace's run. A start that fails here is left for the deploy step to try again and report; a run that ends
    without deploying stops the endpoint this started when it serves nothing."""
    if settings.backend != "local":
        yield
        return
    from infra.endpoint_server import LocalEndpoints
    from infra.endpoint_server.config import EndpointConfig

    config = dataclasses.replace(EndpointConfig.from_settings(settings), preload=settings.package.libraries)
    endpoints = LocalEndpoints(settings.home / "endpoints", config)
    started: list[bool] = []

    def start() -> None:
        process = endpoints.process(settings.endpoint_name)
        if process.running():
            return
        with contextlib.suppress(BackendError):
            process.start(endpoints.config.start_timeout)
            started.append(True)

    thread = threading.Thread(target=start, name="mlops-endpoint-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
        state = endpoints.get(settings.endpoint_name) if started else None
        if state is not None and not state.deployments:
            endpoints.stop(settings.endpoint_name)

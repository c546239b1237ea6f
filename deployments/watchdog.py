"""The platform's watchdog: the endpoint comes back when its supervisor went without stopping it.

    python -m deployments.watchdog --platform FOLDER     (started, supervised, by `mlops platform up`)

Twice a second it reads the endpoint's supervisor state (`infra.services.processes.supervisor_lost`: the state
file says a supervisor runs it, and none does: `kill -9`, an out-of-memory kill). It then starts the endpoint
again as `mlops endpoint start` does, with the deployments, bundles, traffic, mirror and keys saved in its
folder, and logs one line saying what it found and what it did. An endpoint stopped on purpose
(`mlops endpoint stop`, `mlops platform down`) says `stopped` and is left alone; a start that fails stops the
endpoint (its log says why), so a broken endpoint is not started again and again.

Why a process of its own: the endpoint's supervisor restarts the server, but nothing restarts the supervisor;
the Prefect worker runs flows on a schedule of minutes. The watchdog is itself supervised (restarted when it
dies); `mlops platform up` starts it again when its own supervisor is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from infra.endpoint_server import EndpointConfig, LocalEndpoints
from infra.errors import BackendError
from infra.services.base import SupervisedService
from infra.services.processes import lost_reason, supervisor_lost
from infra.settings import load_settings
from model.paths import command_environment

MODULE = "deployments.watchdog"
INTERVAL_SECONDS = 0.5
READY = "watching"


class Watchdog(SupervisedService):
    """The watchdog process of the platform in `folder`: `watchdog.pid` and `watchdog.log` there."""

    stem = "watchdog"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def identity(self) -> tuple[str, ...]:
        return (MODULE, str(self.folder))

    def start(self, env: dict[str, str]) -> str:
        """Start it unless it runs (`env`: the platform's, which names the workspace); say which."""
        if self.pid() is not None:
            return "running"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.supervise(
            [sys.executable, "-m", MODULE, "--platform", str(self.folder)],
            command_environment({k: v for k, v in env.items() if k != "PYTHONPATH"}),  # the code root first
            ready=lambda _pid: self.log.is_file() and READY in self.log.read_text(errors="replace"),
            what="the endpoint watchdog",
            hint="see its log",
            timeout=60,
        )
        return "started"


def restore(endpoints: LocalEndpoints, name: str, say: Callable[[str], None]) -> bool:
    """Start the endpoint `name` again if its supervisor is lost, saying what was found, then what was done; whether
    it had to."""
    lost = supervisor_lost(endpoints.process(name).pid_file)
    if lost is None:
        return False
    say(f"endpoint {name}: {lost_reason(lost)}; starting it again")
    try:
        state = endpoints.ensure(name)
    except BackendError as exc:
        say(f"endpoint {name}: starting it again failed: {exc}")
        return True
    serving = ", ".join(f"{n}: {d.model} {d.traffic} %" for n, d in state.deployments.items()) or "no deployments"
    say(f"endpoint {name}: serving again at {state.scoring_url} ({serving})")
    return True


def _say(text: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    print(json.dumps({"time": stamp, "watchdog": text}), flush=True)  # noqa: T201


def _reap() -> None:
    """Collect the endpoint supervisors it started that have since exited (they are its children)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", required=True, help="the platform's folder (tells this watchdog apart)")
    parser.parse_args(argv)
    settings = load_settings()
    endpoints = LocalEndpoints(settings.home / "endpoints", EndpointConfig.from_settings(settings))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _say(f"{READY} endpoint {settings.endpoint_name} every {INTERVAL_SECONDS:g} s")
    while not stop.wait(INTERVAL_SECONDS):
        _reap()
        restore(endpoints, settings.endpoint_name, _say)
    return 0


if __name__ == "__main__":
    sys.exit(main())

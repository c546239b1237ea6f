"""Local online endpoints: a long-lived server process per endpoint, managed over HTTP with its admin key."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from infra.backend import Bundle, Collected, CollectedRequest, DeploymentInfo, DiskUse, EndpointState, Invocation
from infra.common.segments import held_bytes, retention
from infra.endpoint_server.config import EndpointConfig
from infra.endpoint_server.process import EndpointProcess, loopback_client
from infra.endpoint_server.server import COLLECTED_FOLDER
from infra.errors import BackendError, MissingResourceError, TransientBackendError
from infra.telemetry import SPAN_FILE_PREFIX, TELEMETRY_FOLDER, current_traceparent

__all__ = ["EndpointConfig", "EndpointRefusedError", "LocalEndpoints"]


class EndpointRefusedError(BackendError):
    """The endpoint refused a management operation (a bad bundle, an environment mismatch, bad traffic)."""


class LocalEndpoints:
    """Endpoints under `root` (normally `<home>/endpoints`), each run as `config` says (127.0.0.1:`config.port`)."""

    def __init__(self, root: Path, config: EndpointConfig) -> None:
        self.root = root
        self.config = config

    def process(self, name: str) -> EndpointProcess:
        return EndpointProcess(self.root / name, name=name, config=self.config)

    def ensure(self, name: str) -> EndpointState:
        self.process(name).start(self.config.start_timeout)
        return self._state(name)

    def get(self, name: str) -> EndpointState | None:
        process = self.process(name)
        if not (process.folder / "keys.json").is_file():
            return None
        if process.running():
            return self._state(name).model_copy(update={"health": process.health(), "disk": self.disk(name)})
        saved_file = process.folder / "state.json"
        saved: dict[str, Any] = json.loads(saved_file.read_text()) if saved_file.is_file() else {"deployments": {}}
        deployments = {
            n: DeploymentInfo(model=entry["model"], traffic=saved.get("traffic", {}).get(n, 0))
            for n, entry in saved["deployments"].items()
        }
        return EndpointState(
            name=name,
            url=process.url(),
            running=False,
            deployments=deployments,
            health=process.health(),
            disk=self.disk(name),
        )

    def add_deployment(self, name: str, deployment: str, bundle: Bundle) -> EndpointState:
        return self._manage(name, "PUT", f"deployments/{deployment}", {"bundle": str(bundle.path)})

    def set_traffic(self, name: str, traffic: dict[str, int]) -> EndpointState:
        return self._manage(name, "PUT", "traffic", traffic)

    def remove_deployment(self, name: str, deployment: str) -> EndpointState:
        return self._manage(name, "DELETE", f"deployments/{deployment}", None)

    def mirror(self, name: str) -> dict[str, int]:
        """The mirror shares the server holds now."""
        answer: dict[str, int] = self._request(name, "GET", "state", None).get("mirror", {})
        return answer

    def set_mirror(self, name: str, mirror: dict[str, int]) -> dict[str, int]:
        """Copy a share of unpinned requests to deployments taking no traffic; return the mirror shares now set."""
        answer: dict[str, int] = self._request(name, "PUT", "mirror", mirror).get("mirror", {})
        return answer

    def invoke(
        self, name: str, body: bytes, *, deployment: str | None = None, headers: dict[str, str] | None = None
    ) -> Invocation:
        process = self.process(name)
        sent = {
            "authorization": f"Bearer {process.keys()['primary']}",
            "content-type": "application/json",
            **(headers or {}),
        }
        if deployment:
            sent["azureml-model-deployment"] = deployment
        started = time.perf_counter()
        try:
            with loopback_client(30) as client:
                response = client.post(process.url() + "/score", content=body, headers=sent)
        except httpx.TransportError as exc:
            raise TransientBackendError(f"endpoint {name!r} at {process.url()} did not answer: {exc}") from exc
        latency = (time.perf_counter() - started) * 1000
        return Invocation(
            status=response.status_code, body=response.content, headers=dict(response.headers), latency_ms=latency
        )

    def key(self, name: str) -> str:
        return self.process(name).keys()["primary"]

    def keys(self, name: str) -> dict[str, str]:
        """The endpoint's scoring keys, `primary` and `secondary` (created with the endpoint's folder)."""
        keys = self.process(name).keys()
        return {"primary": keys["primary"], "secondary": keys["secondary"]}

    def regenerate_key(self, name: str, kind: str, value: str | None = None) -> dict[str, str]:
        """Have the running server replace its `primary` or `secondary` scoring key (with `value`, else a new
        random one), at once and without a restart; return the scoring keys now served."""
        self._request(name, "POST", "keys/regenerate", {"key": kind, "value": value})
        return self.keys(name)

    def stop(self, name: str) -> bool:
        return self.process(name).stop()

    def collected(self, name: str, since: float) -> Collected:
        """The requests the endpoint's server collected and still keeps (`collected/*.jsonl`, segments under the
        retention caps) at or after `since`, and whether retention dropped any of that window; a record that does
        not parse is skipped (a line cut by a full disk, or a segment deleted while it was read)."""
        folder = self.process(name).folder / COLLECTED_FOLDER
        dropped = float(retention(folder, "").get("dropped_before") or 0)
        requests: list[CollectedRequest] = []
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:  # dropped by the server's retention meanwhile
                continue
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                    if record["time"] < since:
                        continue
                    requests.append(
                        CollectedRequest(
                            time=record["time"],
                            request=record["request"],
                            response=record["response"],
                            request_id=str(record.get("request_id", "")),
                            model=str(record.get("model", "")),
                        )
                    )
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
        requests.sort(key=lambda r: r.time)
        return Collected(source=str(folder), requests=requests, dropped_before=dropped if dropped >= since else None)

    def disk(self, name: str) -> dict[str, DiskUse]:
        """What the endpoint holds on disk against its caps: collected requests, and its span files."""
        config, folder = self.config, self.process(name).folder
        spans_folder = config.telemetry_dir or folder.parent.parent / TELEMETRY_FOLDER
        return {
            "collected": DiskUse(
                held_bytes=held_bytes(folder / COLLECTED_FOLDER, ""),
                cap_bytes=config.retention.collect_bytes,
                max_age_hours=config.collect_max_age_hours,
            ),
            "spans": DiskUse(
                held_bytes=held_bytes(spans_folder, f"{SPAN_FILE_PREFIX}endpoint-{name}."),
                cap_bytes=config.retention.telemetry_bytes,
                max_age_hours=config.telemetry_max_age_hours,
            ),
        }

    def _state(self, name: str) -> EndpointState:
        return self._manage(name, "GET", "state", None)

    def _manage(self, name: str, method: str, path: str, payload: Any) -> EndpointState:
        state = self._request(name, method, path, payload)
        deployments = {
            n: DeploymentInfo(model=d["model"], traffic=d["traffic"]) for n, d in state["deployments"].items()
        }
        return EndpointState(name=name, url=self.process(name).url(), running=True, deployments=deployments)

    def _request(self, name: str, method: str, path: str, payload: Any) -> dict[str, Any]:
        process = self.process(name)
        if not process.running():
            raise MissingResourceError(f"endpoint {name!r} is not running (start it with `mlops endpoint start`)")
        url = process.url()
        headers = {"authorization": f"Bearer {process.keys()['admin']}", **current_traceparent()}
        try:
            with loopback_client(120) as client:
                response = client.request(method, f"{url}/management/{path}", json=payload, headers=headers)
        except httpx.TransportError as exc:
            raise TransientBackendError(f"endpoint {name!r} at {url} did not answer: {exc}") from exc
        if response.status_code == 404:
            raise MissingResourceError(response.json().get("error", response.text))
        if response.status_code != 200:
            raise EndpointRefusedError(f"endpoint {name!r}: {response.json().get('error', response.text)}")
        answer: dict[str, Any] = response.json()
        return answer

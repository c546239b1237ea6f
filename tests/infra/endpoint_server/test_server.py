"""The local endpoint over real HTTP against the real server process."""

from __future__ import annotations

import json
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sklearn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from infra.backend import Bundle
from infra.endpoint_server import EndpointRefusedError
from infra.endpoint_server.management import bundle_sha256
from infra.errors import BackendError
from infra.local import LocalBackend
from infra.settings import load_settings
from infra.telemetry import read_spans
from models.diabetes.score import INPUT_SAMPLE, predict_locally
from tests.support.helpers import MODEL, SMOKE, clone_home, free_port, receiving

ENDPOINT = "test-endpoint"


@dataclass
class Live:
    backend: LocalBackend
    url: str
    key: str
    bundles: dict[int, Bundle]
    log: Path
    client: httpx.Client  # one for the module: a new client costs ~40 ms of CPU (its TLS context), a request ~1 ms

    def score(self, body: bytes | str, headers: dict[str, str] | None = None, key: str | None = None) -> httpx.Response:
        sent = {"content-type": "application/json"}
        if key != "":
            sent["authorization"] = f"Bearer {key or self.key}"
        return self.client.post(f"{self.url}/score", content=body, headers={**sent, **(headers or {})})


@pytest.fixture(scope="module")
def live(seeded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = clone_home(seeded_template, tmp_path_factory.mktemp("endpoint") / "home")
    backend = LocalBackend(load_settings(home=home, endpoint_port=free_port(), endpoint_max_body_bytes=64 * 1024))
    bundles = {v: backend.bundles.build(backend.registry.get(MODEL, v)) for v in (1, 2)}
    state = backend.endpoints.ensure(ENDPOINT)
    try:
        backend.endpoints.add_deployment(ENDPOINT, "blue", bundles[1])
        backend.endpoints.set_traffic(ENDPOINT, {"blue": 100})
        with httpx.Client(timeout=10, trust_env=False) as client:
            key, log = backend.endpoints.key(ENDPOINT), home / "endpoints" / ENDPOINT / "server.log"
            yield Live(backend, state.url, key, bundles, log, client)
    finally:
        backend.endpoints.stop(ENDPOINT)


class TestRoutes:
    def test_liveness(self, live: Live) -> None:
        response = httpx.get(f"{live.url}/")
        assert (response.status_code, response.text) == (200, "Healthy")

    def test_readiness(self, live: Live) -> None:
        response = httpx.get(f"{live.url}/ready")
        assert response.status_code == 200
        assert response.json()["traffic"]["blue"] == 100

    def test_swagger_describes_request_and_response(self, live: Live) -> None:
        document = httpx.get(f"{live.url}/swagger.json").json()
        assert document["openapi"].startswith("3.")
        request = document["components"]["schemas"]["ScoreRequest"]
        assert request["properties"]["data"]["items"]["minItems"] == 10
        assert request["example"] == {"data": INPUT_SAMPLE}
        assert "200" in document["paths"]["/score"]["post"]["responses"]

    def test_score_matches_the_bundle(self, live: Live) -> None:
        response = live.score(SMOKE)
        assert response.status_code == 200
        assert response.headers["azureml-model-deployment"] == "blue"
        assert response.json()["result"] == predict_locally(live.bundles[1].model_dir, INPUT_SAMPLE)

    @pytest.mark.parametrize(
        ("method", "path", "status"), [("GET", "/score", 405), ("POST", "/", 405), ("GET", "/nope", 404)]
    )
    def test_wrong_method_or_route(self, live: Live, method: str, path: str, status: int) -> None:
        response = httpx.request(method, f"{live.url}{path}", headers={"authorization": f"Bearer {live.key}"})
        assert response.status_code == status
        assert "error" in response.json()


class TestAuth:
    def test_no_key_is_401(self, live: Live) -> None:
        response = live.score(SMOKE, key="")
        assert response.status_code == 401
        assert "missing Authorization header" in response.json()["error"]
        assert response.headers["www-authenticate"] == "Bearer"

    def test_wrong_key_is_401(self, live: Live) -> None:
        response = live.score(SMOKE, key="not-the-key")
        assert response.status_code == 401
        assert "not valid" in response.json()["error"]

    def test_secondary_key_scores(self, live: Live) -> None:
        keys = json.loads((live.log.parent / "keys.json").read_text())
        assert live.score(SMOKE, key=keys["secondary"]).status_code == 200

    def test_admin_key_does_not_score_and_scoring_key_does_not_manage(self, live: Live) -> None:
        keys = json.loads((live.log.parent / "keys.json").read_text())
        assert live.score(SMOKE, key=keys["admin"]).status_code == 401
        response = httpx.get(f"{live.url}/management/state", headers={"authorization": f"Bearer {live.key}"})
        assert response.status_code == 401

    def test_keys_file_is_readable_by_the_owner_only(self, live: Live) -> None:
        mode = stat.S_IMODE(os.stat(live.log.parent / "keys.json").st_mode)
        assert mode == 0o600


class TestKeys:
    """`POST /management/keys/regenerate`: the server replaces a scoring key itself (what Azure ML's regenerateKeys
    does, and what the emulator asks of it), without a restart."""

    def test_a_regenerated_key_is_served_at_once_saved_and_the_old_one_refused(self, live: Live) -> None:
        keys_file = live.log.parent / "keys.json"
        before = json.loads(keys_file.read_text())
        admin = {"authorization": f"Bearer {before['admin']}"}
        response = live.client.post(f"{live.url}/management/keys/regenerate", json={"key": "secondary"}, headers=admin)
        assert response.status_code == 200, response.text
        assert response.json() == {"regenerated": "secondary"}  # no key in the answer (answers go on spans)
        after = json.loads(keys_file.read_text())
        assert after["secondary"] != before["secondary"]
        assert (after["primary"], after["admin"]) == (before["primary"], before["admin"])
        assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
        assert live.score(SMOKE, key=before["secondary"]).status_code == 401
        assert live.score(SMOKE, key=after["secondary"]).status_code == 200
        assert live.score(SMOKE).status_code == 200  # the primary key is unchanged
        # a value of the caller's choosing, through the management client; kept across a restart
        served = live.backend.endpoints.regenerate_key(ENDPOINT, "secondary", "a-key-of-the-callers-choosing")
        assert served == {"primary": before["primary"], "secondary": "a-key-of-the-callers-choosing"}
        assert live.backend.endpoints.keys(ENDPOINT) == served
        assert live.score(SMOKE, key=after["secondary"]).status_code == 401
        assert live.backend.endpoints.stop(ENDPOINT)
        live.backend.endpoints.ensure(ENDPOINT)
        assert live.score(SMOKE, key="a-key-of-the-callers-choosing").status_code == 200
        assert live.score(SMOKE).status_code == 200

    def test_only_the_admin_key_regenerates_and_only_a_scoring_key(self, live: Live) -> None:
        keys_file = live.log.parent / "keys.json"
        before = json.loads(keys_file.read_text())
        url = f"{live.url}/management/keys/regenerate"
        scoring = {"authorization": f"Bearer {live.key}"}
        assert live.client.post(url, json={"key": "secondary"}, headers=scoring).status_code == 401
        admin = {"authorization": f"Bearer {before['admin']}"}
        refused = live.client.post(url, json={"key": "admin"}, headers=admin)
        assert refused.status_code == 422
        assert "primary" in refused.json()["error"]
        assert live.client.post(url, json={"key": "primary", "value": " "}, headers=admin).status_code == 422
        with pytest.raises(EndpointRefusedError, match="'admin'"):
            live.backend.endpoints.regenerate_key(ENDPOINT, "admin")
        assert json.loads(keys_file.read_text()) == before  # nothing changed
        assert live.score(SMOKE).status_code == 200


class TestBadRequests:
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            pytest.param(b"{not json", "not valid JSON", id="invalid-json"),
            pytest.param(b'{"data": [[1,2,3]]}', "data row 1 has 3 values; expected 10", id="wrong-width"),
            pytest.param(b'{"data": [[1,2,3,4,5,6,7,8,9,"x"]]}', 'column 10: "x" is not a number', id="non-numeric"),
            pytest.param(b'{"data": [[1,2,3,4,5,6,7,8,9,NaN]]}', "NaN and Infinity", id="nan"),
            pytest.param(b'{"data": [[1,2,3,4,5,6,7,8,9,Infinity]]}', "NaN and Infinity", id="infinity"),
            pytest.param(b'{"data": [[1,2,3,4,5,6,7,8,9,1e400]]}', "infinity", id="overflow"),
            pytest.param(b'{"data": []}', "non-empty list", id="empty-list"),
            pytest.param(b"\xff\xfe", "not UTF-8", id="not-utf8"),
        ],
    )
    def test_4xx_naming_the_problem_and_still_serving(self, live: Live, body: bytes, expected: str) -> None:
        response = live.score(body)
        assert response.status_code == 400
        assert expected in response.json()["error"]
        assert live.score(SMOKE).status_code == 200

    def test_body_over_the_limit_is_413(self, live: Live) -> None:
        rows = json.dumps({"data": [[0.5] * 10] * 3000}).encode()
        assert len(rows) > 64 * 1024
        response = live.score(rows)
        assert response.status_code == 413
        assert "limit is 65536" in response.json()["error"]
        assert live.score(SMOKE).status_code == 200

    def test_unknown_pinned_deployment_is_404(self, live: Live) -> None:
        response = live.score(SMOKE, headers={"azureml-model-deployment": "purple"})
        assert response.status_code == 404
        assert "'purple' does not exist" in response.json()["error"]


# Bodies a client might send: valid-looking requests with hostile values, wrong shapes, random JSON, raw bytes.
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)
_rows = st.lists(st.lists(st.one_of(st.floats(), st.integers(), _scalars), min_size=8, max_size=12), max_size=5)
_bodies = st.one_of(
    _rows.map(lambda rows: json.dumps({"data": rows}).encode()),
    _json.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
)


@pytest.fixture
def global_random_left_to_hypothesis() -> None:
    """Stop Prefect's events worker, the one thread here that draws from the global `random` between tests.

    Hypothesis compares the global `random` state before and after each draw and, when it moved, warns "Do not use
    the `random` module inside strategies" (an error under our filterwarnings), on one draw and not on its replay: a
    FlakyFailure. Once any test in this xdist worker has run a flow, Prefect's events client keeps a websocket to the
    worker's Prefect server and pings it from its own thread (websockets' keepalive and Prefect's checkpoint ping, each
    `random.getrandbits(32)`): one such ping during a draw failed a fresh-clone run. The next flow starts a new worker.
    """
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=30, at_exit=False)


@pytest.mark.usefixtures("global_random_left_to_hypothesis")
@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=_bodies, pinned=st.sampled_from([None, "blue", "green", "x"]))
def test_generated_requests_never_get_a_5xx(live: Live, body: bytes, pinned: str | None) -> None:
    headers = {"azureml-model-deployment": pinned} if pinned else {}
    response = live.score(body, headers=headers)
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 400, 404)
    if response.status_code != 200:
        assert response.json()["error"]


def _eventually(read: Callable[[], list[dict[str, Any]]], timeout: float = 10) -> list[dict[str, Any]]:
    """What `read` returns once it returns something (records reach the writer within 10 ms of a request, the log
    file through the supervisor within a twentieth of a second)."""
    deadline = time.monotonic() + timeout
    while not (found := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _json_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text() if path.is_file() else ""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


class TestTelemetry:
    TRACE_ID, CALLER_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"

    def test_one_structured_line_per_request(self, live: Live) -> None:
        trace = f"00-{self.TRACE_ID}-{self.CALLER_SPAN}-01"
        response = live.score(SMOKE, headers={"traceparent": trace, "x-ms-request-id": "req-42"})
        assert response.headers["x-ms-request-id"] == "req-42"
        found = _eventually(lambda: [line for line in _json_lines(live.log) if line["request_id"] == "req-42"])
        assert len(found) == 1
        assert found[0]["trace_id"] == self.TRACE_ID
        assert found[0]["parent_span_id"] == self.CALLER_SPAN
        assert len(found[0]["span_id"]) == 16
        assert found[0]["span_id"] != self.CALLER_SPAN
        assert found[0]["predictions"] == 2
        assert found[0]["deployment"] == "blue"
        assert found[0]["model"] == f"{MODEL}:1"
        assert 0 < found[0]["latency_ms"] < 1000

    def test_the_span_continues_the_callers_trace(self, live: Live) -> None:
        trace = f"00-{self.TRACE_ID}-{self.CALLER_SPAN}-01"
        live.score(SMOKE, headers={"traceparent": trace, "x-ms-request-id": "req-span"})
        folder = live.backend.settings.telemetry_dir
        spans = _eventually(
            lambda: [s for s in read_spans(folder) if s.attributes.get("mlops.request_id") == "req-span"]
        )
        assert len(spans) == 1
        assert (spans[0].trace_id, spans[0].parent_id) == (self.TRACE_ID, self.CALLER_SPAN)
        assert spans[0].attributes["mlops.deployment"] == "blue"
        assert spans[0].attributes["http.response.status_code"] == 200
        # the span and the log line reach their files in separate writes: wait for the line too
        logged = _eventually(lambda: [line for line in _json_lines(live.log) if line["request_id"] == "req-span"])
        assert logged[0]["span_id"] == spans[0].span_id

    def test_a_request_without_a_valid_traceparent_starts_a_trace(self, live: Live) -> None:
        live.score(SMOKE, headers={"traceparent": "00-not-a-trace-01", "x-ms-request-id": "req-new-trace"})
        found = _eventually(lambda: [line for line in _json_lines(live.log) if line["request_id"] == "req-new-trace"])
        assert len(found[0]["trace_id"]) == 32
        assert found[0]["trace_id"] != "0" * 32
        assert found[0]["parent_span_id"] == ""

    def test_an_unsampled_caller_is_logged_but_not_recorded(self, live: Live) -> None:
        live.score(
            SMOKE,
            headers={"traceparent": f"00-{self.TRACE_ID}-{self.CALLER_SPAN}-00", "x-ms-request-id": "req-unsampled"},
        )
        live.score(SMOKE, headers={"x-ms-request-id": "req-after"})  # written after it, in the same or a later batch
        folder = live.backend.settings.telemetry_dir
        _eventually(lambda: [s for s in read_spans(folder) if s.attributes.get("mlops.request_id") == "req-after"])
        assert not [s for s in read_spans(folder) if s.attributes.get("mlops.request_id") == "req-unsampled"]
        # the log line is written by the same writer thread as the spans, but in a write of its own: wait for it
        [line] = _eventually(lambda: [line for line in _json_lines(live.log) if line["request_id"] == "req-unsampled"])
        assert line["trace_id"] == self.TRACE_ID

    def test_with_a_collector_configured_the_spans_go_there(self, live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
        endpoints, name = live.backend.endpoints, "otlp-endpoint"
        with receiving() as collector:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_port}")
            other = LocalBackend(load_settings(home=live.backend.settings.home, endpoint_port=free_port()))
            other.endpoints.ensure(name)  # the server inherits the variable
            try:
                other.endpoints.add_deployment(name, "blue", live.bundles[1])
                other.endpoints.set_traffic(name, {"blue": 100})
                url = other.endpoints.process(name).url()
                trace = f"00-{self.TRACE_ID}-{self.CALLER_SPAN}-01"
                answer = httpx.post(
                    f"{url}/score",
                    content=SMOKE,
                    headers={"authorization": f"Bearer {other.endpoints.key(name)}", "traceparent": trace},
                )
                assert answer.status_code == 200
            finally:
                other.endpoints.stop(name)  # stopping exports what is queued
            spans = [
                span
                for path, _, body in collector.posts
                if path == "/v1/traces"
                for resource in ExportTraceServiceRequest.FromString(body).resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
        [scored] = [s for s in spans if s.name == "POST /score"]
        assert (scored.trace_id.hex(), scored.parent_span_id.hex()) == (self.TRACE_ID, self.CALLER_SPAN)
        attributes = {a.key: a.value for a in scored.attributes}
        assert attributes["mlops.deployment"].string_value == "blue"
        assert attributes["http.response.status_code"].int_value == 200
        assert not list((live.backend.settings.telemetry_dir).glob(f"spans-endpoint-{name}*.jsonl"))
        assert endpoints.get(ENDPOINT) is not None  # the shared endpoint was not touched

    def test_scored_requests_are_collected_but_checks_are_not(self, live: Live) -> None:
        # the last one is written last: once it shows, the others would have too
        live.score(SMOKE, headers={"x-ms-request-id": "req-check", "x-mlops-check": "smoke"})
        live.score(b"{not json", headers={"x-ms-request-id": "req-bad"})
        live.score(SMOKE, headers={"x-ms-request-id": "req-live"})
        folder = live.backend.settings.home / "endpoints" / ENDPOINT / "collected"

        def collected() -> list[dict[str, Any]]:
            return [r for f in sorted(folder.glob("*.jsonl")) for r in _json_lines(f)]

        live_rows = _eventually(lambda: [r for r in collected() if r["request_id"] == "req-live"])
        assert live_rows[0]["request"] == json.loads(SMOKE)
        assert len(live_rows[0]["response"]["result"]) == 2
        assert live_rows[0]["model"] == f"{MODEL}:1"
        ids = {r["request_id"] for r in collected()}
        assert "req-check" not in ids
        assert "req-bad" not in ids

    def test_generated_request_id_when_none_is_sent(self, live: Live) -> None:
        assert len(live.score(SMOKE).headers["x-ms-request-id"]) == 32


class TestEveryAnswerNamesItsModel:
    """Each answer of a chosen deployment names it (Azure ML's `azureml-model-deployment`), the model's name and
    version, the bundle's hash and the trace, 2xx and 4xx alike; the request's log line says the same."""

    TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

    def _expected(self, live: Live, version: int = 1) -> dict[str, str]:
        return {
            "azureml-model-deployment": "blue",
            "x-mlops-model-name": MODEL,
            "x-mlops-model-version": str(version),
            "x-mlops-bundle-sha256": bundle_sha256(live.bundles[version].path),
            "x-mlops-trace-id": self.TRACE_ID,
        }

    @pytest.mark.parametrize(
        ("body", "status"),
        [
            pytest.param(SMOKE, 200, id="200"),
            pytest.param(b'{"data": [[1,2,3]]}', 400, id="400-bad-row"),
            pytest.param(b"{not json", 400, id="400-not-json"),
            pytest.param(json.dumps({"data": [[0.5] * 10] * 3000}).encode(), 413, id="413-too-large"),
        ],
    )
    def test_2xx_and_4xx_carry_the_model_headers_and_the_log_line_the_same(
        self, live: Live, body: bytes, status: int
    ) -> None:
        request_id = f"req-named-{status}-{len(body)}"
        traceparent = f"00-{self.TRACE_ID}-b7ad6b7169203331-01"
        response = live.score(body, headers={"traceparent": traceparent, "x-ms-request-id": request_id})
        assert response.status_code == status
        expected = self._expected(live)
        assert {k: response.headers.get(k) for k in expected} == expected
        assert len(expected["x-mlops-bundle-sha256"]) == 64
        [line] = _eventually(lambda: [x for x in _json_lines(live.log) if x["request_id"] == request_id])
        assert (line["status"], line["deployment"], line["model"]) == (status, "blue", f"{MODEL}:1")
        assert (line["bundle_sha256"], line["trace_id"]) == (expected["x-mlops-bundle-sha256"], self.TRACE_ID)

    def test_each_version_names_its_own_bundle(self, live: Live) -> None:
        assert bundle_sha256(live.bundles[1].path) != bundle_sha256(live.bundles[2].path)

    def test_an_unauthenticated_answer_names_its_trace_but_no_model(self, live: Live) -> None:
        response = live.score(SMOKE, key="", headers={"traceparent": f"00-{self.TRACE_ID}-b7ad6b7169203331-01"})
        assert response.status_code == 401
        assert response.headers["x-mlops-trace-id"] == self.TRACE_ID
        assert len(response.headers["x-ms-request-id"]) == 32
        assert "azureml-model-deployment" not in response.headers
        assert "x-mlops-model-name" not in response.headers


class TestTrafficAndManagement:
    """These change the endpoint; each leaves blue (version 1) at 100 %."""

    def test_split_is_honoured_and_pins_win(self, live: Live) -> None:
        endpoints = live.backend.endpoints
        endpoints.add_deployment(ENDPOINT, "green", live.bundles[2])
        try:
            endpoints.set_traffic(ENDPOINT, {"blue": 70, "green": 30})
            counts: Counter[str] = Counter()
            with httpx.Client(headers={"authorization": f"Bearer {live.key}"}) as client:
                for _ in range(1000):
                    counts[client.post(f"{live.url}/score", content=SMOKE).headers["azureml-model-deployment"]] += 1
                pinned = {
                    client.post(
                        f"{live.url}/score", content=SMOKE, headers={"azureml-model-deployment": "green"}
                    ).headers["azureml-model-deployment"]
                    for _ in range(20)
                }
            # 30 % of 1000: mean 300, standard deviation 14.5; 5 standard deviations either side.
            assert 228 <= counts["green"] <= 372, counts
            assert counts["blue"] + counts["green"] == 1000
            assert pinned == {"green"}
        finally:
            endpoints.set_traffic(ENDPOINT, {"blue": 100, "green": 0})
            endpoints.remove_deployment(ENDPOINT, "green")

    @pytest.mark.parametrize(
        ("traffic", "expected"),
        [
            ({"blue": 60}, "sum to 100"),
            ({"blue": 100, "ghost": 0}, r"unknown deployment\(s\) ghost"),
            ({"blue": 100.5}, "whole numbers"),
        ],
    )
    def test_bad_traffic_is_refused_and_nothing_changes(
        self, live: Live, traffic: dict[str, int], expected: str
    ) -> None:
        with pytest.raises(EndpointRefusedError, match=expected):
            live.backend.endpoints.set_traffic(ENDPOINT, traffic)
        assert live.backend.endpoints.get(ENDPOINT).traffic() == {"blue": 100}  # type: ignore[union-attr]

    def test_a_deployment_taking_traffic_cannot_be_removed(self, live: Live) -> None:
        with pytest.raises(EndpointRefusedError, match="takes 100 % of traffic"):
            live.backend.endpoints.remove_deployment(ENDPOINT, "blue")
        assert live.score(SMOKE).status_code == 200

    def test_mismatched_environment_is_refused_naming_library_and_versions(self, live: Live, tmp_path: Path) -> None:
        broken = tmp_path / "bundle"
        import shutil

        shutil.copytree(live.bundles[2].path, broken)
        lock = json.loads((broken / "model" / "environment.json").read_text())
        lock["libraries"]["scikit-learn"] = "0.22.2"
        (broken / "model" / "environment.json").write_text(json.dumps(lock))
        bundle = live.bundles[2].model_copy(update={"path": broken})
        with pytest.raises(EndpointRefusedError) as caught:
            live.backend.endpoints.add_deployment(ENDPOINT, "green", bundle)
        assert f"scikit-learn: model trained with 0.22.2, running {sklearn.__version__}" in str(caught.value)
        assert set(live.backend.endpoints.get(ENDPOINT).deployments) == {"blue"}  # type: ignore[union-attr]
        assert live.score(SMOKE).status_code == 200

    def test_state_survives_a_restart(self, live: Live) -> None:
        endpoints = live.backend.endpoints
        assert endpoints.stop(ENDPOINT)
        assert endpoints.get(ENDPOINT).running is False  # type: ignore[union-attr]
        state = endpoints.ensure(ENDPOINT)
        assert state.running
        assert state.traffic() == {"blue": 100}
        assert live.score(SMOKE).status_code == 200


def _context_switches(pid: int) -> int:
    """Every thread's voluntary and involuntary context switches so far: its wake-ups."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def test_an_idle_endpoint_wakes_about_once_a_second(live: Live) -> None:
    """Endpoints side by side share CPUs: one waiting for requests must not land on another's. uvicorn's tick
    (10 a second) and the recorder's idle hand-overs (5 a second) took 15 wake-ups a second; now the tick is once
    a second (the Date header) and the recorder sleeps until a request comes. A request's log line still comes."""
    assert live.score(SMOKE).status_code == 200
    pid = live.backend.endpoints.process(ENDPOINT).pid()
    assert pid is not None
    time.sleep(0.5)  # the request's hand-over, and the one after it that finds nothing
    before = _context_switches(pid)
    time.sleep(3)
    assert _context_switches(pid) - before <= 9  # 3 a second at most, over 3 s
    live.score(SMOKE, headers={"x-ms-request-id": "req-after-idle"})
    assert _eventually(lambda: [line for line in _json_lines(live.log) if line["request_id"] == "req-after-idle"])


def test_the_writer_thread_gives_way_to_requests(live: Live) -> None:
    """The thread writing the log, collected data and spans runs SCHED_BATCH (`infra.common.yielding`): woken
    for a batch it does not preempt the event loop, which keeps normal priority."""
    assert live.score(SMOKE, headers={"x-ms-request-id": "req-yield"}).status_code == 200
    assert _eventually(lambda: [line for line in _json_lines(live.log) if line["request_id"] == "req-yield"])
    pid = live.backend.endpoints.process(ENDPOINT).pid()
    assert pid is not None
    policies = {int(task.name): os.sched_getscheduler(int(task.name)) for task in Path(f"/proc/{pid}/task").iterdir()}
    assert policies[pid] == os.SCHED_OTHER  # the event loop
    assert list(policies.values()).count(os.SCHED_BATCH) == 1  # the writer


def test_port_in_use_is_a_clear_error(seeded_template: Path, tmp_path: Path, live: Live) -> None:
    """A second endpoint on the first one's port fails at start, naming the setting to change."""
    port = int(live.url.rsplit(":", 1)[1])
    other = LocalBackend(load_settings(home=clone_home(seeded_template, tmp_path / "home"), endpoint_port=port))
    with pytest.raises(BackendError, match="MLOPS_ENDPOINT_PORT"):
        other.endpoints.ensure("other-endpoint")
    assert live.score(SMOKE).status_code == 200

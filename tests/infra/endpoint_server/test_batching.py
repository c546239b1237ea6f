"""Micro-batching and back-pressure on the endpoint's scoring path (`infra.endpoint_server.batching`).

In process, with a scoring script that records its calls: concurrent requests are scored together, a lone one
alone and untouched, each request gets its own rows' answers or its own error, rows per call stay under the cap,
a bundle that does not allow batching is scored one request per call, and a full queue answers 503.
Over HTTP against the real server with the diabetes bundle: the same under concurrency, then a wrk flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import pytest

from infra.backend import Bundle
from infra.endpoint_server.batching import Scorer
from infra.endpoint_server.errors import HttpError
from infra.endpoint_server.traffic import Deployment
from infra.local import LocalBackend
from infra.settings import load_settings
from model.scripts import load_script
from models.diabetes.score import predict_locally
from tests.support.helpers import MODEL, clone_home, free_port

# A scoring script with Azure ML's contract that records the rows of each call; a negative value is bad input.
RECORDING_SCORE = """
import json

calls = []


def init():
    pass


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    calls.append(len(rows))
    for i, row in enumerate(rows, start=1):
        if row[0] < 0:
            raise ValueError(f"data row {i}: {row[0]} is negative")
    return {"result": [row[0] * 2 for row in rows]}
"""


@pytest.fixture
def recording(tmp_path: Path) -> ModuleType:
    script = tmp_path / "score.py"
    script.write_text(RECORDING_SCORE)
    return load_script(script, tmp_path, name=f"recording_{tmp_path.name}")


def _deployment(module: ModuleType, *, micro_batching: bool = True) -> Deployment:
    return Deployment(name="blue", model="m:1", bundle="b", module=module, micro_batching=micro_batching)


def _body(first: int, count: int, bad: int | None = None) -> str:
    """`count` rows [first], [first + 1], ...; row `bad` (1-based) negative."""
    rows = [[-1 if i == bad else first + i - 1] for i in range(1, count + 1)]
    return json.dumps({"data": rows})


async def _all(scorer: Scorer, deployment: Deployment, bodies: list[str]) -> list[Any]:
    """Send all at once (they are queued before the loop's next turn), as concurrent HTTP requests arrive."""
    return await asyncio.gather(*(scorer.score(deployment, b) for b in bodies), return_exceptions=True)


class TestInProcess:
    def test_concurrent_requests_are_scored_in_one_call_a_lone_one_alone(self, recording: ModuleType) -> None:
        scorer, deployment = Scorer(), _deployment(recording)
        bodies = [_body(100 * i, i + 1) for i in range(10)]
        answers = asyncio.run(_all(scorer, deployment, bodies))
        assert answers == [{"result": [2 * (100 * i + k) for k in range(i + 1)]} for i in range(10)]
        assert recording.calls == [sum(range(1, 11))]
        assert asyncio.run(_all(scorer, deployment, ['{"data": [[7]], "extra": 1}'])) == [{"result": [14]}]
        assert recording.calls[1:] == [1]
        assert scorer.waiting == 0

    def test_each_request_gets_its_own_answers_or_its_own_error(self, recording: ModuleType) -> None:
        scorer, deployment = Scorer(), _deployment(recording)
        bad = {3: 2, 7: 1, 8: 4}  # request index: its bad row
        bodies = [_body(1000 * i, 5, bad.get(i)) for i in range(12)]
        bodies[10] = "not json"  # scored alone: its own error from the script
        answers = asyncio.run(_all(scorer, deployment, bodies))
        for i, answer in enumerate(answers):
            if i in bad:
                assert isinstance(answer, ValueError)
                assert str(answer) == f"data row {bad[i]}: -1 is negative"
            elif i == 10:
                assert isinstance(answer, json.JSONDecodeError)
            else:
                assert answer == {"result": [2 * (1000 * i + k) for k in range(5)]}
        # bodies 0-9 batched (50 rows, failing), then each alone; "not json" ends the batch and is scored alone
        assert recording.calls[0] == 50
        assert recording.calls[1:11] == [5] * 10

    def test_rows_are_counted_unparsed_and_a_body_valid_only_in_company_gets_its_own_error(
        self, recording: ModuleType
    ) -> None:
        scorer, deployment = Scorer(), _deployment(recording)
        bodies = [
            '{"data": [[1], [2]]}',
            ' { "data" :[ [3] ,\n [4], [5]] } ',
            '{"data": [[6]]} 7',  # text after the object: invalid alone, valid cut into a batch: scored alone
            '{"data": [[8]] 9}',  # the same before its closing brace
            '{"data": [[10], 11]}',  # a number among the rows: counted as one row, so the batch is scored again alone
            '{"data": [[13, "a"]]}',  # a string: parsed to be counted, batched all the same
            '{"data": [[14]]}',
        ]
        answers = asyncio.run(_all(scorer, deployment, bodies))
        assert answers[:2] == [{"result": [2, 4]}, {"result": [6, 8, 10]}]
        assert all(isinstance(answers[i], json.JSONDecodeError) for i in (2, 3))
        assert isinstance(answers[4], TypeError)
        assert answers[5:] == [{"result": [26]}, {"result": [28]}]
        assert recording.calls == [5, 4, 2, 1, 1]  # 2 and 3 fail in json.loads, before the script records a call

    def test_rows_per_call_stay_under_the_cap_in_order(self, recording: ModuleType) -> None:
        scorer, deployment = Scorer(max_rows=10), _deployment(recording)
        bodies = [_body(10 * i, 3) for i in range(7)] + [_body(500, 12)]
        answers = asyncio.run(_all(scorer, deployment, bodies))
        assert [a["result"][0] for a in answers] == [2 * 10 * i for i in range(7)] + [1000]
        assert recording.calls == [9, 9, 3, 12]  # three requests a call, then the one over the cap alone

    @pytest.mark.parametrize(("micro_batching", "batching"), [(False, True), (True, False)])
    def test_one_request_per_call_unless_both_the_bundle_and_the_setting_allow(
        self, recording: ModuleType, micro_batching: bool, batching: bool
    ) -> None:
        scorer, deployment = Scorer(batching=batching), _deployment(recording, micro_batching=micro_batching)
        answers = asyncio.run(_all(scorer, deployment, [_body(i, 2) for i in range(5)]))
        assert [a["result"] for a in answers] == [[2 * i, 2 * i + 2] for i in range(5)]
        assert recording.calls == [2] * 5

    def test_a_cancelled_leader_leaves_no_request_behind(self, recording: ModuleType) -> None:
        """The request that finds the scorer idle leads the next call; if its handler is cancelled while it yields,
        the requests queued behind it are scored all the same."""
        scorer, deployment = Scorer(), _deployment(recording)

        async def cancel_the_leader() -> dict[str, Any]:
            leader = asyncio.ensure_future(scorer.score(deployment, _body(1, 1)))
            await asyncio.sleep(0)  # the leader queues its request and yields
            leader.cancel()
            return await asyncio.wait_for(scorer.score(deployment, _body(5, 1)), timeout=5)

        assert asyncio.run(cancel_the_leader()) == {"result": [10]}
        assert (scorer.waiting, recording.calls) == (0, [2])

    @pytest.mark.parametrize("status", [503, 429])  # 429: the Azure ML emulator's endpoints, as Azure answers
    def test_a_full_queue_is_refused_with_503_and_retry_after(self, recording: ModuleType, status: int) -> None:
        scorer, deployment = Scorer(max_queue=3, busy_status=status), _deployment(recording)

        async def flood() -> tuple[HttpError | None, list[Any]]:
            waiting = [asyncio.ensure_future(scorer.score(deployment, _body(i, 1))) for i in range(3)]
            await asyncio.sleep(0)  # queued; the loop's next turn scores them
            refused = None
            try:
                scorer.admit()
            except HttpError as error:
                refused = error
            return refused, await asyncio.gather(*waiting)

        refused, answers = asyncio.run(flood())
        assert refused is not None
        assert (refused.status, refused.headers) == (status, [(b"retry-after", b"1")])
        assert "MLOPS_ENDPOINT_MAX_QUEUE=3" in refused.message
        assert answers == [{"result": [2 * i]} for i in range(3)]
        scorer.admit()  # drained: admitted again


# ---- over HTTP, the diabetes bundle (`[score] micro_batching = true`) ----


class Served:
    def __init__(self, backend: LocalBackend, url: str, key: str, bundle: Bundle) -> None:
        self.backend, self.url, self.key, self.bundle = backend, url, key, bundle
        self.headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}


@pytest.fixture(scope="module")
def served(seeded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = clone_home(seeded_template, tmp_path_factory.mktemp("batching") / "home")
    backend = LocalBackend(load_settings(home=home, endpoint_port=free_port(), endpoint_max_queue=64))
    bundle = backend.bundles.build(backend.registry.get(MODEL, 1))
    assert json.loads((bundle.path / "bundle.json").read_text())["micro_batching"] is True
    state = backend.endpoints.ensure("batching")
    try:
        backend.endpoints.add_deployment("batching", "blue", bundle)
        backend.endpoints.set_traffic("batching", {"blue": 100})
        yield Served(backend, state.url, backend.endpoints.key("batching"), bundle)
    finally:
        backend.endpoints.stop("batching")


def _rows(seed: int, count: int) -> list[list[float]]:
    return [[float(seed * 1000 + r * 10 + c) / 1000 for c in range(10)] for r in range(count)]


def test_concurrent_http_requests_get_their_own_answers_or_errors(served: Served) -> None:
    """64 requests at a time, 2 rounds: every third has a bad cell at a row of its own; the rest are checked
    against the model's predictions for their own rows."""
    requests: list[tuple[list[list[Any]], int | None]] = []
    for i in range(128):
        rows: list[list[Any]] = _rows(i, 1 + i % 7)
        bad = None
        if i % 3 == 0:
            bad = i % len(rows)
            rows[bad][3] = "x"
        requests.append((rows, bad))
    clean = [rows for rows, bad in requests if bad is None]
    expected = iter(predict_locally(served.bundle.model_dir, [row for rows in clean for row in rows]))

    async def send() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as client:
            answers = []
            for start in range(0, len(requests), 64):
                round_ = requests[start : start + 64]
                answers += await asyncio.gather(
                    *(client.post(f"{served.url}/score", json={"data": r}, headers=served.headers) for r, _ in round_)
                )
            return answers

    for (rows, bad), response in zip(requests, asyncio.run(send()), strict=True):
        if bad is not None:
            assert response.status_code == 400, response.text
            assert response.json()["error"] == f'data row {bad + 1}, column 4: "x" is not a number'
        else:
            assert response.status_code == 200, response.text
            mine = [next(expected) for _ in rows]
            assert response.json()["result"] == pytest.approx(mine, rel=1e-9)


FLOOD_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.body = [=[{body}]=]
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {{}}; unready = 0 end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 503 and headers["retry-after"] == nil and headers["Retry-After"] == nil then unready = unready + 1 end
end
function done(summary, latency, requests)
  local total, missing = {{}}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do total[status] = (total[status] or 0) + count end
    missing = missing + thread:get("unready")
  end
  local parts = {{}}
  for status, count in pairs(total) do table.insert(parts, string.format('"%d":%d', status, count)) end
  local e = summary.errors
  io.write(string.format('{{"statuses":{{%s}},"no_retry_after":%d,"dropped":%d,"slow":%d}}\\n',
    table.concat(parts, ","), missing, e.connect + e.read + e.write, e.timeout))
end
"""
FLOOD_SECONDS = 30
RSS_GROWTH_BOUND_MB = 64  # over the server's resident memory before the flood (measured: 9 MB)


def _pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` on `cpus`."""
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(thread.name), cpus)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_flood_gets_answers_or_503_with_retry_after_in_bounded_memory(
    served: Served, tmp_path: Path, sustained_load: None
) -> None:
    """256 connections of 100-row requests for 30 s (past MLOPS_ENDPOINT_MAX_QUEUE=64): every answer is 200 or
    503 with Retry-After, the server's resident memory stays within a bound, and it answers correctly after."""
    wrk = shutil.which(os.environ.get("WRK", "wrk"))
    assert wrk is not None, "wrk is missing: apt-get install wrk (deployments/prerequisites.sh names it)"
    rows = _rows(7, 100)
    script = tmp_path / "flood.lua"
    script.write_text(FLOOD_LUA.format(key=served.key, body=json.dumps({"data": rows})))
    pid = served.backend.endpoints.process("batching").pid()
    assert pid is not None
    before, peak, stop = _rss_mb(pid), [0.0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            peak[0] = max(peak[0], _rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # The flood and the server share one CPU (the server with all its threads): a flood that takes every core for
    # 30 s takes them from the rest of the suite too, and one core overloads a server as well as two.
    cpus = os.sched_getaffinity(0)
    one = {max(cpus)}
    _pin(pid, one)
    try:
        command = [wrk, "-t1", "-c256", f"-d{FLOOD_SECONDS}s", "--timeout", "30s", "-s", str(script)]
        result = subprocess.run(
            [*command, f"{served.url}/score"],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=lambda: os.sched_setaffinity(0, one),
        )
    finally:
        stop.set()
        sampler.join()
        _pin(pid, cpus)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    statuses = {int(s): n for s, n in summary["statuses"].items()}
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.get(200, 0) > 0
    assert summary["no_retry_after"] == 0
    assert summary["dropped"] == 0, result.stdout  # no connection refused or cut
    print(  # noqa: T201 - the measured figures, shown with -s
        f"flood: {statuses}, {summary['slow']} slower than 30 s; resident memory {before:.0f} MB, peak {peak[0]:.0f} MB"
    )
    assert peak[0] - before < RSS_GROWTH_BOUND_MB, f"resident memory {before:.0f} MB before, {peak[0]:.0f} MB at peak"
    time.sleep(0.5)
    with httpx.Client(timeout=10, trust_env=False) as client:
        response = client.post(f"{served.url}/score", json={"data": rows[:5]}, headers=served.headers)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == pytest.approx(predict_locally(served.bundle.model_dir, rows[:5]), rel=1e-9)


def test_the_emulator_s_endpoints_answer_429_when_full_and_ours_503() -> None:
    """Azure ML's managed endpoints answer 429 "Too many pending requests" past what they can take (Microsoft Learn,
    troubleshooting online endpoints); the emulator starts our server so, and the server takes the option."""
    from azureml_emulator.core.endpoint_servers import runtime
    from infra.endpoint_server import EndpointConfig

    ours = EndpointConfig(port=1).server_arguments()
    assert "--busy-status" not in ours
    emulated = runtime(SimpleNamespace(home="/nonexistent"), "scope", "endpoint", 1).config.server_arguments()  # type: ignore[arg-type]
    assert emulated[emulated.index("--busy-status") + 1] == "429"


def test_the_server_is_told_to_import_the_model_package_s_libraries_as_it_starts(tmp_path: Path) -> None:
    """`mlops run` starts the endpoint early; the libraries its first deployment needs import meanwhile."""
    from infra.endpoint_server import EndpointConfig
    from infra.endpoint_server.server import _parser

    config = EndpointConfig(port=1, preload=("scikit-learn", "pandas"))
    args = _parser().parse_args(["--dir", str(tmp_path), *config.server_arguments()])
    assert args.preload == ["scikit-learn", "pandas"]
    assert _parser().parse_args(["--dir", str(tmp_path), *EndpointConfig(port=1).server_arguments()]).preload == []

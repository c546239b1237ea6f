"""The local platform for real: `mlops up` (Prefect server and UI, work pool, deployments, worker), the
event chain train-register → deploy → batch-score, the CI script, the UI in Chromium, `mlops down`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from infra.settings import checkout_root
from tests.helpers import MODEL, SMOKE, free_port

SCREENSHOTS = checkout_root() / "test-results" / "screenshots"


class Platform:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.prefect_port, self.endpoint_port, self.azurite_port = free_port(), free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.ui = f"http://127.0.0.1:{self.prefect_port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        return {
            **env,
            "MLOPS_HOME": str(self.home),
            "MLOPS_PREFECT_PORT": str(self.prefect_port),
            "MLOPS_ENDPOINT_PORT": str(self.endpoint_port),
            "MLOPS_BLOB_EMULATOR": "azurite",  # blob storage configured: `up` runs Azurite, batch scoring uses it
            "MLOPS_AZURITE_PORT": str(self.azurite_port),
            **extra,
        }

    def mlops(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "deployments.cli", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )

    def api_post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{self.api}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def blobs(self, container: str) -> dict[str, bytes]:
        from azure.storage.blob import BlobServiceClient

        from infra.local.azurite import connection_string

        with BlobServiceClient.from_connection_string(connection_string(self.azurite_port)) as service:
            client = service.get_container_client(container)
            return {blob.name: client.download_blob(blob.name).readall() for blob in client.list_blobs()}

    def runs(self, flow: str) -> list[dict[str, Any]]:
        """Flow runs of a flow that belong to a deployment (scheduled future runs left out), newest first."""
        runs = self.api_post(
            "/flow_runs/filter", {"flows": {"name": {"any_": [flow]}}, "sort": "START_TIME_DESC", "limit": 50}
        )
        return [r for r in runs if r["deployment_id"] and r["state_type"] != "SCHEDULED"]

    def wait_for_run(self, flow: str, after: float, timeout: float = 240) -> dict[str, Any]:
        """The first run of `flow` created after `after` (epoch seconds) to reach a final state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for run in self.runs(flow):
                created = _epoch(run["created"])
                if created >= after and run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                    return run
            time.sleep(1)
        raise AssertionError(
            f"no {flow} run finished within {timeout} s; worker log:\n{(self.home / 'platform' / 'worker.log').read_text()[-3000:]}"
        )


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = Platform(tmp_path_factory.mktemp("platform") / "home")
    first = running.mlops("up")
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        running.first_up = first.stdout  # type: ignore[attr-defined]
        yield running
    finally:
        running.mlops("down")


@pytest.fixture(scope="module")
def chain(platform: Platform) -> dict[str, Any]:
    """One `prefect deployment run` of train-register, then whatever the triggers start."""
    started = time.time() - 1
    result = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "deployment", "run", "train-register/nightly", "--watch"],
        capture_output=True, text=True, env=platform.env(PREFECT_API_URL=platform.api), timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return {
        "train": platform.wait_for_run("train-register", started),
        "deploy": platform.wait_for_run("deploy", started),
        "batch": platform.wait_for_run("batch-score", started),
    }


class TestUp:
    def test_everything_started(self, platform: Platform) -> None:
        report = platform.first_up  # type: ignore[attr-defined]
        assert f"Azurite blob storage: started on 127.0.0.1:{platform.azurite_port}" in report
        assert f"Prefect server: started at {platform.ui}" in report
        assert "work pool mlops-local: created (process)" in report
        assert "deployments: 6 deployed from prefect.yaml" in report
        assert "worker: started" in report
        assert httpx.get(f"{platform.api}/health").status_code == 200

    def test_deployments_schedules_and_triggers(self, platform: Platform) -> None:
        deployments = {d["name"]: d for d in platform.api_post("/deployments/filter", {})}
        names = {f"{d['name']}" for d in deployments.values()}
        assert names == {"nightly", "on-registered", "on-deployed", "manual", "weekly"}
        automations = platform.api_post("/automations/filter", {})
        expected = {a["trigger"]["expect"][0] for a in automations}
        assert expected == {"mlops.data.arrived", "mlops.model.registered", "mlops.model.deployed"}

    def test_provision_created_the_containers_and_blocks(self, platform: Platform) -> None:
        assert platform.blobs("input") == {}  # the containers exist (listing a missing one raises)
        assert platform.blobs("output") == {}
        blocks = {b["name"] for b in platform.api_post("/block_documents/filter", {})}
        assert {"mlops-blob-credentials", "mlops-scoring-input", "mlops-scoring-output"} <= blocks

    def test_up_twice_is_harmless(self, platform: Platform) -> None:
        pids = {name: (platform.home / "platform" / f"{name}.pid").read_text() for name in ("server", "worker")}
        again = platform.mlops("up")
        assert again.returncode == 0, again.stderr
        assert "Azurite blob storage: running" in again.stdout
        assert "Prefect server: running" in again.stdout
        assert "worker: running" in again.stdout
        assert "work pool mlops-local: exists" in again.stdout
        assert pids == {name: (platform.home / "platform" / f"{name}.pid").read_text() for name in pids}


class TestChain:
    def test_one_run_leads_to_deploy_and_batch_score(self, chain: dict[str, Any]) -> None:
        assert [chain[k]["state_type"] for k in ("train", "deploy", "batch")] == ["COMPLETED"] * 3

    def test_triggered_runs_carry_the_event_s_model(self, chain: dict[str, Any]) -> None:
        assert chain["deploy"]["parameters"]["model_name"] == MODEL
        assert int(chain["deploy"]["parameters"]["version"]) == 1
        assert int(chain["batch"]["parameters"]["model_version"]) == 1

    def test_endpoint_serves_the_new_version(self, platform: Platform, chain: dict[str, Any]) -> None:
        status = json.loads(platform.mlops("status", "--json").stdout)
        assert status["endpoint"]["deployments"] == {"blue": {"model": f"{MODEL}:1", "traffic": 100}}
        key = json.loads((platform.home / "endpoints" / "diabetes-endpoint" / "keys.json").read_text())["primary"]
        answer = httpx.post(status["endpoint"]["url"], content=SMOKE, headers={"authorization": f"Bearer {key}"})
        assert answer.status_code == 200
        assert len(answer.json()["result"]) == 2

    def test_batch_score_read_and_wrote_blob_storage(self, platform: Platform, chain: dict[str, Any]) -> None:
        assert list(platform.blobs("input")) == ["diabetes_scoring_input.csv"]  # MLOpsPython's input, seeded
        outputs = platform.blobs("output")
        assert len(outputs) == 1, outputs.keys()
        (name, text), today = next(iter(outputs.items())), time.strftime("%Y-%m-%d", time.gmtime())
        assert re.fullmatch(rf"{today}/diabetes_scoring_output_\d\d_\d\d_\d\d_\d{{3}}\.csv", name), name
        lines = text.decode().splitlines()
        assert lines[0] == "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,score"
        assert len(lines) == 443

    def test_data_arrived_starts_train_register(self, platform: Platform, chain: dict[str, Any]) -> None:
        started = time.time() - 1
        emitted = platform.mlops("data-arrived")
        assert emitted.returncode == 0, emitted.stderr
        run = platform.wait_for_run("train-register", started)
        assert run["state_type"] == "COMPLETED"
        assert run["created_by"]["type"] == "AUTOMATION"


class TestCiScript:
    def _ci(self, platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
        env = platform.env(
            PREFECT_API_URL=platform.api, PREFECT=str(Path(sys.executable).parent / "prefect"), CI_TIMEOUT="600"
        )
        return subprocess.run(
            ["bash", str(checkout_root() / "deployments" / "ci.sh"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )

    def test_deploy_then_run_exits_0_when_the_flow_completes(self, platform: Platform, chain: dict[str, Any]) -> None:
        assert self._ci(platform, "deploy").returncode == 0
        result = self._ci(platform, "run", "train-register/nightly")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Completed" in result.stdout

    def test_exits_non_zero_when_the_flow_fails(self, platform: Platform, chain: dict[str, Any]) -> None:
        result = self._ci(platform, "run", "train-register/nightly", "--param", "data=/nonexistent/data.csv")
        assert result.returncode == 1
        assert "Failed" in result.stdout + result.stderr

    def test_usage_error_exits_2(self, platform: Platform) -> None:
        assert self._ci(platform, "launch").returncode == 2


class TestUi:
    def test_runs_page_lists_the_chain_and_the_model_card(
        self, platform: Platform, chain: dict[str, Any], chromium_page: Page
    ) -> None:
        page = chromium_page  # 1400 pixels tall: the artifact cards sit below a 720-pixel fold
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.goto(f"{platform.ui}/runs", wait_until="networkidle")
        for name in (chain["train"]["name"], chain["deploy"]["name"], chain["batch"]["name"]):
            expect(page.get_by_text(name).first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "runs.png"), full_page=True)
        page.goto(f"{platform.ui}/runs/flow-run/{chain['train']['id']}", wait_until="networkidle")
        page.get_by_text("Artifacts", exact=True).click()
        expect(page.get_by_text("model-card").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "train-register-artifacts.png"), full_page=True)
        page.get_by_text("model-card").first.click()
        expect(page.get_by_text(f"Model card: {MODEL} version 1").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "model-card.png"), full_page=True)
        assert all(
            (SCREENSHOTS / name).stat().st_size > 10_000
            for name in ("runs.png", "train-register-artifacts.png", "model-card.png")
        )


def test_down_stops_everything(platform: Platform, chain: dict[str, Any]) -> None:
    pids = [int((platform.home / "platform" / f"{name}.pid").read_text()) for name in ("worker", "server")]
    pids.append(int((platform.home / "platform" / "azurite" / "azurite.pid").read_text()))
    endpoint_pid = int((platform.home / "endpoints" / "diabetes-endpoint" / "server.pid").read_text())
    result = platform.mlops("down")
    assert result.returncode == 0
    assert result.stdout.index("stopped the Prefect worker") < result.stdout.index("stopped the Prefect server")
    assert "stopped Azurite" in result.stdout
    assert "stopped endpoint diabetes-endpoint" in result.stdout
    for pid in [*pids, endpoint_pid]:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert platform.mlops("down").stdout.strip() == "nothing was running"

"""The local platform for real: `mlops up` (PostgreSQL, Prefect server and UI, work pool, deployments, worker),
the event chain train-register → deploy → batch-score, dev's new champion promoted to staging by itself, the CI script, the UI in Chromium, a soak of
overlapping chains, `mlops down` and `up` again with nothing lost, `mlops down`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from infra.settings import checkout_root
from models.diabetes.data import write_sample_csv
from tests.e2e.platform_harness import FINAL, Platform, _epoch
from tests.support.helpers import MODEL, SMOKE, free_port

SCREENSHOTS = checkout_root() / "test-results" / "screenshots"


CHAIN = """\
[shared]
registry = "{root}/shared"

[staging]
MLOPS_HOME = "{root}/staging"
MLOPS_ENDPOINT_PORT = {port}
promote_from = "dev"
{promote_on}
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    running = Platform(root / "home")
    # dev (the platform's own environment) and staging, promoted into each time dev deploys (TestAutoPromotion)
    running.staging_port = free_port()  # type: ignore[attr-defined]
    running.chain_file = root / "environments.toml"  # type: ignore[attr-defined]
    running.chain_file.write_text(  # type: ignore[attr-defined]
        CHAIN.format(root=root, port=running.staging_port, promote_on='promote_on = "deployed"')  # type: ignore[attr-defined]
    )
    running.extra["MLOPS_ENVIRONMENTS_FILE"] = str(running.chain_file)  # type: ignore[attr-defined]
    # a settings file the worker's flow runs read (MLOPS_ENV_FILE): a test changes the retraining policy in it
    running.settings_file = running.home.parent / "platform.env"  # type: ignore[attr-defined]
    running.settings_file.write_text("")  # type: ignore[attr-defined]
    running.extra["MLOPS_ENV_FILE"] = str(running.settings_file)  # type: ignore[attr-defined]
    first = running.mlops("platform", "up")
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        running.first_up = first.stdout  # type: ignore[attr-defined]
        yield running
    finally:
        running.mlops("platform", "down")


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
        "monitor": platform.wait_for_run("monitor", started),
    }


class TestUp:
    def test_everything_started(self, platform: Platform) -> None:
        report = platform.first_up  # type: ignore[attr-defined]
        assert f"Azurite blob storage: started on 127.0.0.1:{platform.azurite_port}" in report
        assert f"Prefect server: started at {platform.ui}" in report
        assert "work pool mlops-local: created (process)" in report
        assert "deployments: 10 deployed from prefect.yaml" in report
        assert "worker: started" in report
        assert "endpoint watchdog: started" in report
        assert httpx.get(f"{platform.api}/health").status_code == 200

    def test_deployments_schedules_and_triggers(self, platform: Platform) -> None:
        deployments = {d["name"]: d for d in platform.api_post("/deployments/filter", {})}
        names = {f"{d['name']}" for d in deployments.values()}
        assert names == {
            "nightly",
            "on-registered",
            "on-deployed",
            "after-batch",
            "on-labels",
            "manual",
            "weekly",
            "scheduled",
        }
        automations = platform.api_post("/automations/filter", {})
        expected = {a["trigger"]["expect"][0] for a in automations}
        assert expected == {
            "mlops.data.arrived",
            "mlops.model.registered",
            "mlops.model.deployed",
            "mlops.batch.scored",
            "mlops.retrain.requested",
            "mlops.labels.arrived",
        }

    def test_provision_created_the_containers_and_blocks(self, platform: Platform) -> None:
        assert platform.blobs("input") == {}  # the containers exist (listing a missing one raises)
        assert platform.blobs("output") == {}
        blocks = {b["name"] for b in platform.api_post("/block_documents/filter", {})}
        assert {"mlops-blob-credentials", "mlops-scoring-input", "mlops-scoring-output"} <= blocks

    def test_up_twice_is_harmless(self, platform: Platform) -> None:
        pids = {name: (platform.home / "platform" / f"{name}.pid").read_text() for name in ("server", "worker")}
        again = platform.mlops("up")  # the old spelling: an alias of `mlops platform up`
        assert again.returncode == 0, again.stderr
        assert again.stderr.splitlines().count("`mlops up` is deprecated; use `mlops platform up`") == 1
        assert "Azurite blob storage: running" in again.stdout
        assert "Prefect server: running" in again.stdout
        assert "worker: running" in again.stdout
        assert "endpoint watchdog: running" in again.stdout
        assert "work pool mlops-local: exists" in again.stdout
        assert pids == {name: (platform.home / "platform" / f"{name}.pid").read_text() for name in pids}


class TestChain:
    def test_one_run_leads_to_deploy_batch_score_and_monitor(self, chain: dict[str, Any]) -> None:
        assert [chain[k]["state_type"] for k in ("train", "deploy", "batch", "monitor")] == ["COMPLETED"] * 4

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
        assert len(outputs) == 2, outputs.keys()  # the scores, and the monitor's drift.json beside them
        today = time.strftime("%Y-%m-%d", time.gmtime())
        [(name, text)] = [(n, t) for n, t in outputs.items() if n.endswith(".csv")]
        assert re.fullmatch(rf"{today}/diabetes_scoring_output_\d\d_\d\d_\d\d_\d{{3}}\.csv", name), name
        lines = text.decode().splitlines()
        assert lines[0] == "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,score"
        assert len(lines) == 443
        drift = json.loads(outputs[name.removesuffix(".csv") + ".drift.json"])
        assert (drift["rows"], drift["drifted"]) == (442, [])  # the training data's own features do not drift

    def test_data_arrived_starts_train_register(self, platform: Platform, chain: dict[str, Any]) -> None:
        started = time.time() - 1
        emitted = platform.mlops("data-arrived")
        assert emitted.returncode == 0, emitted.stderr
        run = platform.wait_for_run("train-register", started)
        assert run["state_type"] == "COMPLETED"
        assert run["created_by"]["type"] == "AUTOMATION"

    def _drifted_batches(self, platform: Platform, folder: Path, name: str) -> list[dict[str, Any]]:
        """Three batch-scores (at once) of a file with `bmi` and `s5` shifted by a standard deviation, and the three
        monitor runs their `mlops.batch.scored` started, once final."""
        frame = pd.read_csv(write_sample_csv(folder / "features.csv", for_scoring=True))
        for column in ("bmi", "s5"):
            frame[column] += frame[column].std()
        shifted = folder / name
        frame.to_csv(shifted, index=False)
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda _: platform.mlops("batch-score", "--input", str(shifted)), range(3)))
        assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]

        def monitored() -> list[dict[str, Any]] | None:
            runs = [r for r in platform.runs("monitor") if str(shifted) in json.dumps(r["parameters"])]
            return runs if len(runs) == 3 and all(r["state_type"] in FINAL for r in runs) else None

        runs = platform.until(monitored, 240, f"three monitor runs of {name} did not finish")
        assert [r["state_type"] for r in runs] == ["COMPLETED"] * 3
        assert {r["created_by"]["type"] for r in runs} == {"AUTOMATION"}
        return runs

    def _events_of(self, platform: Platform, name: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events `name` that the flow runs `runs` emitted (once the server stored them: a little after)."""
        ids = {f"prefect.flow-run.{r['id']}" for r in runs}
        events = platform.api_post("/events/filter", {"filter": {"event": {"name": [name]}}, "limit": 50})["events"]
        return [e for e in events if ids & {r["prefect.resource.id"] for r in e["related"]}]

    def test_drift_under_the_suggest_policy_suggests_once_and_starts_no_retraining(
        self, platform: Platform, chain: dict[str, Any], tmp_path: Path
    ) -> None:
        platform.settings_file.write_text("MLOPS_RETRAIN_POLICY=suggest\n")  # type: ignore[attr-defined]
        started = time.time() - 1
        try:
            runs = self._drifted_batches(platform, tmp_path, "shifted-suggest.csv")
        finally:
            platform.settings_file.write_text("")  # type: ignore[attr-defined]

        def drift_events() -> list[dict[str, Any]] | None:
            found = self._events_of(platform, "mlops.data.drifted", runs)
            return found if len(found) == 3 else None

        drifted = platform.until(drift_events, 60, "the three monitor runs' mlops.data.drifted were not all stored")
        assert [e["payload"]["features"] for e in drifted] == [["bmi", "s5"]] * 3  # drift is reported every time
        [suggested] = platform.until(
            lambda: self._events_of(platform, "mlops.retrain.suggested", runs) or None, 60, "no suggestion stored"
        )
        assert (suggested["payload"]["cause"], suggested["payload"]["model"]) == ("drift", f"{MODEL}:1")
        assert self._events_of(platform, "mlops.retrain.requested", runs) == []
        [suggesting] = [r for r in runs if f"prefect.flow-run.{r['id']}" in json.dumps(suggested["related"])]
        keys = {
            a["key"]
            for a in platform.api_post(
                "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [suggesting["id"]]}}}
            )
        }
        assert "retrain-suggested" in keys
        assert [r for r in platform.runs("train-register") if _created(r) >= started] == []

    def test_three_drifted_batches_within_the_cooldown_start_one_train_register_run(
        self, platform: Platform, chain: dict[str, Any], tmp_path: Path
    ) -> None:
        started = time.time() - 1
        runs = self._drifted_batches(platform, tmp_path, "shifted.csv")
        [requested] = platform.until(
            lambda: self._events_of(platform, "mlops.retrain.requested", runs) or None, 60, "no retrain request stored"
        )
        assert (requested["payload"]["cause"], requested["payload"]["model"]) == ("drift", f"{MODEL}:1")
        retrained = platform.wait_for_run("train-register", started)
        assert retrained["created_by"]["type"] == "AUTOMATION"
        assert retrained["state_type"] == "COMPLETED"
        # a retrain caused by drift goes through the gate as any other: the same data trains an equal model, which
        # does not beat the serving version 1, so nothing is promoted
        assert "force" not in retrained["parameters"]
        artifacts = platform.api_post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [retrained["id"]]}}})
        [evaluation] = [a for a in artifacts if a["key"] == "evaluation"]
        assert evaluation["description"].startswith("not promoted"), evaluation["description"]
        assert [r["id"] for r in platform.runs("train-register") if _created(r) >= started] == [retrained["id"]]
        loop = json.loads(platform.mlops("status", "--json").stdout)["loop"]
        assert (loop["policy"], loop["last_drift"]["drifted"]) == ("retrain", ["bmi", "s5"])
        assert loop["cooldown_ends"] == requested["payload"]["cooldown_ends"]


def _created(run: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(run["created"].replace("Z", "+00:00")).timestamp()


def _score(home: Path, port: int) -> list[float]:
    """The smoke request's answer from the endpoint of the environment whose MLOPS_HOME is `home`."""
    key = json.loads((home / "endpoints" / "diabetes-endpoint" / "keys.json").read_text())["primary"]
    answer = httpx.post(
        f"http://127.0.0.1:{port}/score", content=SMOKE, headers={"authorization": f"Bearer {key}"}, timeout=30
    )
    answer.raise_for_status()
    result: list[float] = answer.json()["result"]
    return result


@pytest.fixture(scope="module")
def promoted(platform: Platform, chain: dict[str, Any]) -> dict[str, Any]:
    """The auto-promote run that dev's deploy in the chain started, and staging's status after it; then the chain
    is taken out of environments.toml again (staging stays declared): later deploys in dev (the soak's) start none."""
    run = platform.wait_for_run("auto-promote", _epoch(chain["deploy"]["created"]))
    status = platform.mlops("status", "--env", "staging", "--json")
    assert status.returncode == 0, status.stderr
    platform.chain_file.write_text(  # type: ignore[attr-defined]
        CHAIN.format(root=platform.home.parent, port=platform.staging_port, promote_on="")  # type: ignore[attr-defined]
    )
    return {"run": run, "status": json.loads(status.stdout), "since": time.time()}


class TestAutoPromotion:
    """environments.toml: staging has promote_from = "dev", promote_on = "deployed". The chain's deploy in dev is
    followed, with no command typed, by auto-promote/on-deployed: dev's new champion serves in staging."""

    def test_devs_deploy_event_started_the_promotion(self, promoted: dict[str, Any]) -> None:
        run = promoted["run"]
        assert run["state_type"] == "COMPLETED", run["state_name"]
        assert run["created_by"]["type"] == "AUTOMATION"
        assert (run["parameters"]["when"], run["parameters"]["source"], int(run["parameters"]["version"])) == (
            "deployed",
            "dev",
            1,
        )

    def test_staging_serves_devs_champion_with_devs_values(self, platform: Platform, promoted: dict[str, Any]) -> None:
        report = promoted["status"]
        assert report["environment"] == "staging"
        assert report["champion"]["lineage"]["source_environment"] == "dev"
        assert report["champion"]["lineage"]["source_model_id"] == f"{MODEL}:1"
        assert report["placement"]["serving"] == report["placement"]["champion"] == f"{MODEL}:1"
        assert report["placement"]["promoted_by"] == "deployment auto-promote/on-deployed"
        staging = _score(platform.home.parent / "staging", platform.staging_port)  # type: ignore[attr-defined]
        assert len(staging) == 2
        assert staging == _score(platform.home, platform.endpoint_port)


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
        page.goto(f"{platform.ui}/runs/flow-run/{chain['monitor']['id']}", wait_until="networkidle")
        page.get_by_text("Artifacts", exact=True).click()
        expect(page.get_by_text("drift-report").first).to_be_visible(timeout=30_000)
        page.get_by_text("drift-report").first.click()
        expect(page.get_by_text("Drift of the scoring data against").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "drift-report.png"), full_page=True)
        assert all(
            (SCREENSHOTS / name).stat().st_size > 10_000
            for name in ("runs.png", "train-register-artifacts.png", "model-card.png", "drift-report.png")
        )


class ApiWatch:
    """Polls a query that reads the database (`/flow_runs/filter`) every half second from a thread; keeps
    the slowest answer and every failure. Bounded: it stops by itself after `max_seconds`."""

    def __init__(self, api: str, max_seconds: float = 900) -> None:
        self.api, self.max_seconds = api, max_seconds
        self.slowest, self.count = 0.0, 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ApiWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        # This thread measures the platform, which runs at niceness 0: at the test worker's niceness 5 it waited
        # for CPU behind the platform's own processes, and that wait counted as the API's (a 2.24 s answer in a
        # fresh-clone run). Niceness is per thread on Linux; lowering it needs root, else it stays as it was.
        with contextlib.suppress(OSError):
            os.nice(-os.nice(0))
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(base_url=self.api, timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    client.post("/flow_runs/filter", json={"limit": 10, "sort": "START_TIME_DESC"}).raise_for_status()
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.slowest = max(self.slowest, time.perf_counter() - started)
                self.count += 1
                self._stop.wait(0.5)


SOAK_ALPHAS = (0.011, 0.012, 0.013)  # one new version each (force: promoted whatever the gate)


@pytest.fixture(scope="module")
def soak(platform: Platform, chain: dict[str, Any]) -> dict[str, Any]:
    """Three chains, each train-register started as soon as the one before runs (so they overlap), while the
    API is polled throughout; returns every run they led to, and the watch."""
    nightly = platform.api_get("/deployments/name/train-register/nightly")["id"]
    started = time.monotonic()
    with ApiWatch(platform.api) as watch:
        trains = []
        for alpha in SOAK_ALPHAS:
            run = platform.api_post(
                f"/deployments/{nightly}/create_flow_run", {"parameters": {"alpha": alpha, "force": True}}
            )
            trains.append(run["id"])
            platform.wait_for_state(run["id"], ("RUNNING", *FINAL))
        trains_done = [platform.wait_for_state(run_id, FINAL) for run_id in trains]
        versions = {
            entry["tags"]["prefect_flow_run_id"]: entry["version"]
            for entry in json.loads(platform.mlops("status", "--json").stdout)["models"]
            if entry["tags"].get("prefect_flow_run_id") in trains
        }
        deploys = platform.wait_for_runs("deploy", "version", set(versions.values()))
        outcomes = {int(run["parameters"]["version"]): _deploy_outcome(platform, run["id"]) for run in deploys}
        deployed = {version for version, outcome in outcomes.items() if outcome == "deployed"}
        batches = platform.wait_for_runs("batch-score", "model_version", deployed)
    _write_soak_report(started, trains_done + deploys + batches, watch)
    return {
        "trains": trains_done,
        "versions": versions,
        "deploys": deploys,
        "outcomes": outcomes,
        "batches": batches,
        "watch": watch,
    }


def _deploy_outcome(platform: Platform, run_id: str) -> str:
    """`deployed` (the run published its traffic steps), `superseded` (it said why not), or what else it left."""
    keys = {
        a["key"] for a in platform.api_post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    }
    if "traffic-steps" in keys:
        return "deployed"
    return "superseded" if "deploy-superseded" in keys else f"neither: {sorted(keys)}"


def _write_soak_report(started: float, runs: list[dict[str, Any]], watch: ApiWatch) -> None:
    """`test-results/soak.json`: how long the soak took and how close the API came to its 2 s limit."""
    SCREENSHOTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "seconds": round(time.monotonic() - started, 1),
        "runs": len(runs),
        "api_polls": watch.count,
        "api_slowest_seconds": round(watch.slowest, 3),
        "api_failures": len(watch.failures),
    }
    (SCREENSHOTS.parent / "soak.json").write_text(json.dumps(report, indent=2) + "\n")


class TestSoak:
    def test_every_run_completes(self, soak: dict[str, Any]) -> None:
        runs = soak["trains"] + soak["deploys"] + soak["batches"]
        assert [r["state_type"] for r in runs] == ["COMPLETED"] * len(runs), [
            (r["name"], r["state_name"]) for r in runs
        ]
        assert len(soak["trains"]) == len(soak["deploys"]) == len(SOAK_ALPHAS)

    def test_one_deploy_per_promoted_model_and_one_batch_score_per_deployed_one(self, soak: dict[str, Any]) -> None:
        versions = sorted(soak["versions"].values())
        assert len(versions) == len(SOAK_ALPHAS), soak["versions"]  # every train registered a version of its own
        assert sorted(int(r["parameters"]["version"]) for r in soak["deploys"]) == versions  # no event lost
        assert all(r["parameters"]["skip_older"] is True for r in soak["deploys"])
        assert set(soak["outcomes"].values()) <= {"deployed", "superseded"}, soak["outcomes"]
        deployed = sorted(v for v, outcome in soak["outcomes"].items() if outcome == "deployed")
        assert sorted(int(r["parameters"]["model_version"]) for r in soak["batches"]) == deployed

    def test_the_newest_version_serves_at_the_end(self, platform: Platform, soak: dict[str, Any]) -> None:
        """Queued deploys start in any order; an older one must not be rolled out over a newer one."""
        newest = max(soak["versions"].values())
        assert soak["outcomes"][newest] == "deployed"
        serving = json.loads(platform.mlops("status", "--json").stdout)["endpoint"]["deployments"]
        assert [d["model"] for d in serving.values() if d["traffic"] == 100] == [f"{MODEL}:{newest}"]

    def test_the_api_answered_within_2_s_throughout(self, soak: dict[str, Any]) -> None:
        watch = soak["watch"]
        assert watch.failures == []
        assert watch.count > 60  # polled for the whole soak, not once
        assert watch.slowest < 2.0, f"slowest answer {watch.slowest:.2f} s"

    def test_server_log_has_no_lock_and_no_error(self, platform: Platform, soak: dict[str, Any]) -> None:
        log = (platform.home / "platform" / "server.log").read_text(errors="replace")
        assert "database is locked" not in log
        assert [line for line in log.splitlines() if "ERROR" in line] == []
        database = (platform.home / "platform" / "postgres" / "postgres.log").read_text(errors="replace")
        assert [line for line in database.splitlines() if "FATAL" in line or "PANIC" in line] == []
        # Prefect's server inserts a task run its event recorder may have inserted first, and handles the
        # unique violation (its own log stays clean, as asserted above); any other ERROR is a failure.
        errors = [line for line in database.splitlines() if " ERROR: " in line]
        assert [line for line in errors if "duplicate key value violates unique constraint" not in line] == []


def test_without_a_declared_chain_deploys_start_no_promotion(
    platform: Platform, promoted: dict[str, Any], soak: dict[str, Any]
) -> None:
    assert soak["outcomes"]  # the soak deployed in dev after the chain was taken out of environments.toml
    later = [r for r in platform.runs("auto-promote") if _epoch(r["created"]) > promoted["since"]]
    assert later == []


class TestSupervision:
    """Every process of `mlops up` runs under a supervisor: killed, it is started again, and `mlops status` says so;
    the endpoint's supervisor killed, the platform's watchdog starts the endpoint again."""

    def test_a_killed_worker_and_server_are_started_again_and_reported(
        self, platform: Platform, soak: dict[str, Any]
    ) -> None:
        folder = platform.home / "platform"

        def processes() -> dict[str, Any]:
            report: dict[str, Any] = json.loads(platform.mlops("status", "--json").stdout)["platform"]["processes"]
            return report

        def back(name: str, killed: int) -> dict[str, Any] | None:
            state = processes()[name]
            return state if state["state"] == "running" and state["pid"] not in (None, killed) else None

        def answers() -> bool | None:
            try:
                return httpx.get(f"{platform.api}/health", timeout=5).status_code == 200 or None
            except httpx.HTTPError:
                return None

        for name in ("worker", "server"):  # one at a time: the worker is restarted while its server runs
            killed = int((folder / f"{name}.pid").read_text())
            os.kill(killed, signal.SIGKILL)
            state = platform.until(
                lambda name=name, killed=killed: back(name, killed),  # type: ignore[misc]
                timeout=90,
                failure=f"the {name} was not started again",
            )
            assert (state["restarts"], state["last_exit"]) == (1, "killed by SIGKILL")
        # a process that runs is not yet a server that answers: wait for the API before using it
        platform.until(answers, timeout=180, failure="the restarted Prefect server did not answer")
        report = processes()
        assert report["postgres"]["state"] == "running"
        assert report["azurite"]["state"] == "running"
        text = platform.mlops("status").stdout
        assert "  worker: running (supervised; 1 restart, last: killed by SIGKILL at " in text
        assert "  server: running (supervised; 1 restart, last: killed by SIGKILL at " in text
        # the restarted server and worker run a flow again
        result = subprocess.run(
            [str(Path(sys.executable).parent / "prefect"), "deployment", "run", "provision/manual", "--watch"],
            capture_output=True, text=True, env=platform.env(PREFECT_API_URL=platform.api), timeout=600, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr

    def test_a_killed_endpoint_supervisor_is_replaced_by_the_watchdog_within_10_s(
        self, platform: Platform, chain: dict[str, Any]
    ) -> None:
        folder = platform.home / "endpoints" / "diabetes-endpoint"
        before = json.loads(platform.mlops("status", "--json").stdout)["endpoint"]
        key = json.loads((folder / "keys.json").read_text())["primary"]
        supervisor = json.loads((folder / "server.supervisor.json").read_text())["supervisor_pid"]
        server = int((folder / "server.pid").read_text())
        os.kill(supervisor, signal.SIGKILL)
        killed = time.monotonic()

        def serving() -> int | None:
            """The new server's pid once it answers a scoring request (the old one answers while it shuts down)."""
            try:
                pid = int((folder / "server.pid").read_text())
                answer = httpx.post(before["url"], content=SMOKE, headers={"authorization": f"Bearer {key}"}, timeout=2)
            except (OSError, ValueError, httpx.HTTPError):
                return None
            return pid if pid != server and answer.status_code == 200 else None

        while (pid := serving()) is None and time.monotonic() - killed < 60:
            time.sleep(0.1)
        took = time.monotonic() - killed
        watchdog = (platform.home / "platform" / "watchdog.log").read_text()
        assert pid is not None, f"not serving again within 60 s; the watchdog's log:\n{watchdog}"
        assert took < 10, f"serving again after {took:.1f} s, not within 10 s; the watchdog's log:\n{watchdog}"
        after = json.loads(platform.mlops("status", "--json").stdout)["endpoint"]
        assert after["deployments"] == before["deployments"]
        assert (after["health"]["state"], after["health"]["supervised"]) == ("running", True)
        assert f"supervisor pid {supervisor} died (killed?) after " in watchdog
        serving_again = f"endpoint diabetes-endpoint: serving again at {before['url']} ("
        platform.until(  # its last line follows the server's first answers by a moment
            lambda: serving_again in (platform.home / "platform" / "watchdog.log").read_text() or None,
            timeout=30,
            failure="the watchdog did not log the endpoint serving again",
        )


class TestRestart:
    """`mlops down` then `mlops up`: the same database, so every run, deployment and block is still there."""

    def test_down_and_up_keeps_runs_deployments_and_blocks(self, platform: Platform, soak: dict[str, Any]) -> None:
        before = self._inventory(platform)
        down = platform.mlops("platform", "down")
        assert down.returncode == 0, down.stderr
        assert "stopped PostgreSQL" in down.stdout
        again = platform.mlops("platform", "up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"database: PostgreSQL started on 127.0.0.1:{platform.postgres_port}" in again.stdout
        assert "work pool mlops-local: exists" in again.stdout
        [line] = [line for line in again.stdout.splitlines() if line.startswith("endpoint diabetes-endpoint:")]
        assert line.startswith(
            f"endpoint diabetes-endpoint: started again at http://127.0.0.1:{platform.endpoint_port}/"
        )
        assert f"{MODEL}:{max(soak['versions'].values())} 100 %" in line  # the newest, as before `down`
        staging = f"http://127.0.0.1:{platform.staging_port}/"  # type: ignore[attr-defined]
        assert f"endpoint diabetes-endpoint of staging: started again at {staging}" in again.stdout
        after = self._inventory(platform)
        assert after["runs"] >= before["runs"]  # the provision run of this `up` adds one
        assert after["run_ids"] >= before["run_ids"]
        assert after["deployments"] == before["deployments"]
        assert after["blocks"] == before["blocks"]

    def _inventory(self, platform: Platform) -> dict[str, Any]:
        finished = {"flow_runs": {"state": {"type": {"any_": list(FINAL)}}}, "limit": 200}
        runs = platform.api_post("/flow_runs/filter", finished)
        return {
            "runs": len(runs),
            "run_ids": {r["id"] for r in runs},
            "deployments": {d["id"] for d in platform.api_post("/deployments/filter", {})},
            "blocks": {b["id"] for b in platform.api_post("/block_documents/filter", {})},
        }

    def test_status_shows_the_platform_s_database(self, platform: Platform) -> None:
        report = json.loads(platform.mlops("status", "--json").stdout)["platform"]
        assert report["running"] is True
        assert report["database"]["kind"] == "postgres"
        assert report["database"]["url"] == f"postgresql+asyncpg://mlops:***@127.0.0.1:{platform.postgres_port}/prefect"
        assert report["database"]["pid"] == int((platform.home / "platform" / "postgres" / "postgres.pid").read_text())
        password = (platform.home / "platform" / "postgres" / "password").read_text().strip()
        assert password not in platform.mlops("status", "--json").stdout
        assert (platform.home / "platform" / "postgres" / "password").stat().st_mode & 0o777 == 0o600


def test_down_stops_everything(platform: Platform, chain: dict[str, Any]) -> None:
    pids = [int((platform.home / "platform" / f"{name}.pid").read_text()) for name in ("worker", "server")]
    pids.append(int((platform.home / "platform" / "postgres" / "postgres.pid").read_text()))
    pids.append(int((platform.home / "platform" / "azurite" / "azurite.pid").read_text()))
    pids.append(int((platform.home / "platform" / "watchdog.pid").read_text()))
    endpoint_pid = int((platform.home / "endpoints" / "diabetes-endpoint" / "server.pid").read_text())
    staging = platform.home.parent / "staging" / "endpoints" / "diabetes-endpoint" / "server.pid"
    pids.append(int(staging.read_text()))  # promoted into by the platform: its endpoint stops with it
    result = platform.mlops("platform", "down")
    assert result.returncode == 0
    assert result.stdout.index("stopped the Prefect worker") < result.stdout.index("stopped the Prefect server")
    assert result.stdout.index("stopped the Prefect server") < result.stdout.index("stopped PostgreSQL")
    assert "stopped Azurite" in result.stdout
    assert "stopped endpoint diabetes-endpoint" in result.stdout
    assert "stopped endpoint diabetes-endpoint of staging" in result.stdout
    assert result.stdout.startswith("stopped the endpoint watchdog\n")  # before what it watches
    for pid in [*pids, endpoint_pid]:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert platform.mlops("down").stdout.strip() == "nothing was running"  # the old spelling, an alias

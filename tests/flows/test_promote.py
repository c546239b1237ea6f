"""Promotion dev -> staging on a real Prefect server, through `mlops` commands, with two real endpoints.

`environments.toml` declares dev and staging (their own MLOPS_HOME and endpoint port) and a shared registry.
`mlops run` trains and deploys in dev; `mlops promote --to staging` puts dev's champion in the shared registry with
its lineage, registers it in staging, deploys it there and makes it staging's champion. Then: the same again
(nothing new, nothing deployed), and a version that did not pass its gate (refused before anything is written).
"""

from __future__ import annotations

import getpass
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactCollectionFilterKey,
    LogFilter,
)
from prefect.events.filters import EventFilter, EventNameFilter

from flows.auto_promote import auto_promote
from infra import environments
from infra.local import LocalBackend
from infra.local.registry import LocalRegistry
from infra.settings import load_settings
from tests.support.approvals import paused_deploy_runs
from tests.support.cli import run_mlops
from tests.support.helpers import MODEL, SMOKE, free_port

FILE = """\
[shared]
registry = "{shared}"

[dev]
MLOPS_HOME = "{root}/dev"
MLOPS_ENDPOINT_PORT = {dev_port}

[staging]
MLOPS_HOME = "{root}/staging"
MLOPS_ENDPOINT_PORT = {staging_port}
promote_from = "dev"
promote_on = "deployed"

[prod]
MLOPS_HOME = "{root}/prod"
MLOPS_ENDPOINT_PORT = {prod_port}
approval = true

[qa]
MLOPS_HOME = "{root}/qa"
MLOPS_ENDPOINT_PORT = {qa_port}
approval = true
"""


def _score(environment: str) -> list[float]:
    with environments.using(environment):
        settings = load_settings()
    key = LocalBackend(settings).endpoints.key(settings.endpoint_name)
    answer = httpx.post(
        f"http://127.0.0.1:{settings.endpoint_port}/score",
        content=SMOKE,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    answer.raise_for_status()
    result: list[float] = answer.json()["result"]
    return result


def _registry(environment: str) -> LocalRegistry:
    with environments.using(environment):
        return LocalRegistry(load_settings().registry_path)


def _approve_when_paused(
    api_url: str, environment: str, *answer: str, found: dict[str, Any] | None = None, timeout: float = 180
) -> threading.Thread:
    """A reviewer in another process: `mlops approve --env ENVIRONMENT [answer]` (no run id: the one waiting in that
    environment) once a deploy run waits for approval; with `found`, first `mlops approve --env dev`, kept there."""

    def wait_and_approve() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            paused = paused_deploy_runs()
            if paused:
                if found is not None:  # dev has no run waiting: answered with an error, the run still waits
                    found["approve_dev"] = run_mlops("approve", "--env", "dev", api_url=api_url, in_process=False)
                argv = ["approve", "--env", environment, "--reviewer", "carol", *answer]
                run_mlops(*argv, api_url=api_url, in_process=False)
                return
            time.sleep(0.5)

    thread = threading.Thread(target=wait_and_approve, daemon=True)
    thread.start()
    return thread


def _promoted_events(content_hash: str, to: str, timeout: float = 30) -> list[Any]:
    """The stored mlops.model.promoted events of this content into `to` (polled: events are stored shortly after)."""
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            page = client.read_events(
                filter=EventFilter(event=EventNameFilter(name=["mlops.model.promoted"])), limit=50
            )
        events = [e for e in page.events if e.payload.get("content_hash") == content_hash and e.payload["to"] == to]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


@pytest.fixture(scope="module")
def story(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("promote")
    file = root / "environments.toml"
    shared = root / "shared"
    file.write_text(
        FILE.format(
            root=root,
            shared=shared,
            dev_port=free_port(),
            staging_port=free_port(),
            prod_port=free_port(),
            qa_port=free_port(),
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_ENVIRONMENTS_FILE", str(file))
        for name in ("MLOPS_ENV", "MLOPS_SHARED_REGISTRY", "MLOPS_HOME", "MLOPS_ENDPOINT_PORT"):
            patch.delenv(name, raising=False)
        found: dict[str, Any] = {"root": root, "shared": LocalRegistry(shared / "registry.db")}
        try:
            found["run"] = run_mlops("run", api_url=prefect_server)
            found["promote"] = run_mlops("promote", "--to", "staging", api_url=prefect_server)
            found["dev_champion"] = _registry("dev").get_alias(MODEL, "champion")
            found["status"] = run_mlops("status", "--env", "staging", "--json", api_url=prefect_server)
            found["scores"] = {name: _score(name) for name in ("dev", "staging")}
            found["versions"] = len(found["shared"].list()), len(_registry("staging").list())
            found["again"] = run_mlops("promote", "--to", "staging", "--from", "dev", api_url=prefect_server)
            found["versions_again"] = len(found["shared"].list()), len(_registry("staging").list())
            reviewer = _approve_when_paused(prefect_server, "prod", found=found)
            found["prod"] = run_mlops("promote", "--from", "staging", "--to", "prod", api_url=prefect_server)
            reviewer.join()
            found["prod_champion"] = _registry("prod").get_alias(MODEL, "champion")
            # a worse model, registered and made dev's champion although its gate said no
            found["forced"] = run_mlops("train", "--alpha", "1000", "--skip-gate", api_url=prefect_server)
            found["refused"] = run_mlops("promote", "--to", "staging", api_url=prefect_server)
            found["versions_refused"] = len(found["shared"].list()), len(_registry("staging").list())
            forced = _registry("dev").get_alias(MODEL, "champion")
            found["auto_forced"] = auto_promote(
                when="deployed", source="dev", version=forced.version, return_state=True
            )
            found["auto_schedule"] = auto_promote(when="schedule", return_state=True)
            # dev's first version (it passed its gate) into qa, where the reviewer rejects it
            reviewer = _approve_when_paused(prefect_server, "qa", "--reject", "--comment", "not yet")
            found["rejected"] = run_mlops("promote", "--to", "qa", "--model-version", "1", api_url=prefect_server)
            reviewer.join()
            found["qa_champion"] = _registry("qa").get_alias(MODEL, "champion")
            found["all"] = run_mlops("status", "--all-envs", "--json", api_url=prefect_server)
            yield found
        finally:
            for name in ("dev", "staging", "prod", "qa"):
                run_mlops("endpoint", "stop", "--env", name, api_url=prefect_server)


def test_mlops_run_then_promote_to_staging_completes(story: dict[str, Any]) -> None:
    assert story["run"].returncode == 0, story["run"].stderr
    assert story["promote"].returncode == 0, story["promote"].stderr
    assert "is now the champion of staging" in story["promote"].stdout


def test_the_staging_endpoint_answers_with_devs_values(story: dict[str, Any]) -> None:
    dev, staging = story["scores"]["dev"], story["scores"]["staging"]
    assert len(staging) == 2
    assert staging == dev


def test_status_of_staging_shows_the_champion_with_lineage_naming_devs_training_run(story: dict[str, Any]) -> None:
    assert story["status"].returncode == 0, story["status"].stderr
    report = json.loads(story["status"].stdout)
    dev_champion = story["dev_champion"]  # before the forced training below moved it
    assert report["environment"] == "staging"
    assert report["home"] == str(story["root"] / "staging")
    lineage = report["champion"]["lineage"]
    assert lineage["source_environment"] == "dev"
    assert lineage["source_workspace"] == str(story["root"] / "dev")
    assert lineage["training_run"] == dev_champion.tags["run_id"]
    assert lineage["data_sha256"] == dev_champion.tags["data_sha256"]
    assert lineage["code_sha256"] == dev_champion.tags["code_sha256"]
    assert lineage["decision"] == dev_champion.properties["decision"]
    assert json.loads(lineage["metrics"]) == json.loads(dev_champion.properties["metrics"])
    shared = story["shared"].get(MODEL, 1)
    assert json.loads(shared.properties["lineage"]) == lineage
    assert shared.content_hash == dev_champion.content_hash


def test_promoting_the_same_version_again_creates_no_version_and_deploys_nothing(story: dict[str, Any]) -> None:
    assert story["versions"] == (1, 1)
    assert story["again"].returncode == 0, story["again"].stderr
    assert story["versions_again"] == (1, 1)
    assert "already in the shared registry as version 1" in story["again"].stdout
    assert "already serving" in story["again"].stdout
    assert "was already the champion of staging" in story["again"].stdout


def test_one_promoted_event_per_promotion(story: dict[str, Any]) -> None:
    content_hash = story["dev_champion"].content_hash
    events = _promoted_events(content_hash, "staging")
    assert len(events) == 1  # the second promotion emitted none
    assert events[0].payload["from"] == "dev"
    assert events[0].payload["version"] == 1


def test_prod_waits_for_approval_and_keeps_the_first_lineage(story: dict[str, Any]) -> None:
    assert story["prod"].returncode == 0, story["prod"].stderr
    assert "is now the champion of prod" in story["prod"].stdout
    champion = story["prod_champion"]
    assert champion is not None
    assert champion.content_hash == story["dev_champion"].content_hash
    lineage = json.loads(champion.properties["lineage"])
    assert lineage["source_environment"] == "dev"
    assert lineage["training_run"] == story["dev_champion"].tags["run_id"]
    assert lineage["promoted_through"] == "staging"
    assert len(story["shared"].list(MODEL)) == 1  # the same content: the shared registry's one version


def test_approve_answers_only_a_run_of_its_environment(story: dict[str, Any]) -> None:
    wrong = story["approve_dev"]
    assert wrong.returncode == 2
    assert (
        wrong.stderr.strip()
        == "mlops approve: no deploy run waits for approval in environment 'dev' (runs wait in: prod)"
    )


def test_a_rejected_promotion_leaves_the_targets_champion_alone(story: dict[str, Any]) -> None:
    assert story["rejected"].returncode == 0, story["rejected"].stderr
    assert "not promoted: rejected by carol: not yet" in story["rejected"].stdout
    assert story["qa_champion"] is None


def test_a_version_that_failed_its_gate_is_refused_before_anything_is_written(story: dict[str, Any]) -> None:
    assert story["forced"].returncode == 0, story["forced"].stderr
    assert "forced" in story["forced"].stdout
    assert story["refused"].returncode == 1
    assert "did not pass its gate, its gate said: forced" in story["refused"].stderr
    assert story["versions_refused"] == (1, 1)
    assert story["scores"]["staging"] == _score("staging")  # staging still serves what it did


def test_all_environments_side_by_side(story: dict[str, Any]) -> None:
    assert story["all"].returncode == 0, story["all"].stderr
    rows = json.loads(story["all"].stdout)["environments"]
    assert list(rows) == ["dev", "staging", "prod", "qa"]
    assert rows["prod"]["champion"]["lineage"]["promoted_through"] == "staging"
    assert rows["dev"]["champion"]["lineage"] == {}
    assert rows["staging"]["champion"]["lineage"]["source_environment"] == "dev"
    placed = {name: row["placement"] for name, row in rows.items()}
    user = getpass.getuser()
    assert placed["staging"] | {"since": None} == {
        "serving": f"{MODEL}:1",
        "champion": f"{MODEL}:1",
        "since": None,
        "promoted_from": "dev",
        "promoted_by": f"{user} (mlops promote)",
    }
    assert placed["prod"]["promoted_from"] == "staging"
    assert placed["staging"]["since"] < placed["prod"]["since"]  # ISO times in UTC: staging first
    # dev serves version 1 still; its champion is the forced version 2, registered (trained) there
    assert (placed["dev"]["serving"], placed["dev"]["champion"]) == (f"{MODEL}:1", f"{MODEL}:2")
    assert (placed["dev"]["promoted_from"], placed["dev"]["promoted_by"]) == (None, "trained here")
    assert (placed["qa"]["serving"], placed["qa"]["champion"]) == (None, None)  # rejected: nothing serves


def test_each_promotion_publishes_every_environment_as_an_artifact(story: dict[str, Any]) -> None:
    with get_client(sync_client=True) as client:
        [latest] = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=["environments"]))
        )
        flow = client.read_flow(client.read_flow_run(latest.flow_run_id).flow_id)
    assert flow.name == "promote"
    lines = str(latest.data).splitlines()
    assert "| environment | serving | champion | since | promoted from | by |" in lines
    [staging] = [line for line in lines if line.startswith("| staging |")]
    assert staging.startswith(f"| staging | {MODEL}:1 | {MODEL}:1 | ")
    assert staging.endswith(f" | dev | {getpass.getuser()} (mlops promote) |")
    assert "| qa | — | — | — | — | — |" in lines  # the last promotion, into qa, was rejected: nothing serves


def test_auto_promote_refuses_a_version_that_failed_its_gate_and_completes(story: dict[str, Any]) -> None:
    state = story["auto_forced"]
    assert state.is_completed(), state
    assert state.result() == []
    assert any(
        "not promoted to 'staging':" in line and "did not pass its gate" in line
        for line in _logs(state.state_details.flow_run_id)
    )
    assert story["versions_refused"] == (1, 1)


def test_auto_promote_with_nothing_declared_completes_saying_so(story: dict[str, Any]) -> None:
    state = story["auto_schedule"]
    assert state.is_completed(), state
    assert state.result() == []
    [line] = [line for line in _logs(state.state_details.flow_run_id) if "nothing to promote" in line]
    assert line.endswith("declares promote_on = 'schedule'")


def _logs(flow_run_id: Any) -> list[str]:
    with get_client(sync_client=True) as client:
        return [log.message for log in client.read_logs(log_filter=LogFilter(flow_run_id={"any_": [flow_run_id]}))]


def test_a_missing_file_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = run_mlops("promote", "--to", "staging", env={"MLOPS_ENVIRONMENTS_FILE": str(missing)})
    assert result.returncode == 2
    assert f"MLOPS_ENVIRONMENTS_FILE='{missing}': no such file" in result.stderr


def test_an_unknown_target_is_refused_before_any_flow_runs(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "environments.toml"
    file.write_text(f'[dev]\nMLOPS_HOME = "{tmp_path / "dev"}"\n')
    monkeypatch.setenv("MLOPS_ENVIRONMENTS_FILE", str(file))
    result = run_mlops("promote", "--to", "qa", api_url=prefect_server)
    assert result.returncode == 2
    assert result.stderr.strip() == f"mlops promote: unknown environment 'qa' in {file}; known: dev"


def test_a_target_that_cannot_be_reached_fails_before_anything_is_written(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not-a-folder").write_text("")
    file = tmp_path / "environments.toml"
    file.write_text(
        f'[shared]\nregistry = "{tmp_path / "shared"}"\n[dev]\nMLOPS_HOME = "{tmp_path / "dev"}"\n'
        f'[staging]\nMLOPS_HOME = "{tmp_path / "not-a-folder"}"\n'
    )
    monkeypatch.setenv("MLOPS_ENVIRONMENTS_FILE", str(file))
    result = run_mlops("promote", "--to", "staging", api_url=prefect_server)
    assert result.returncode == 1
    assert f"MLOPS_HOME='{tmp_path / 'not-a-folder'}': exists and is not a folder" in result.stderr
    assert not (tmp_path / "shared").exists()
    assert not (tmp_path / "dev").exists()

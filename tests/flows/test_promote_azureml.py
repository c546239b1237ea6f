"""Promotion from a local `dev` into a `prod` workspace on the Azure ML emulator, through an emulated Azure ML
registry, with approval (issue 24's acceptance line "Azure ML (emulator)").

Real components: the promote flow on a real Prefect server, the real azure-ai-ml SDK against the emulator (the
registry's discovery and model routes, the workspace, a real endpoint server), a local dev endpoint. dev holds two
versions that passed their gate; version 1 is promoted and approved, version 2 is promoted and rejected.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.flow_runs import resume_flow_run

from azureml_emulator.process import EmulatorProcess
from flows.promote import promote
from infra import environments
from infra.azureml import AzureMLSharedRegistry
from infra.errors import ConfigError
from infra.factory import open_backend, open_shared_registry
from infra.local import LocalBackend
from infra.local.registry import LocalRegistry
from infra.settings import load_settings
from tasks.deploy import expected_results
from tests.support.approvals import paused_deploy_runs
from tests.support.emulator import join_emulator
from tests.support.helpers import MODEL, SMOKE, free_port

REGISTRY = "mlops-shared"
FILE = """\
[dev]
MLOPS_BACKEND = "local"
MLOPS_HOME = "{dev}"
MLOPS_ENDPOINT_PORT = {dev_port}

[prod]
approval = true

[nowhere]
MLOPS_HOME = "{prod}"
MLOPS_AZUREML_WORKSPACE_NAME = "no-such-workspace"
"""


def _answer_when_paused(answer: dict[str, Any], timeout: float = 120) -> threading.Thread:
    """A reviewer in another thread: resumes the paused deploy run with `answer`."""

    def wait_and_answer() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            paused = paused_deploy_runs()
            if paused:
                resume_flow_run(paused[0].id, run_input=answer)
                return
            time.sleep(0.3)

    thread = threading.Thread(target=wait_and_answer, daemon=True)
    thread.start()
    return thread


def _score(environment: str) -> list[float]:
    with environments.using(environment):
        settings = load_settings()
        answer = open_backend(settings).endpoints.invoke(settings.endpoint_name, SMOKE)
    assert answer.status == 200, answer.body
    result: list[float] = json.loads(answer.body)["result"]
    return result


def _dev_answers() -> list[float]:
    """What dev's champion answers the smoke request with: its bundle's own score.py on its files (what the deploy
    flow's smoke test expects of any deployment of it), without starting a dev endpoint."""
    with environments.using("dev"):
        backend = LocalBackend(load_settings())
        bundle = backend.bundles.build(backend.registry.get(MODEL, 1))
    return expected_results({"dev": bundle}, SMOKE)["dev"]


def _dev(seeded: Path, home: Path) -> None:
    """dev's registry: the seeded versions 1 and 2 (alpha 0.4 and 0.1) with the gate's passing decision recorded,
    as train-register records it; version 1 is the champion."""
    template = LocalRegistry(seeded / "registry.db")
    backend = LocalBackend(load_settings(home=home))
    for version in (1, 2):
        seeded_version = template.get(MODEL, version)
        properties = {**seeded_version.properties, "decision": f"promoted: seeded version {version}"}
        backend.registry.register(
            MODEL,
            Path(seeded_version.path),
            tags={**seeded_version.tags, "run_id": f"seed-{version}"},
            properties=properties,
        )
    backend.registry.set_alias(MODEL, "champion", 1)


@pytest.fixture(scope="module")
def story(
    prefect_server: str,
    seeded_template: Path,
    emulator_server: EmulatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("promote-azureml")
    file = root / "environments.toml"
    file.write_text(FILE.format(prod=root / "prod", dev=root / "dev", dev_port=free_port()))
    found: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        emulated = join_emulator(emulator_server, root / "prod", patch)  # prod: the process environment's workspace
        emulated.process.registries = [f"{emulated.subscription}/mlops-RG/{REGISTRY}"]
        emulated.process.start()  # the server runs: this adds the registry
        patch.setenv("MLOPS_AZUREML_REGISTRY_NAME", REGISTRY)
        patch.setenv("MLOPS_ENVIRONMENTS_FILE", str(file))
        patch.delenv("MLOPS_ENV", raising=False)
        _dev(seeded_template, root / "dev")
        with environments.using("prod"):
            shared = open_shared_registry(load_settings())
        found["shared"] = shared
        with pytest.raises(ConfigError) as unreachable:
            promote(to="nowhere")
        found["unreachable"] = str(unreachable.value)
        found["shared_after_unreachable"] = shared.list(MODEL)
        found["dev_scores"] = _dev_answers()
        reviewer = _answer_when_paused({"approve": True, "reviewer": "carol", "comment": "ship it"})
        found["approved"] = promote(to="prod")
        reviewer.join(timeout=5)
        found["prod_scores"] = _score("prod")
        reviewer = _answer_when_paused({"approve": False, "reviewer": "dave", "comment": "not now"})
        found["rejected"] = promote(to="prod", version=2)
        reviewer.join(timeout=5)
        found["prod_scores_after_rejection"] = _score("prod")
        with environments.using("prod"):
            prod = open_backend(load_settings())
            found["prod_endpoint"] = prod.endpoints.get(prod.settings.endpoint_name)
            found["prod_champion"] = prod.registry.get_alias(MODEL, "champion")
        found["deployments"] = emulated.requests("PUT", "/deployments/")
        found["bodies"] = [
            r["body"]
            for r in emulated.process.requests(bodies=True)[emulated.since :]
            if r["method"] == "PUT" and "/deployments/" in r["path"]
        ]
        yield found


def test_an_unreachable_target_fails_before_anything_is_shared(story: dict[str, Any]) -> None:
    assert "no-such-workspace" in story["unreachable"]
    assert "does not exist" in story["unreachable"]
    assert story["shared_after_unreachable"] == []


def test_an_approved_promotion_serves_devs_values_in_prod_from_the_registry(story: dict[str, Any]) -> None:
    result = story["approved"]
    assert result.crowned
    assert result.shared_created
    assert result.target_created
    assert isinstance(story["shared"], AzureMLSharedRegistry)
    shared = story["shared"].get(MODEL, result.shared.version)
    assert shared.content_hash == result.source.content_hash == result.target.content_hash
    lineage = json.loads(shared.properties["lineage"])
    assert lineage["source_environment"] == "dev"
    assert lineage["training_run"] == "seed-1"
    reference = f"azureml://registries/{REGISTRY}/models/{MODEL}/versions/{result.shared.version}"
    assert result.target.properties["shared_model"] == reference
    assert any(body["properties"]["model"] == reference for body in story["bodies"] if body)
    assert story["prod_scores"] == story["dev_scores"]
    assert len(story["prod_scores"]) == 2


def test_a_rejected_promotion_leaves_prods_previous_version_serving_at_100_percent(story: dict[str, Any]) -> None:
    result = story["rejected"]
    assert not result.crowned
    assert result.deployment.note.startswith("rejected by dave: not now")
    endpoint = story["prod_endpoint"]
    serving = {d.model: d.traffic for d in endpoint.deployments.values()}
    assert serving == {story["approved"].target.id: 100}
    assert story["prod_champion"].version == story["approved"].target.version
    assert story["prod_scores_after_rejection"] == story["dev_scores"]
    assert len(story["shared"].list(MODEL)) == 2  # version 2 is in the registry: shared, not deployed

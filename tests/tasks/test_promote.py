"""The promote tasks on the fake backend: which versions may be promoted, the lineage recorded, the champion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.events import Event

from infra.errors import GateError
from infra.settings import Settings
from tasks.evaluate import CHAMPION_ALIAS
from tasks.promote import crown_in_target, lineage, source_version
from tests.support.fakes import FakeBackend

NAME = "m.pkl"
PASSED = "promoted: candidate mse 1 vs champion (version 1) 2; lower is better and it improves by 1"


def _register(fake: FakeBackend, tmp_path: Path, content: str, properties: dict[str, str]) -> int:
    folder = tmp_path / f"model-{content}"
    folder.mkdir()
    (folder / "model.pkl").write_text(content)
    tags = {"run_id": f"train-{content}", "data_sha256": "d" * 64, "code_sha256": "c" * 64}
    return fake.registry.register(NAME, folder, tags=tags, properties=properties).model.version


def test_the_champion_that_passed_its_gate_is_chosen(fake: FakeBackend, tmp_path: Path) -> None:
    version = _register(fake, tmp_path, "a", {"decision": PASSED, "metrics": '{"mse": 1.0}'})
    fake.registry.set_alias(NAME, CHAMPION_ALIAS, version)
    assert source_version(fake, NAME, None, "dev").version == version


@pytest.mark.parametrize(
    ("decision", "said"),
    [
        ("forced: registered although the gate said no (not promoted: ...)", "its gate said: forced"),
        ("", "it has no gate decision recorded"),
    ],
)
def test_a_version_that_did_not_pass_its_gate_is_refused(
    fake: FakeBackend, tmp_path: Path, decision: str, said: str
) -> None:
    version = _register(fake, tmp_path, "b", {"decision": decision} if decision else {})
    with pytest.raises(GateError, match=rf"{NAME}:{version} of environment 'dev' did not pass its gate, {said}"):
        source_version(fake, NAME, version, "dev")


def test_an_archived_version_is_refused(fake: FakeBackend, tmp_path: Path) -> None:
    version = _register(fake, tmp_path, "c", {"decision": PASSED})
    fake.registry.archive(NAME, version)
    with pytest.raises(GateError, match=rf"{NAME}:{version} of environment 'dev' is archived"):
        source_version(fake, NAME, version, "dev")


def test_no_champion_says_so(fake: FakeBackend) -> None:
    with pytest.raises(GateError, match="environment 'dev' has no champion"):
        source_version(fake, NAME, None, "dev")


def test_lineage_names_the_run_the_hashes_the_metrics_and_the_decision(
    fake: FakeBackend, tmp_path: Path, settings: Settings
) -> None:
    version = _register(fake, tmp_path, "d", {"decision": PASSED, "metrics": '{"mse": 1.0}'})
    model = fake.registry.get(NAME, version)
    found = lineage(model, "dev", settings)
    assert found == {
        "source_environment": "dev",
        "source_workspace": str(settings.home),
        "source_model_id": model.id,
        "source_content_hash": model.content_hash,
        "training_run": "train-d",
        "data_sha256": "d" * 64,
        "code_sha256": "c" * 64,
        "metrics": '{"mse": 1.0}',
        "decision": PASSED,
    }
    onwards = model.model_copy(update={"properties": {**model.properties, "lineage": json.dumps(found)}})
    assert lineage(onwards, "staging", settings) == {**found, "promoted_through": "staging"}


def test_crowning_emits_promoted_once(fake: FakeBackend, tmp_path: Path, events: list[Event]) -> None:
    model = fake.registry.get(NAME, _register(fake, tmp_path, "e", {"decision": PASSED}))
    assert crown_in_target.fn(fake, model, "dev", "staging") is True
    assert crown_in_target.fn(fake, model, "dev", "staging") is False
    assert fake.registry.aliases(NAME)[CHAMPION_ALIAS] == model.version
    assert [(e.event, e.payload["from"], e.payload["to"]) for e in events] == [
        ("mlops.model.promoted", "dev", "staging")
    ]


def test_an_environment_that_cannot_be_read_is_a_row_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The view published after a promotion reads every environment; one it cannot read (here an Azure ML workspace
    with no subscription set) is a row saying why, and the others are still shown."""
    from tasks.environments_view import every_environment, markdown_table

    file = tmp_path / "environments.toml"
    file.write_text(
        f'[dev]\nMLOPS_HOME = "{tmp_path / "dev"}"\n\n'
        f'[broken]\nMLOPS_HOME = "{tmp_path / "broken"}"\nMLOPS_BACKEND = "azureml"\n'
    )
    monkeypatch.setenv("MLOPS_ENVIRONMENTS_FILE", str(file))
    for variable in ("AZURE_SUBSCRIPTION_ID", "MLOPS_AZUREML_SUBSCRIPTION_ID", "MLOPS_ENV"):
        monkeypatch.delenv(variable, raising=False)
    rows = every_environment()
    assert list(rows) == ["dev", "broken"]
    assert rows["dev"]["champion"] is None
    assert rows["broken"]["promoted_by"].startswith("not read: ")
    assert "| broken | — | — | — | — | not read: " in markdown_table(rows)

"""Environments: `environments.toml` parsed, its values over `.env` and the process environment, `--env` on every
command, and a clear error for an unknown name, a malformed file or a key that is not a setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import environments
from infra.errors import ConfigError
from infra.settings import checkout_root, load_settings
from tests.support.cli import run_mlops

FILE = """\
[shared]
registry = "shared-registry"

[dev]
MLOPS_ENDPOINT_PORT = 5101

[staging]
MLOPS_HOME = "{home}"
MLOPS_ENDPOINT_PORT = 5102

[prod]
MLOPS_ENDPOINT_PORT = 5103
approval = true
"""


@pytest.fixture
def declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "environments.toml"
    path.write_text(FILE.format(home=tmp_path / "staging-home"))
    monkeypatch.setenv("MLOPS_ENVIRONMENTS_FILE", str(path))
    monkeypatch.delenv("MLOPS_ENV", raising=False)
    monkeypatch.delenv("MLOPS_SHARED_REGISTRY", raising=False)
    return path


def test_the_file_names_environments_their_approval_and_the_shared_registry(declared: Path) -> None:
    found = environments.load_environments()
    assert found.names() == ["dev", "staging", "prod"]
    assert found.get("prod").approval
    assert not found.get("staging").approval
    assert found.shared_registry == declared.parent / "shared-registry"


def test_an_environment_wins_over_the_process_environment(
    declared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "from-the-environment"))
    monkeypatch.setenv("MLOPS_ENDPOINT_PORT", "4999")
    assert load_settings().endpoint_port == 5101  # dev's own value
    with environments.using("staging"):
        settings = load_settings()
    assert (settings.home, settings.endpoint_port) == (tmp_path / "staging-home", 5102)
    monkeypatch.setenv("MLOPS_ENV", "prod")
    assert load_settings().endpoint_port == 5103
    assert load_settings().home == tmp_path / "from-the-environment"  # prod does not set it


def test_config_show_names_the_environment_as_the_source(declared: Path, tmp_path: Path) -> None:
    for argv in (["config", "show", "--env", "staging", "--json"], ["--env=staging", "config", "show", "--json"]):
        result = run_mlops(*argv)
        assert result.returncode == 0, result.stderr
        rows = {row["variable"]: row for row in json.loads(result.stdout)["settings"]}
        assert rows["MLOPS_HOME"]["value"] == str(tmp_path / "staging-home")
        assert rows["MLOPS_HOME"]["source"] == "environments.toml (staging)"
        assert rows["MLOPS_ENDPOINT_PORT"]["source"] == "environments.toml (staging)"
    rows = {row["variable"]: row for row in json.loads(run_mlops("config", "show", "--json").stdout)["settings"]}
    assert rows["MLOPS_ENDPOINT_PORT"]["source"] == "environments.toml (dev)"


def test_an_unknown_environment_is_one_clear_error_listing_the_known_ones(declared: Path) -> None:
    result = run_mlops("status", "--env", "qa")
    assert result.returncode == 2
    assert result.stderr.strip() == f"mlops: unknown environment 'qa' in {declared}; known: dev, staging, prod"
    result = run_mlops("config", "show", env={"MLOPS_ENV": "qa"})
    assert result.returncode == 2
    assert "unknown environment 'qa'" in result.stderr


def test_a_malformed_file_is_an_error_naming_the_file_and_the_line(declared: Path) -> None:
    declared.write_text('[staging]\nMLOPS_HOME = "x"\nMLOPS_ENDPOINT_PORT = = 5\n')
    result = run_mlops("config", "show")
    assert result.returncode == 2
    assert str(declared) in result.stderr
    assert "line 3" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_key_that_is_not_a_setting_is_named(declared: Path) -> None:
    declared.write_text("[staging]\nMLOPS_HOMME = 'x'\n")
    with environments.using("staging"), pytest.raises(ConfigError, match=r"\[staging\] MLOPS_HOMME is not a setting"):
        load_settings()


def test_no_file_is_todays_behaviour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLOPS_ENVIRONMENTS_FILE", "MLOPS_ENV", "MLOPS_SHARED_REGISTRY", "MLOPS_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(environments, "checkout_root", lambda: tmp_path)  # a checkout without environments.toml
    found = environments.load_environments()
    assert (found.names(), found.file, found.get("dev").values) == (["dev"], None, {})
    assert found.shared_registry == tmp_path / ".mlops-shared"
    assert load_settings() == load_settings(home=checkout_root() / ".mlops")
    result = run_mlops("config", "show", "--json")
    rows = {row["variable"]: row for row in json.loads(result.stdout)["settings"]}
    assert rows["MLOPS_HOME"]["source"] == "default"
    assert run_mlops("config", "show", "--env", "staging").returncode == 2


def test_the_platform_passes_its_environment_to_the_flow_runs_it_starts(declared: Path) -> None:
    from deployments.platform import Platform

    with environments.using("staging"):
        settings = load_settings()
        env = Platform(settings).env()
    assert (env["MLOPS_ENV"], env["MLOPS_HOME"]) == ("staging", str(settings.home))
    assert Platform(load_settings()).env()["MLOPS_ENV"] == "dev"


CHAIN = """\
[staging]
MLOPS_HOME = "{home}/staging"
promote_from = "dev"
promote_on = "deployed"

[qa]
MLOPS_HOME = "{home}/qa"
promote_from = "dev"

[prod]
MLOPS_HOME = "{home}/prod"
approval = true
promote_from = "staging"
promote_on = "schedule"
"""


def test_the_chain_says_what_the_platform_promotes_and_when(declared: Path, tmp_path: Path) -> None:
    from tasks._events import chain_label, promotion_label

    declared.write_text(CHAIN.format(home=tmp_path))
    found = environments.load_environments()
    assert [(e.name, e.promote_from, e.promote_on) for e in found.known.values()] == [
        ("dev", None, None),
        ("staging", "dev", "deployed"),
        ("qa", "dev", None),  # promoted from dev by hand only
        ("prod", "staging", "schedule"),
    ]
    assert [e.name for e in found.promoted_on("deployed", "dev")] == ["staging"]
    assert found.promoted_on("deployed", "staging") == []
    assert [e.name for e in found.promoted_on("schedule")] == ["prod"]
    with environments.using("staging"):
        assert load_settings().home == tmp_path / "staging"  # the chain's keys are not settings
        assert promotion_label() == {}  # nothing is promoted from staging on a deploy
        assert chain_label()["mlops.environment"] == "staging"
    assert promotion_label() == {"mlops.promote_to": "staging"}  # dev's deploy events start auto-promote
    assert chain_label() == {"mlops.chain": "true", "mlops.environment": "dev"}


def test_no_file_labels_no_deploy_event_for_promotion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks._events import promotion_label

    for name in ("MLOPS_ENVIRONMENTS_FILE", "MLOPS_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(environments, "checkout_root", lambda: tmp_path)
    assert promotion_label() == {}  # so the auto-promote/on-deployed trigger starts nothing


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (
            'promote_from = "dev"\npromote_on = "nightly"',
            "[staging] promote_on must be one of deployed, schedule, not 'nightly'",
        ),
        ('promote_from = "qa"', "[staging] promote_from = 'qa' is not an environment; known: staging, dev"),
        ('promote_from = "staging"', "[staging] promote_from must name another environment, not 'staging'"),
        ('promote_on = "deployed"', "[staging] promote_on = 'deployed' needs promote_from (the source environment)"),
    ],
)
def test_a_wrong_chain_is_one_error_naming_the_key(declared: Path, table: str, error: str) -> None:
    declared.write_text(f"[staging]\n{table}\n")
    with pytest.raises(ConfigError) as raised:
        environments.load_environments()
    assert str(raised.value) == f"{declared}: {error}"

"""The `mlops` grammar: noun then verb for groups, old spellings as aliases (one deprecation line each),
one meaning per flag, `mlops --version`, `--json` on the commands that report state, and a `main` that
returns its exit code (no summary at exit, no dispatch on a function's module).

The dispatch tests replace the commands' functions with a recorder, so nothing starts: they check
which function a spelling reaches and with which arguments."""

from __future__ import annotations

import argparse
import atexit
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli import emulator, endpoint, main, model, pipeline, platform, telemetry, workspace
from cli.command import Command
from tests.support.cli import run_mlops

ROOT = Path(__file__).resolve().parents[2]

# Every function a command line reaches, by the module that registers it.
TARGETS: dict[Any, list[str]] = {
    pipeline: ["run", "train", "deploy", "batch_score", "monitor", "approve", "data_arrived"],
    platform: ["up", "down", "status", "platform_status"],
    workspace: ["provision", "cleanup"],
    endpoint: ["status", "start", "stop"],
    emulator: ["up", "down", "status"],
    model: ["init", "check_model", "list_models"],
    telemetry: ["trace", "logs"],
}


class Recorder:
    """Stands in for every command function: records which one ran, with which arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, argparse.Namespace]] = []

    def stand_in(self, name: str) -> Callable[..., int]:
        def run(*arguments: Any) -> int:
            self.calls.append((name, arguments[-1]))  # (settings, args) or (args,)
            return 0

        return run

    def last(self) -> tuple[str, argparse.Namespace]:
        assert len(self.calls) == 1, self.calls
        return self.calls.pop()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Recorder:
    recording = Recorder()
    for module, names in TARGETS.items():
        for name in names:
            monkeypatch.setattr(module, name, recording.stand_in(f"{module.__name__}.{name}"))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # no temporary server: nothing is called
    return recording


def _dispatch(recorder: Recorder, *argv: str) -> tuple[str, argparse.Namespace, list[str]]:
    result = run_mlops(*argv)
    assert result.returncode == 0, result.stderr
    name, args = recorder.last()
    return name, args, result.stderr.splitlines()


ALIASES = [
    (["up"], ["platform", "up"]),
    (["down"], ["platform", "down"]),
    (["provision"], ["workspace", "provision"]),
    (["cleanup"], ["workspace", "cleanup"]),
    (["init", "churn"], ["model", "init", "churn"]),
    (["check-model"], ["model", "check"]),
]


@pytest.mark.parametrize(("old", "new"), ALIASES, ids=[" ".join(new) for _, new in ALIASES])
def test_an_old_spelling_reaches_the_new_command_with_one_deprecation_line(
    recorder: Recorder, old: list[str], new: list[str]
) -> None:
    new_target, new_args, new_err = _dispatch(recorder, *new)
    old_target, old_args, old_err = _dispatch(recorder, *old)
    assert old_target == new_target
    assert old_args.command is new_args.command or old_args.command == new_args.command
    assert new_err == []
    new_words = " ".join(w for w in new if w != "churn")
    old_words = " ".join(w for w in old if w != "churn")
    assert old_err == [f"`mlops {old_words}` is deprecated; use `mlops {new_words}`"]


FLAGS = [  # the command line without the flag, the flag's old and new spelling, its value, where it lands
    (["train"], ["--force"], ["--skip-gate"], "skip_gate", True),
    (["run"], ["--force"], ["--skip-gate"], "skip_gate", True),
    (["model", "init", "churn"], ["--force"], ["--overwrite"], "overwrite", True),
    (["init", "churn"], ["--force"], ["--overwrite"], "overwrite", True),
    (["workspace", "cleanup"], ["--keep", "3"], ["--keep-versions", "3"], "keep_versions", 3),
    (["workspace", "cleanup"], ["--delete-everything", "--yes"], ["--teardown", "--yes"], "teardown", True),
    (["model", "check"], ["--keep"], ["--keep-workdir"], "keep_workdir", True),
    (["check-model"], ["--keep"], ["--keep-workdir"], "keep_workdir", True),
    (["deploy"], ["--version", "2"], ["--model-version", "2"], "model_version", 2),
    (["batch-score"], ["--version", "2"], ["--model-version", "2"], "model_version", 2),
]


@pytest.mark.parametrize(
    ("command", "old", "new", "dest", "value"), FLAGS, ids=[" ".join(c + n) for c, _, n, _, _ in FLAGS]
)
def test_an_old_flag_spelling_sets_the_new_flag_with_one_deprecation_line(
    recorder: Recorder, command: list[str], old: list[str], new: list[str], dest: str, value: object
) -> None:
    default_target, default_args, _ = _dispatch(recorder, *command)
    new_target, new_args, new_err = _dispatch(recorder, *command, *new)
    old_target, old_args, old_err = _dispatch(recorder, *command, *old)
    assert old_target == new_target == default_target
    assert getattr(default_args, dest) != value  # the flag changes something
    assert getattr(new_args, dest) == getattr(old_args, dest) == value
    typed = " ".join(word for word in command if word != "churn")
    assert new_err == [line for line in old_err if line.startswith("`")]  # an old command's own line, if any
    flag_lines = [line for line in old_err if not line.startswith("`")]
    assert flag_lines == [f"mlops {typed}: {old[0]} is deprecated; use {new[0]}"]


def test_an_old_command_with_an_old_flag_says_each_once(recorder: Recorder) -> None:
    _, args, err = _dispatch(recorder, "cleanup", "--keep", "2", "--keep", "3")
    assert args.keep_versions == 3
    assert err == [
        "mlops cleanup: --keep is deprecated; use --keep-versions",
        "`mlops cleanup` is deprecated; use `mlops workspace cleanup`",
    ]


def test_an_error_names_the_command_as_it_was_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(settings: object, args: object) -> int:
        raise ValueError("refused")

    monkeypatch.setattr(workspace, "provision", refuse)
    env = {"MLOPS_HOME": str(tmp_path / "ws"), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    new = run_mlops("workspace", "provision", env=env)
    old = run_mlops("provision", env=env)
    assert (new.returncode, old.returncode) == (2, 2)
    assert new.stderr.splitlines() == ["mlops workspace provision: refused"]
    assert old.stderr.splitlines() == [
        "`mlops provision` is deprecated; use `mlops workspace provision`",
        "mlops provision: refused",
    ]


def test_a_flag_means_one_thing_everywhere() -> None:
    """No command has --force, --keep or --version among its listed flags (the old spellings are unlisted)."""
    for name, parser in _leaves(main._parser()).items():
        listed = {o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings}
        assert not {"--force", "--keep", "--version"} & listed, name


def test_the_version_option_prints_the_projects_version(capsys: pytest.CaptureFixture[str]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert main.main(["--version"]) == 0
    assert capsys.readouterr().out == f"mlops {version}\n"
    assert run_mlops("--version").stdout == f"mlops {version}\n"


def test_groups_are_noun_then_verb_and_pipeline_verbs_stay_on_top() -> None:
    commands = {
        parser_name: parser.get_default("command").name for parser_name, parser in _leaves(main._parser()).items()
    }
    new = {name for name, command in commands.items() if name == command}
    assert {
        "run", "train", "deploy", "batch-score", "monitor", "approve", "data-arrived", "labels", "labels-arrived",
        "status", "trace", "logs",
        "platform up", "platform down", "platform status", "workspace provision", "workspace cleanup",
        "endpoint status", "endpoint start", "endpoint stop", "endpoint logs", "emulator up", "emulator down", "emulator status",
        "model init", "model check", "model list",
    } <= new  # fmt: skip
    aliases = {name: command for name, command in commands.items() if name != command}
    assert aliases == {
        "up": "platform up", "down": "platform down", "provision": "workspace provision",
        "cleanup": "workspace cleanup", "init": "model init", "check-model": "model check",
    }  # fmt: skip


def test_what_runs_flows_and_what_needs_settings_is_said_by_each_command() -> None:
    commands = {parser.get_default("command") for parser in _leaves(main._parser()).values()}
    assert all(isinstance(command, Command) for command in commands)
    assert {c.name for c in commands if c.runs_flows} == {
        "run", "train", "deploy", "batch-score", "monitor", "labels", "promote", "workspace provision",
        "workspace cleanup",
    }  # fmt: skip
    assert {c.name for c in commands if not c.needs_settings} == {"model init", "model check"}


REPORTING = [
    "status", "platform status", "endpoint status", "endpoint start", "endpoint stop", "endpoint logs", "emulator up",
    "emulator down", "emulator status", "model list", "trace", "logs",
]  # fmt: skip


def test_every_command_that_reports_state_accepts_json() -> None:
    leaves = _leaves(main._parser())
    for name in REPORTING:
        options = {o for action in leaves[name]._actions for o in action.option_strings}
        assert "--json" in options, name


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--json"],
        ["platform", "status", "--json"],
        ["endpoint", "status", "--json"],
        ["endpoint", "stop", "--json"],
        ["endpoint", "logs", "--json"],
        ["logs", "--json"],
        ["emulator", "status", "--json"],
        ["emulator", "down", "--json"],
        ["model", "list", "--json"],
    ],
    ids=" ".join,
)
def test_a_state_report_in_json_is_json(argv: list[str], tmp_path: Path) -> None:
    """Run for real in an empty workspace (nothing runs, so nothing starts); the endpoint has a request log."""
    home = tmp_path / "ws"
    log = home / "endpoints" / "diabetes-endpoint" / "server.log"
    log.parent.mkdir(parents=True)
    request = {"time": 1.0, "request_id": "r1", "path": "/score", "status": 200, "latency_ms": 1.5}
    log.write_text("starting\n" + json.dumps(request) + "\n")
    result = run_mlops(*argv, env={"MLOPS_HOME": str(home), "PREFECT_API_URL": None})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    if argv[0] == "logs" or argv[1] == "logs":
        assert report == [request]


def test_trace_and_logs_of_a_run_print_json(tmp_path: Path) -> None:
    """Spans of a flow run and a request under it, as the tracing's `files` destination writes them."""
    spans = tmp_path / "ws" / "telemetry"
    spans.mkdir(parents=True)
    trace_id = "1" * 32
    lines = [
        _span("flow-run", trace_id, "a" * 16, None, {"prefect.run.id": "run-1", "mlops.flow": "deploy"}),
        _span("POST /score", trace_id, "b" * 16, "a" * 16, {"mlops.request_id": "req-1"}),
    ]
    (spans / "spans-test-1.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    env = {"MLOPS_HOME": str(tmp_path / "ws")}
    traced = run_mlops("trace", "req-1", "--json", env=env)
    logged = run_mlops("logs", "run-1", "--json", env=env)
    assert traced.returncode == 0, traced.stderr
    assert [span["name"] for span in json.loads(traced.stdout)] == ["flow-run", "POST /score"]
    assert logged.returncode == 0, logged.stderr
    assert [r["request_id"] for r in json.loads(logged.stdout)] == ["req-1"]


def _span(name: str, trace_id: str, span_id: str, parent: str | None, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": parent,
        "start": 1.0,
        "end": 2.0,
        "status": "OK",
        "service": "mlops",
        "attributes": attributes,
    }


def test_main_returns_the_exit_code_and_registers_nothing_at_exit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registered: list[object] = []
    monkeypatch.setattr(atexit, "register", lambda *a, **k: registered.append(a))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "ws"))
    assert main.main(["model", "list"]) == 0
    assert main.main(["no-such-command"]) == 2
    assert main.main(["emulator", "status", "--json"]) == 0
    capsys.readouterr()
    assert registered == []


def test_the_cli_neither_uses_atexit_nor_dispatches_on_a_module() -> None:
    for source in sorted((ROOT / "cli").glob("*.py")):
        text = source.read_text()
        assert not re.search(r"\batexit\b", text), source
        assert "__module__" not in text, source


def _leaves(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by how it is typed ("platform up", "up", ...)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                prefix = sub.prog.removeprefix("mlops ")
                if sub.get_default("command") is not None:
                    found[prefix] = sub
                else:
                    found |= _leaves(sub)
    return found

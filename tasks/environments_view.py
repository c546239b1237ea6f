"""Which version serves where: per environment, the version its endpoint serves, its champion, since when, promoted
from where and by whom. `mlops status` shows it; the promote flow records each promotion (`promotions.jsonl` in the
target's MLOPS_HOME) and publishes every environment side by side as the `environments` markdown artifact."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_client, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import deployment, flow_run

from infra import environments
from infra.backend import Backend, ModelVersion
from infra.errors import MLOpsError
from infra.factory import open_backend
from infra.settings import Settings, load_settings
from tasks.evaluate import CHAMPION_ALIAS

PROMOTIONS_FILE = "promotions.jsonl"
ARTIFACT_KEY = "environments"


def placement(settings: Settings, backend: Backend) -> dict[str, Any]:
    """One environment's row: the version its endpoint serves (the live deployment's), its champion, since when
    the champion is (its promotion's time, or its registration's when trained there), where it was promoted from
    and by whom (None and "trained here" for a version trained in this environment)."""
    name = settings.model_name
    endpoint = backend.endpoints.get(settings.endpoint_name)
    live = endpoint.live if endpoint is not None else None
    champion = backend.registry.get_alias(name, CHAMPION_ALIAS)
    row: dict[str, Any] = {
        "serving": endpoint.deployments[live].model if endpoint is not None and live else None,
        "champion": champion.id if champion else None,
        "since": None,
        "promoted_from": None,
        "promoted_by": None,
    }
    if champion is None:
        return row
    promotion = last_promotion(settings.home, champion)
    if promotion is None:
        return {**row, "since": champion.created_time.isoformat(), "promoted_by": "trained here"}
    return {**row, "since": promotion["at"], "promoted_from": promotion["from"], "promoted_by": promotion["by"]}


def last_promotion(home: Path, champion: ModelVersion) -> dict[str, str] | None:
    """The newest recorded promotion that made `champion` the champion of the environment in `home`."""
    path = home / PROMOTIONS_FILE
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    mine = [record for record in records if record.get("model") == champion.id]
    return mine[-1] if mine else None


def every_environment() -> dict[str, dict[str, Any]]:
    """`placement` of each environment of environments.toml, in the file's order. An environment that cannot be read
    (a workspace that does not exist, a service down) is a row saying why, not the end of the view: the view is
    published after a promotion that already happened."""
    rows = {}
    for name in environments.load_environments().names():
        try:
            with environments.using(name):
                settings = load_settings()
                rows[name] = placement(settings, open_backend(settings))
        except MLOpsError as exc:
            rows[name] = {**UNREAD, "promoted_by": f"not read: {first_line(str(exc))}"}
    return rows


UNREAD: dict[str, Any] = dict.fromkeys(("serving", "champion", "since", "promoted_from", "promoted_by"))


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else text


def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    """The environments side by side, as the `environments` artifact shows them."""
    lines = [
        "# Which version serves where",
        "",
        "| environment | serving | champion | since | promoted from | by |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        cells = [row["serving"], row["champion"], row["since"], row["promoted_from"], row["promoted_by"]]
        lines.append(f"| {name} | " + " | ".join(str(cell) if cell else "—" for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def promoted_by() -> str:
    """Who promoted: the deployment that started this flow run or its parent (`auto-promote/on-deployed`, ...),
    else the user who ran the command."""
    deployment_id = deployment.get_id() or flow_run.get_parent_deployment_id()
    if deployment_id:
        with get_client(sync_client=True) as client:
            found = client.read_deployment(deployment_id)
            flow = client.read_flow(found.flow_id)
        return f"deployment {flow.name}/{found.name}"
    try:
        return f"{getpass.getuser()} (mlops promote)"
    except (KeyError, OSError):  # no user name in this environment
        return "an unnamed user (mlops promote)"


@task(name="record-promotion", cache_policy=NO_CACHE)
def record_promotion(home: Path, model: ModelVersion, source: str) -> dict[str, str]:
    """Append the promotion that made `model` the target's champion to the target's `promotions.jsonl`."""
    record = {"model": model.id, "from": source, "at": datetime.now(UTC).isoformat(), "by": promoted_by()}
    with (home / PROMOTIONS_FILE).open("a") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")
    return record


@task(name="publish-environments", cache_policy=NO_CACHE)
def publish_environments() -> str:
    """Every environment side by side, as the `environments` markdown artifact of this run."""
    table = markdown_table(every_environment())
    create_markdown_artifact(markdown=table, key=ARTIFACT_KEY, description="which version serves where")
    get_run_logger().info("published the environments side by side (artifact %s)", ARTIFACT_KEY)
    return table

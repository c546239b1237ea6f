"""The auto-promote flow: the platform's promotions along the chain environments.toml declares.

An environment with `promote_from = "dev"` and `promote_on = "deployed"` is promoted into each time dev deploys a
new version (`auto-promote/on-deployed`, triggered by `mlops.model.deployed`, whose event carries the targets in its
`mlops.promote_to` label: with no such environment the event has no label and the trigger starts nothing). One with
`promote_on = "schedule"` is promoted into, from its `promote_from`'s champion, on `auto-promote/scheduled`'s cron;
with none declared, that run completes saying so. The promotion itself is the `promote` flow: approval, lineage,
rollback and all.
"""

from __future__ import annotations

from typing import Literal

from prefect import get_run_logger

from flows._flow import flow
from flows.promote import PromoteResult, promote
from infra import environments
from infra.errors import GateError
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import annotate
from tasks.promote import source_version


@flow(name="auto-promote")
def auto_promote(
    when: Literal["deployed", "schedule"] = "schedule", source: str = "", version: int | None = None
) -> list[PromoteResult]:
    """Promote into every environment declared `promote_on = when` (and `promote_from = source`, when given).

    On "deployed", the version is the one `source` just deployed; on "schedule", each source's champion. A version
    the promote flow would refuse (its gate did not pass, it is archived) is not promoted: the run says why, in
    one warning line, and completes; a promotion that fails fails the run.
    """
    annotate({"mlops.flow": "auto-promote"})
    logger = get_run_logger()
    found = environments.load_environments()
    targets = found.promoted_on(when, source or None)
    if not targets:
        where = found.file or "environments.toml (no such file)"
        logger.info(
            "nothing to promote: no environment of %s declares promote_on = %r%s",
            where,
            when,
            f" with promote_from = {source!r}" if source else "",
        )
        return []
    results = []
    for target in targets:
        assert target.promote_from is not None  # promoted_on returns only environments that name their source
        chosen = version if when == "deployed" else None
        with environments.using(target.promote_from):
            settings = load_settings()
        try:
            source_version(open_backend(settings), settings.model_name, chosen, target.promote_from)
        except GateError as exc:
            logger.warning("not promoted to %r: %s", target.name, exc)
            continue
        results.append(promote(to=target.name, source=target.promote_from, version=chosen))
    return results

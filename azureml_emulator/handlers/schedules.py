"""Schedules (model monitors): stored and answered back as Azure ML keeps them, checked, never run."""

from __future__ import annotations

import re
from typing import Any

from azureml_emulator.core.arm import ONLINE_DEPLOYMENTS, PROVIDER, system_data
from azureml_emulator.core.context import Context, arm_id
from azureml_emulator.core.errors import ArmError
from azureml_emulator.core.operations import operation, public, read_or_delete
from azureml_emulator.core.routing import Answer, Handler, Routes
from azureml_emulator.core.store import now

SCHEDULES = "schedules"


def schedule(context: Context) -> Answer:
    """A schedule as Azure ML keeps it. A monitor's target deployment and its signals' data assets must exist;
    the schedule is stored and answered back, and is not run here (its Spark job is Azure ML's own)."""
    name, store = context.params["schedule"], context.emulator.store
    existing = store.get_asset(context.scope, SCHEDULES, name)
    answer = read_or_delete(
        context, existing, f"schedule {name!r}", lambda: store.delete_asset(context.scope, SCHEDULES, name)
    )
    if answer is not None:
        return answer
    request = context.json()
    properties = dict(request.get("properties") or {})
    action = properties.get("action") or {}
    if action.get("actionType") == "CreateMonitor" and properties.get("isEnabled", True):
        _check_monitor(context, action.get("monitorDefinition") or {})
    body = {
        "_emulator": {},
        "id": arm_id(context, "schedules", name),
        "name": name,
        "type": f"{PROVIDER}/workspaces/schedules",
        "systemData": system_data((existing or {}).get("systemData", {}).get("createdAt") or now(), now()),
        "properties": {**properties, "isEnabled": properties.get("isEnabled", True), "provisioningState": "Succeeded"},
    }
    store.put_asset(context.scope, SCHEDULES, name, "", body)
    # 201 for a new schedule and for one written again: Azure answered 201 to the update and to the disable (a PUT
    # of the schedule with isEnabled false) of an existing one (azure-sdk-assets, recordings/schedule/e2etests/
    # test_schedule.pyTestScheduletest_schedule_lifetime.json, x-ms-correlation-request-id eb633985-... and
    # ec9feff8-...; tests/infra/azureml/recordings.json `schedule_disable`).
    return 201, public(body), operation(context)


def _check_monitor(context: Context, definition: dict[str, Any]) -> None:
    """What an enabled monitor needs before its first run. The target deployment and every data asset must
    exist; and production data that is a `uri_folder` with no preprocessing component must be what the target
    deployment's data collector writes.

    The last rule is stricter than Azure's PUT, on purpose. Azure ML accepts such a schedule and then fails
    every scheduled run (each billed as a serverless Spark job): it reads a `uri_folder` without a
    `preprocessingComponentId` as Model Data Collector output (JSONL in date folders), and custom data needs a
    component that turns the data window into an MLTable. Source: Microsoft Learn, "Monitor performance of
    models deployed to production" (custom production data uses `pre_processing_component`), and the
    azureml-examples monitoring README ("remove the custom preprocessing component line only if your data is
    collected with MDC"). The emulator runs no schedule, so it refuses the configuration when it is written,
    where a test sees it. A disabled schedule never runs, so it is not checked (disabling one is a PUT of it).

    Long because: each rule above is a few lines, and they read best in the order the service applies them."""
    target = (definition.get("monitoringTarget") or {}).get("deploymentId") or ""
    found = re.search(r"/onlineEndpoints/([^/]+)/deployments/([^/]+)$", target)
    deployment_id = f"{found[1]}/{found[2]}" if found else ""
    deployment = context.emulator.store.get_asset(context.scope, ONLINE_DEPLOYMENTS, deployment_id) if found else None
    if deployment is None:
        raise ArmError(
            400, "BadArgument", f"the monitoring target {target!r} is not an online deployment of this workspace"
        )
    collector = ((deployment.get("properties") or {}).get("dataCollector") or {}).get("collections") or {}
    for signal_name, signal in (definition.get("signals") or {}).items():
        production = signal.get("productionData") or {}
        productions = production if isinstance(production, list) else [production]
        for data in productions:
            if str(data.get("jobInputType", "")).lower() != "uri_folder" or data.get("preprocessingComponentId"):
                continue
            context_name = data.get("dataContext") or "model_inputs"
            mode = str((collector.get(context_name) or {}).get("dataCollectionMode", "")).lower()
            if mode != "enabled":
                raise ArmError(
                    400,
                    "UserError",
                    f"signal {signal_name!r}: production data {data.get('uri')!r} is a uri_folder with no "
                    f"preprocessing component, which Azure ML reads as data collector output, but "
                    f"{deployment_id} collects no {context_name!r} (its dataCollector has no enabled "
                    f"{context_name!r} collection): Azure ML accepts this schedule and fails every run of it "
                    "(the emulator refuses it instead)",
                )
        for role in ("productionData", "referenceData"):
            data = signal.get(role) or {}
            uri = data.get("uri") or ""
            asset = re.search(r"/data/([^/]+)/versions/([^/]+)$", uri)
            if asset is None or context.emulator.store.get_asset(context.scope, "data", asset[1], asset[2]) is None:
                raise ArmError(
                    400,
                    "BadArgument",
                    f"signal {signal_name!r}: {role} {uri!r} is not a data asset version of this workspace",
                )


def schedules(context: Context) -> tuple[int, Any]:
    return 200, {"value": [public(b) for b in context.emulator.store.list_assets(context.scope, SCHEDULES)]}


def register(routes: Routes) -> None:
    table: list[tuple[str, str, Handler]] = [
        ("GET", "{WS}/schedules", schedules),
        *((m, "{WS}/schedules/(?P<schedule>[^/]+)", schedule) for m in ("GET", "PUT", "DELETE")),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)

"""One request: what it asks, the workspace it addresses, and the checks every ARM request passes; ids and paging."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from azureml_emulator.core.arm import PROVIDER
from azureml_emulator.core.emulator import Emulator
from azureml_emulator.core.errors import ArmError

# dates, with -preview or a registry's -dataplanepreview (azure/ai/ml/_utils/_registry_utils.py), and v1.0 forms
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-(dataplane)?preview)?|v?\d+\.\d+(\.\d+)?")
_PAGE = 100


@dataclass
class Context:
    """One request, with the workspace it addresses."""

    emulator: Emulator
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str]

    def check_request(self, *, anonymous: bool, api_version: bool = True) -> None:
        if anonymous:
            return
        version = self.query.get("api-version")
        if version is None and api_version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version is not None and not _API_VERSION.fullmatch(version):
            raise ArmError(400, "InvalidApiVersionParameter", f"The api-version '{version}' is invalid.")
        authorization = self.headers.get("authorization", "")
        if not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common"'},
            )
        if "ws" in self.params and self.emulator.store.workspace_created(self.scope) is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{PROVIDER}/workspaces/{self.params['ws']}' under resource group "
                f"'{self.params['rg']}' was not found.",
            )

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            document = json.loads(self.body)
        except ValueError as exc:
            raise ArmError(400, "UserError", f"the request body is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise ArmError(400, "UserError", "the request body must be a JSON object")
        return document

    @property
    def scope(self) -> str:
        return f"{self.params['sub']}/{self.params['rg']}/{self.params['ws']}"

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.params['sub']}/resourceGroups/{self.params['rg']}"
            f"/providers/{PROVIDER}/workspaces/{self.params['ws']}"
        )

    def long_uri(self, datastore: str, path: str) -> str:
        p = self.params
        return f"azureml://subscriptions/{p['sub']}/resourcegroups/{p['rg']}/workspaces/{p['ws']}/datastores/{datastore}/paths/{path}"


def arm_id(context: Context, *parts: str) -> str:
    """The ARM id of a resource of the request's workspace (`parts`: its type and name, and so on down)."""
    return "/".join([context.workspace_id, *parts])


def version_page(context: Context, versions: list[dict[str, Any]]) -> dict[str, Any]:
    """An asset's versions (newest first) as a list answer: `listViewType` (ActiveOnly by default, ArchivedOnly,
    All), `$orderBy` createdtime ascending reverses them, `$top` keeps the first ones; then `page`. The same for a
    workspace's assets and a registry's models."""
    view = context.query.get("listViewType", "ActiveOnly")
    if view == "ActiveOnly":
        versions = [v for v in versions if not v["properties"].get("isArchived")]
    elif view == "ArchivedOnly":
        versions = [v for v in versions if v["properties"].get("isArchived")]
    order = context.query.get("$orderBy", "")
    if order.lower().startswith("createdtime") and not order.lower().endswith("desc"):
        versions.reverse()
    if "$top" in context.query:
        versions = versions[: int(context.query["$top"])]
    return page(context, versions)


def page(context: Context, items: list[dict[str, Any]]) -> dict[str, Any]:
    """One page of a list, as ARM gives it: `value`, and a `nextLink` when more follow."""
    start = int(context.query.get("$skipToken") or 0)
    result: dict[str, Any] = {"value": items[start : start + _PAGE]}
    if start + _PAGE < len(items):
        query = "&".join(f"{k}={v}" for k, v in context.query.items() if k != "$skipToken")
        result["nextLink"] = f"{context.emulator.base_url}{context.path}?{query}&$skipToken={start + _PAGE}"
    return result

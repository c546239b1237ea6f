"""Shared access signatures of the emulator's storage account: minted for the datastore's `listSecrets`, a code
upload (`startPendingUpload`) and run history's log URLs, and checked by the blob service on every request.

Signed with the account key, as Azure Storage signs them (Microsoft Learn, "Create an account SAS" and "Create a
service SAS", string-to-sign of version 2020-12-06 and later). What a request may do follows the same pages:
`sp` letters against the operation, `ss`/`srt` (account SAS) or `sr` plus the canonical resource (service SAS)
against what it addresses, `st`..`se` against the clock. A refusal is `(status, code, message)` as Storage answers
it (Microsoft Learn, "Shared access signature error codes" and "Common REST API error codes").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from azureml_emulator.core.arm import STORAGE_ACCOUNT, STORAGE_KEY

SAS_VERSION = "2022-11-02"
_TIME = "%Y-%m-%dT%H:%M:%SZ"
Refusal = tuple[int, str, str]
_AUTHENTICATION = (
    "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly "
    "including the signature."
)


def _sign(text: str) -> str:
    digest = hmac.new(base64.b64decode(STORAGE_KEY), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _expiry(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).strftime(_TIME)


def _account_string(fields: dict[str, str]) -> str:
    keys = ("sp", "ss", "srt", "st", "se", "sip", "spr", "sv", "ses")
    return "\n".join([STORAGE_ACCOUNT, *(fields.get(key, "") for key in keys)]) + "\n"


def _service_string(fields: dict[str, str], container: str, blob: str) -> str:
    resource = f"/blob/{STORAGE_ACCOUNT}/{container}" + (f"/{blob}" if fields.get("sr") == "b" else "")
    keys = ("sp", "st", "se", "", "si", "sip", "spr", "sv", "sr", "snapshot", "ses")
    values = [resource if key == "" else fields.get(key, "") for key in keys]
    return "\n".join([*values, *(fields.get(key, "") for key in ("rscc", "rscd", "rsce", "rscl", "rsct"))])


def _query(fields: dict[str, str]) -> str:
    return "&".join(f"{key}={quote(value, safe='')}" for key, value in fields.items())


def account_sas(*, hours: float, permissions: str = "rcuwdl") -> str:
    """An account SAS for blobs and files, containers and objects, as `listSecrets` answers an expirable secret
    (its fields as recorded, `?sv=..&sig=..&se=..&srt=co&ss=bf&sp=rcuwdl`: dataset/e2etests/test_data.py
    TestDatatest_create_uri_file.json at 0f205ad, entry 2; the values are sanitized there, these are ours)."""
    fields = {"sv": SAS_VERSION, "se": _expiry(hours), "srt": "co", "ss": "bf", "sp": permissions}
    signature = _sign(_account_string(fields))
    return "?" + _query({"sv": fields["sv"], "sig": signature, **{k: v for k, v in fields.items() if k != "sv"}})


def service_sas(container: str, blob: str = "", *, hours: float, permissions: str) -> str:
    """A service SAS (no leading `?`) for a container (`blob` empty, `sr=c`) or one blob (`sr=b`)."""
    fields = {"sv": SAS_VERSION, "sr": "b" if blob else "c", "sp": permissions, "se": _expiry(hours)}
    return _query({**fields, "sig": _sign(_service_string(fields, container, blob))})


def _needed(method: str, comp: str | None, *, container_level: bool) -> str:
    """The permission letters of which the operation needs one (account and service SAS alike)."""
    if method in ("GET", "HEAD"):
        return "l" if comp == "list" else "r"
    if method == "DELETE":
        return "d"
    if container_level:
        return "cw"
    return "w" if comp == "metadata" else "cw"


def check(fields: dict[str, str], method: str, container: str, blob: str, comp: str | None) -> Refusal | None:
    """Why Storage would refuse the request signed with `fields` (its query), or None when the SAS allows it."""
    account = "ss" in fields or "srt" in fields
    text = _account_string(fields) if account else _service_string(fields, container, blob)
    if not hmac.compare_digest(_sign(text), fields.get("sig", "")):
        return 403, "AuthenticationFailed", f"{_AUTHENTICATION}\nSignature did not match."
    moment = datetime.now(UTC).strftime(_TIME)
    start, expiry = fields.get("st", ""), fields.get("se", "")
    if not expiry or moment > expiry or (start and moment < start):
        return (
            403,
            "AuthenticationFailed",
            f"{_AUTHENTICATION}\nSigned expiry time [{expiry}] must be after the current time [{moment}].",
        )
    container_level = not blob
    if account and "b" not in fields.get("ss", ""):
        return (
            403,
            "AuthorizationServiceMismatch",
            "This request is not authorized to perform this operation using this service.",
        )
    if account and ("c" if container_level else "o") not in fields.get("srt", ""):
        return (
            403,
            "AuthorizationResourceTypeMismatch",
            "This request is not authorized to perform this operation using this resource type.",
        )
    if not account and fields.get("sr") == "b" and container_level:
        return (
            403,
            "AuthorizationResourceTypeMismatch",
            "This request is not authorized to perform this operation using this resource type.",
        )
    if not set(_needed(method, comp, container_level=container_level)) & set(fields.get("sp", "")):
        return (
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        )
    return None

"""The emulator's blob service: the part of Azure Blob Storage that azure-ai-ml's uploads and downloads use.

Addresses are path-style, `https://127.0.0.1:PORT/<account>.blob.<suffix>/<container>/<blob>`: the
SDK builds `https://{account}.blob.{suffix}`, and the datastore's account name `127.0.0.1:PORT/<account>`
turns that into a path on this server (`*.localhost` names do not resolve here). Served: put blob,
put block and block list, set metadata, get (with ranges), head, delete, create container, list
blobs (XML).

Who may: a SAS is checked as Storage checks it (its signature with the account key, its expiry, what it
allows: `core/sas.py`); a bearer token (Microsoft Entra ID, as azure-ai-ml sends the caller's own for an
identity-based datastore) is taken unless the caller was marked as lacking a data role on the account
(`PUT /emulator/storage-data-role`), which is answered 403 AuthorizationPermissionMismatch as Storage
answers a principal without "Storage Blob Data Reader/Contributor" (Microsoft Learn, "Authorize access to
blobs using Microsoft Entra ID" and "Shared access signature error codes" for the code and message). An
account key's signature (SharedKey) is not checked. A request without any credential is refused 401
NoAuthenticationInformation with identity-based datastores (Microsoft Learn, "Common REST API error
codes"); otherwise it is served, as it always was here.
Bytes are files under `<root>/<container>/<blob>`, written to a temporary name and renamed, so a
reader never sees half a blob.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from azureml_emulator.core import sas
from azureml_emulator.core.arm import DATA_ROLE, OPERATIONS_SCOPE
from azureml_emulator.core.store import Store

API_VERSION = "2025-01-05"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass
class BlobAnswer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _http_date() -> str:
    return formatdate(usegmt=True)


def _error(status: int, code: str, message: str) -> BlobAnswer:
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
        f"<Message>{escape(message)}\nRequestId:{uuid.uuid4()}</Message></Error>"
    ).encode()
    return BlobAnswer(status, {"x-ms-error-code": code, "Content-Type": "application/xml"}, body)


class BlobService:
    """Blobs under `root`, their properties in `store`."""

    def __init__(self, root: Path, store: Store, *, identity: bool = False) -> None:
        self.root = root
        self.store = store
        self.identity = identity  # identity-based datastores: a request must carry a credential

    def file(self, container: str, path: str) -> Path:
        target = (self.root / container / path).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob path {path!r} leaves its container")
        return target

    def write(self, container: str, path: str, data: bytes, *, content_type: str, metadata: dict[str, str]) -> str:
        """Store a whole blob; return its ETag."""
        target = self.file(container, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".put-")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, target)
        etag = f'"0x{uuid.uuid4().hex[:15].upper()}"'
        self.store.put_blob(
            container,
            path,
            size=len(data),
            etag=etag,
            md5=base64.b64encode(hashlib.md5(data).digest()).decode(),
            content_type=content_type,
            metadata=metadata,
            modified=_http_date(),
        )
        return etag

    def read(self, container: str, path: str) -> bytes | None:
        if self.store.get_blob(container, path) is None:
            return None
        return self.file(container, path).read_bytes()

    def handle(
        self, method: str, container: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> BlobAnswer:
        args = {key: values[0] for key, values in parse_qs(query, keep_blank_values=True).items()}
        base = {"x-ms-version": API_VERSION, "x-ms-request-id": str(uuid.uuid4()), "Date": _http_date()}
        answer = self._authorize(method, container, path, args, headers) or self._dispatch(
            method, container, path, args, headers, body
        )
        answer.headers = {**base, **answer.headers}
        return answer

    def _authorize(
        self, method: str, container: str, path: str, args: dict[str, str], headers: dict[str, str]
    ) -> BlobAnswer | None:
        """The refusal of a request its credential does not allow (see the module's docstring), or None."""
        if "sig" in args:
            refused = sas.check(args, method, container, path, args.get("comp"))
            return None if refused is None else _error(*refused)
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            role = self.store.get_asset(OPERATIONS_SCOPE, DATA_ROLE, "caller")
            if role is not None and not role.get("granted", True):
                return _error(
                    403,
                    "AuthorizationPermissionMismatch",
                    "This request is not authorized to perform this operation using this permission.",
                )
            return None
        if authorization or not self.identity:
            return None
        return _error(
            401,
            "NoAuthenticationInformation",
            "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
        )

    def _dispatch(
        self, method: str, container: str, path: str, args: dict[str, str], headers: dict[str, str], body: bytes
    ) -> BlobAnswer:
        """One blob request to its operation, by method, `restype` and `comp`.

        Long because: it is Blob Storage's dispatch table (container and blob operations, each by method and query), kept
        in one place so what is emulated and what answers UnsupportedQueryParameter is read at a glance."""
        comp, restype = args.get("comp"), args.get("restype")
        if not path:
            if restype == "container" and method == "PUT":
                return BlobAnswer(201, {"ETag": f'"0x{uuid.uuid4().hex[:15].upper()}"', "Last-Modified": _http_date()})
            if restype == "container" and comp == "list" and method == "GET":
                return self._list(container, args)
            if restype == "container" and method in ("GET", "HEAD"):
                return BlobAnswer(200, {"Last-Modified": _http_date(), "ETag": '"0x1"'})
            return _error(400, "UnsupportedQueryParameter", f"{method} on a container with comp={comp} is not emulated")
        metadata = {key[len("x-ms-meta-") :]: value for key, value in headers.items() if key.startswith("x-ms-meta-")}
        if method == "PUT" and comp is None:
            content_type = (
                headers.get("x-ms-blob-content-type") or headers.get("content-type") or "application/octet-stream"
            )
            etag = self.write(container, path, body, content_type=content_type, metadata=metadata)
            properties = self.store.get_blob(container, path) or {}
            return BlobAnswer(
                201,
                {
                    "ETag": etag,
                    "Last-Modified": str(properties.get("modified", _http_date())),
                    "Content-MD5": str(properties.get("md5", "")),
                    "x-ms-request-server-encrypted": "true",
                },
            )
        if method == "PUT" and comp == "block":
            block = self._block_file(container, path, args.get("blockid", ""))
            block.parent.mkdir(parents=True, exist_ok=True)
            block.write_bytes(body)
            return BlobAnswer(201, {"x-ms-request-server-encrypted": "true"})
        if method == "PUT" and comp == "blocklist":
            ids = re.findall(rb"<(?:Latest|Uncommitted|Committed)>([^<]*)</", body)
            parts = [self._block_file(container, path, block_id.decode()) for block_id in ids]
            missing = [p.name for p in parts if not p.is_file()]
            if missing:
                return _error(400, "InvalidBlockList", f"blocks not uploaded: {', '.join(missing)}")
            data = b"".join(part.read_bytes() for part in parts)
            content_type = headers.get("x-ms-blob-content-type") or "application/octet-stream"
            etag = self.write(container, path, data, content_type=content_type, metadata=metadata)
            for part in parts:
                part.unlink(missing_ok=True)
            return BlobAnswer(
                201, {"ETag": etag, "Last-Modified": _http_date(), "x-ms-request-server-encrypted": "true"}
            )
        stored = self.store.get_blob(container, path)
        if stored is None:
            if method == "HEAD":
                return BlobAnswer(404, {"x-ms-error-code": "BlobNotFound"})
            return _error(404, "BlobNotFound", "The specified blob does not exist.")
        if method == "PUT" and comp == "metadata":
            etag = f'"0x{uuid.uuid4().hex[:15].upper()}"'
            self.store.set_blob_metadata(container, path, metadata, etag, _http_date())
            return BlobAnswer(
                200, {"ETag": etag, "Last-Modified": _http_date(), "x-ms-request-server-encrypted": "true"}
            )
        if method == "DELETE":
            self.store.delete_blob(container, path)
            self.file(container, path).unlink(missing_ok=True)
            return BlobAnswer(202, {"x-ms-delete-type-permanent": "true"})
        if method in ("GET", "HEAD"):
            return self._read(container, path, stored, headers, head=method == "HEAD")
        return _error(400, "UnsupportedHttpVerb", f"{method} comp={comp} on a blob is not emulated")

    def _block_file(self, container: str, path: str, block_id: str) -> Path:
        digest = hashlib.sha256(f"{container}/{path}/{block_id}".encode()).hexdigest()
        return self.root / ".blocks" / digest

    def _read(
        self, container: str, path: str, properties: dict[str, object], headers: dict[str, str], *, head: bool
    ) -> BlobAnswer:
        data = b"" if head else self.file(container, path).read_bytes()
        size = int(str(properties["size"]))
        answer_headers = {
            "Content-Type": str(properties["content_type"]),
            "ETag": str(properties["etag"]),
            "Last-Modified": str(properties["modified"]),
            "Content-MD5": str(properties["md5"]),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-server-encrypted": "true",
            "x-ms-lease-state": "available",
            "x-ms-lease-status": "unlocked",
            "Accept-Ranges": "bytes",
            "x-ms-creation-time": str(properties["modified"]),
        }
        metadata = properties["metadata"]
        assert isinstance(metadata, dict)
        answer_headers |= {f"x-ms-meta-{key}": value for key, value in metadata.items()}
        wanted = headers.get("x-ms-range") or headers.get("range")
        match = _RANGE.fullmatch(wanted or "")
        if match and not head:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
            if size == 0:
                return BlobAnswer(200, answer_headers | {"Content-Length": "0"}, b"")
            if start >= size:
                return _error(
                    416, "InvalidRange", "The range specified is invalid for the current size of the resource."
                )
            answer_headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return BlobAnswer(206, answer_headers, data[start : end + 1])
        answer_headers["Content-Length"] = str(size)
        return BlobAnswer(200, answer_headers, data)

    def _list(self, container: str, args: dict[str, str]) -> BlobAnswer:
        prefix = args.get("prefix", "")
        include_metadata = "metadata" in args.get("include", "")
        entries = []
        for path, properties in self.store.list_blobs(container, prefix):
            metadata = ""
            if include_metadata:
                items = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in properties["metadata"].items())
                metadata = f"<Metadata>{items}</Metadata>"
            entries.append(
                f"<Blob><Name>{escape(path)}</Name><Properties>"
                f"<Creation-Time>{properties['modified']}</Creation-Time>"
                f"<Last-Modified>{properties['modified']}</Last-Modified><Etag>{escape(properties['etag'])}</Etag>"
                f"<Content-Length>{properties['size']}</Content-Length>"
                f"<Content-Type>{escape(properties['content_type'])}</Content-Type>"
                f"<Content-MD5>{properties['md5']}</Content-MD5><BlobType>BlockBlob</BlobType>"
                f"<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
                f"<ServerEncrypted>true</ServerEncrypted></Properties>{metadata}</Blob>"
            )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<EnumerationResults ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix>'
            f"<Blobs>{''.join(entries)}</Blobs><NextMarker /></EnumerationResults>"
        ).encode()
        return BlobAnswer(200, {"Content-Type": "application/xml"}, body)

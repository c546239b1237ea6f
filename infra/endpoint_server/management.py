"""The endpoint's deployments, managed: load a bundle's scoring script, add or remove a deployment, set the
traffic and the mirror; the state is saved to `state.json` after each change and restored at start, so
management never needs a restart.

A bundle's `bundle.json` may name its scoring script (`"scoring_script"`, relative to `code/`; default
`score.py`), as an Azure ML deployment's `code_configuration` does, and say `"micro_batching": true` (from the
package's manifest): its `run()` may score the rows of several requests in one call (`batching`).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from infra.common.hashing import files_sha256
from infra.endpoint_server.errors import HttpError, json_object
from infra.endpoint_server.openapi import openapi_document
from infra.endpoint_server.traffic import Deployment, TrafficSplit
from model.scripts import NotImportableError, load_script

STATE_FILE = "state.json"
_module_ids = itertools.count(1)


def load_bundle(name: str, bundle: Path) -> Deployment:
    """Import the bundle's `code/score.py` as a module of its own and run its `init()` on `model/`.

    Raises:
        HttpError: 422 when the bundle is incomplete; 409 when `init()` refuses it (for example an
            environment mismatch), with init's own message.
    """
    model_dir, manifest_file = bundle / "model", bundle / "bundle.json"
    manifest: dict[str, Any] = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    script = bundle / "code" / str(manifest.get("scoring_script") or "score.py")
    missing = [str(p) for p in (script, model_dir, manifest_file) if not p.exists()]
    if missing:
        raise HttpError(422, f"bundle {bundle} is incomplete: missing {', '.join(missing)}")
    try:
        module = load_script(script, model_dir, name=f"mlops_deployment_{name}_{next(_module_ids)}")
    except NotImportableError:
        raise HttpError(422, f"cannot import {script}") from None
    except Exception as exc:
        raise HttpError(409, f"deployment {name!r} refused bundle {bundle}: {exc}") from exc
    model = str(manifest.get("model", "unknown"))
    batching = manifest.get("micro_batching") is True
    digest = bundle_sha256(bundle)
    return Deployment(
        name=name,
        model=model,
        bundle=str(bundle),
        module=module,
        micro_batching=batching,
        bundle_sha256=digest,
        headers=model_headers(name, manifest, model, digest),
    )


def bundle_sha256(bundle: Path) -> str:
    """The bundle folder's hash (`infra.common.hashing`), Python's byte-code caches left out (importing the scoring
    script may write them)."""
    files = [p for p in bundle.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files_sha256((path, PurePosixPath(path.relative_to(bundle).as_posix())) for path in files)


def model_headers(name: str, manifest: dict[str, Any], model: str, digest: str) -> tuple[tuple[bytes, bytes], ...]:
    """What every answer of the deployment `name` says about who gave it. `azureml-model-deployment` is Azure ML's
    own (a request sends it to pin a deployment: azure-ai-ml's `EndpointInvokeFields.MODEL_DEPLOYMENT`, in
    azure/ai/ml/constants/_endpoint.py; the answer names the deployment that served it the same way); the
    `x-mlops-*` ones are ours."""
    model_name, _, version = model.rpartition(":")
    values = {
        "azureml-model-deployment": name,
        "x-mlops-model-name": str(manifest.get("name") or model_name or model),
        "x-mlops-model-version": str(manifest.get("version") or version),
        "x-mlops-bundle-sha256": digest,
    }
    return tuple((key.encode(), value.encode("latin-1", "replace")) for key, value in values.items())


class Deployments:
    """The endpoint `name`'s deployments, their traffic split and mirror, saved in `state_dir`."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.state_dir = state_dir
        self.name = name
        self.loaded: dict[str, Deployment] = {}
        self.split = TrafficSplit(name)
        self.swagger = b""
        self.lock = asyncio.Lock()  # one management request at a time

    def restore(self) -> None:
        """Reload the saved deployments and traffic (at start); a bundle that no longer loads stops the start."""
        path = self.state_dir / STATE_FILE
        saved = json.loads(path.read_text()) if path.is_file() else {"deployments": {}, "traffic": {}}
        for name, entry in saved["deployments"].items():
            self.loaded[name] = load_bundle(name, Path(entry["bundle"]))
        self._apply_traffic(saved["traffic"])
        self.split.mirror = {n: p for n, p in saved.get("mirror", {}).items() if n in self.loaded}
        settle()

    def _apply_traffic(self, traffic: dict[str, int]) -> None:
        self.split.apply(traffic, self.loaded)
        serving = self.split.serving
        module = self.loaded[serving].module if serving else None
        self.swagger = orjson.dumps(openapi_document(self.name, module))

    def _save(self) -> None:
        state = {
            "deployments": {n: {"bundle": d.bundle, "model": d.model} for n, d in self.loaded.items()},
            "traffic": self.split.traffic,
            "mirror": self.split.mirror,
        }
        temporary = self.state_dir / f".{STATE_FILE}.{os.getpid()}"
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.state_dir / STATE_FILE)

    def describe(self) -> dict[str, Any]:
        deployments = {
            n: {"model": d.model, "traffic": self.split.traffic.get(n, 0), "bundle": d.bundle}
            for n, d in self.loaded.items()
        }
        return {"name": self.name, "deployments": deployments, "mirror": self.split.mirror}

    async def manage(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        """A management request (`path` below `/management/`); the endpoint's state after it."""
        if path == "state" and method == "GET":
            return self.describe()
        if path == "traffic" and method == "PUT":
            self.split.set_traffic(json_object(body), self.loaded)
            self._apply_traffic(self.split.traffic)
            self._save()
            return self.describe()
        if path == "mirror" and method == "PUT":
            self.split.set_mirror(json_object(body), self.loaded)
            self._save()
            return self.describe()
        if path.startswith("deployments/"):
            name = path.removeprefix("deployments/")
            if method == "PUT":
                await self._add(name, json_object(body))
                return self.describe()
            if method == "DELETE":
                self._remove(name)
                return self.describe()
        raise HttpError(404, f"no management route {method} /management/{path}")

    async def _add(self, name: str, request: dict[str, Any]) -> None:
        traffic = self.split.traffic
        if not _valid_name(name):
            raise HttpError(422, f"deployment name {name!r}: use 3-32 letters, digits or '-', starting with a letter")
        if traffic.get(name, 0) > 0:
            raise HttpError(
                409,
                f"deployment {name!r} takes {traffic[name]} % of traffic; move its traffic before replacing it",
            )
        bundle = request.get("bundle")
        if not isinstance(bundle, str):
            raise HttpError(422, 'expected {"bundle": "<bundle folder>"}')
        loaded = await asyncio.to_thread(load_bundle, name, Path(bundle))
        self.loaded[name] = loaded
        self._apply_traffic(self.split.traffic)
        self._save()
        settle()

    def _remove(self, name: str) -> None:
        traffic = self.split.traffic
        if name not in self.loaded:
            raise HttpError(404, f"deployment {name!r} does not exist on endpoint {self.name!r}")
        if traffic.get(name, 0) > 0:
            raise HttpError(
                409, f"deployment {name!r} takes {traffic[name]} % of traffic; move its traffic before removing it"
            )
        del self.loaded[name]
        self.split.mirror.pop(name, None)
        self._apply_traffic(self.split.traffic)
        self._save()


def settle() -> None:
    """After loading models: collect once, then freeze what is left (the libraries, the models) out of the garbage
    collector's sight. Requests leave almost nothing for the collector, so its full collections are rare, but each
    walked the whole loaded heap (about 150,000 objects, 87 ms of CPU measured on a busy machine) in the middle of
    a request; frozen, a full collection walks only what was made since."""
    gc.collect()
    gc.freeze()


def _valid_name(name: str) -> bool:
    return 3 <= len(name) <= 32 and name[0].isalpha() and all(c.isalnum() or c == "-" for c in name)

"""Files in and out of the emulator's blob storage, by datastore path or blob URL: a job's code and inputs, a
deployment's code and model."""

from __future__ import annotations

import re
from pathlib import Path

from azureml_emulator.core.arm import DATASTORE_CONTAINERS
from azureml_emulator.core.emulator import Emulator

_DATASTORE_PATH = re.compile(
    r"azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/workspaces/[^/]+/)?datastores/(?P<store>[^/]+)/paths/(?P<path>.*)"
)


class MissingFiles(Exception):
    """Files a job or a deployment needs are not there (or the asset naming them does not exist). The message
    becomes the job's error, or a deployment's 400."""


def blob_location(emulator: Emulator, uri: str) -> tuple[str, str]:
    """(container, path) of an https blob URL on this emulator or of an azureml:// datastore path."""
    datastore = _DATASTORE_PATH.fullmatch(uri)
    if datastore:
        container = DATASTORE_CONTAINERS.get(datastore["store"])
        if container is None:
            raise MissingFiles(f"datastore {datastore['store']!r} of {uri} does not exist")
        return container, datastore["path"]
    base = emulator.blob_base + "/"
    bare = uri.split("?", 1)[0].replace(":443/", "/")
    if not bare.startswith(base):
        raise MissingFiles(f"{uri} is not storage of this emulator")
    container, _, path = bare[len(base) :].partition("/")
    return container, path


def copy_blobs(emulator: Emulator, container: str, prefix: str, target: Path, *, single: bool = False) -> Path:
    """Copy the blobs under `prefix` into `target`; a single blob (`single`) becomes the file `target/<its name>`."""
    if single:
        data = emulator.blobs.read(container, prefix)
        if data is None:
            raise MissingFiles(f"input file {container}/{prefix} does not exist in the datastore")
        target.mkdir(parents=True, exist_ok=True)
        path = target / Path(prefix).name
        path.write_bytes(data)
        return path
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    found = emulator.store.list_blobs(container, prefix)
    if not found:
        raise MissingFiles(f"input folder {container}/{prefix} is empty or does not exist")
    for blob, _ in found:
        destination = target / blob[len(prefix) :]
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(emulator.blobs.read(container, blob) or b"")
    return target

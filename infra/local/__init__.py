"""The local backend: everything on this machine, no cloud. Files live under `MLOPS_HOME`.

The names below are loaded when first used, not when the package is: the small programs that live
in this package and run as processes of their own (`python -m infra.services.supervisor`, the training
jobs' `infra.services.guard`) import nothing but the standard library, and must not pay for pandas,
pyarrow and the settings (about a second of CPU each) just because Python imports their package first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.endpoint_server import LocalEndpoints
    from infra.local.backend import LocalBackend
    from infra.local.batch import LocalBatch
    from infra.local.jobs import LocalJobs, workspace_jobs
    from infra.local.registry import LocalRegistry

__all__ = ["LocalBackend", "LocalBatch", "LocalEndpoints", "LocalJobs", "LocalRegistry", "workspace_jobs"]

_MODULES = {
    "LocalBackend": "infra.local.backend",
    "LocalBatch": "infra.local.batch",
    "LocalEndpoints": "infra.endpoint_server",
    "LocalJobs": "infra.local.jobs",
    "LocalRegistry": "infra.local.registry",
    "workspace_jobs": "infra.local.jobs",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'infra.local' has no attribute {name!r}")

"""Literal response bodies, kept as data: `bodies/<name>.json` in the emulator's folder.

Each file is the fixed part of a body as Azure answers it, with a `_source` note saying where it comes from
(dropped here). A null there is either Azure's own null or a value the handler fills in per request; the
handler that loads the body sets those.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).resolve().parents[1] / "bodies"


@functools.cache
def _parsed(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FOLDER / f"{name}.json").read_text())
    document.pop("_source")
    return document


def body(name: str) -> dict[str, Any]:
    """A fresh copy of `bodies/<name>.json`, less its `_source`: the caller may change it."""
    return copy.deepcopy(_parsed(name))

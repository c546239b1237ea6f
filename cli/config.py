"""`mlops config show`: every effective setting, by area, and where it came from; secrets masked.

A source is one of `environment`, `.env` (the file), `derived` (from the model package: its `name` or `model_name`)
or `default`. An old variable name that set a value is shown as such (it still works, for one release).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from cli.command import Command, Subparsers, add, group, json_argument
from infra.sections import RENAMED
from infra.settings import SECTIONS, Origin, Settings, origins, section_fields

HIDDEN = "<hidden>"


def register(commands: Subparsers) -> None:
    """`mlops config show [--json]`."""
    verbs = group(commands, "config", help="the settings: each one's value and where it came from")
    add(
        verbs,
        "show",
        Command("config show", show),
        help="every effective setting and its source (default, derived, .env, environment)",
        arguments=json_argument,
    )


def rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per setting, in area order: area, field, variable, value (secrets masked), source, and what set it."""
    found = origins()
    listed = []
    for area, section in SECTIONS:
        for field in section_fields(section):
            origin: Origin = found[field]
            listed.append(
                {
                    "area": area,
                    "field": field,
                    "variable": origin.variable,
                    "value": _shown(getattr(settings, field)),
                    "source": origin.source,
                    "set_by": origin.variable if origin.source in ("environment", ".env") else None,
                    "deprecated": origin.variable in RENAMED,
                    "file": str(origin.file) if origin.file else None,
                }
            )
    return listed


def show(settings: Settings, args: argparse.Namespace) -> int:
    listed = rows(settings)
    if args.json:
        print(json.dumps({"settings": listed}, indent=2))
        return 0
    width = max(len(row["variable"]) for row in listed)
    area = None
    for row in listed:
        if row["area"] != area:
            area = row["area"]
            print(f"{area}:")
        value = row["value"]
        value = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        source = row["source"]
        if row["file"]:
            source += f" ({row['file']})"
        if row["deprecated"]:
            source += f", a deprecated name: use {RENAMED[row['variable']]}"
        print(f"  {row['variable']:<{width}}  {value or '(unset)'}  [{source}]")
    return 0


def _shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return HIDDEN
    if isinstance(value, Path):
        return str(value)
    return value

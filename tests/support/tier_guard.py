"""The fast tier's guard: no Prefect server, no Azure ML emulator and no platform starts during `make test-fast`.

The tiers come from the fixtures a test uses (tests/conftest.py), so a test that starts one of these
without the fixture (say, an `mlops train` subprocess, which starts Prefect's temporary server) would
slip into the fast tier. The guard catches it where it happens: an audit hook (PEP 578) on every
process start, in the pytest process and, through `sitecustomize` on PYTHONPATH, in every Python child
it starts (a `mlops train` child starting its temporary Prefect server is caught inside the child; a
child given an environment without MLOPS_TEST_GUARD and PYTHONPATH is not watched). A forbidden start is refused (the test fails at that point) and written to the report file
named by MLOPS_TEST_GUARD, which fails the run at its end whatever the test did with the error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GUARD_VARIABLE = "MLOPS_TEST_GUARD"
SITE = Path(__file__).resolve().parent / "guard"
_installed = False


class ForbiddenStart(RuntimeError):
    """A fast-tier test started what the fast tier must not."""


def forbidden(args: Sequence[str]) -> str | None:
    """What a command line would start that the fast tier forbids, or None."""
    words = [os.path.basename(str(a)) for a in args]
    text = " ".join(str(a) for a in args)
    if "prefect.server.api.server:create_app" in text or _sequence(words, "prefect", "server", "start"):
        return "a Prefect server"
    if {"azureml_emulator", "azureml_emulator.__main__"} & set(words):  # the server, not its batch driver
        return "the Azure ML emulator"
    if ("cli.main" in words or "mlops" in words) and "up" in words:
        return "the platform (mlops up)"
    return None


def _sequence(words: list[str], *expected: str) -> bool:
    return any(words[i : i + len(expected)] == list(expected) for i in range(len(words)))


def _hook(event: str, arguments: tuple[Any, ...]) -> None:
    if event != "subprocess.Popen":
        return
    _executable, args, _cwd, _env = arguments
    command = [args] if isinstance(args, (str, bytes)) else list(args or [])
    command = [a.decode() if isinstance(a, bytes) else str(a) for a in command]
    if len(command) == 1 and " " in command[0]:
        command = command[0].split()
    what = forbidden(command)
    if what is None:
        return
    report = os.environ.get(GUARD_VARIABLE)
    line = f"{what}: {' '.join(command)[:300]} (pid {os.getpid()}, test {os.environ.get('PYTEST_CURRENT_TEST', '?')})"
    if report:
        with open(report, "a") as out:
            out.write(line + "\n")
    raise ForbiddenStart(f"the fast tier starts no {what}; this test needs a tier marker (its fixtures): {line}")


def install() -> None:
    """Install the hook in this process (once; audit hooks cannot be removed)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


def enable(report: Path) -> None:
    """Guard this process and every Python child: the report file, the hook, and `sitecustomize` on PYTHONPATH."""
    report.parent.mkdir(parents=True, exist_ok=True)
    report.touch()
    os.environ[GUARD_VARIABLE] = str(report)
    root = str(Path(__file__).resolve().parents[2])  # children import tests.support.tier_guard from the checkout
    paths = [str(SITE), root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    install()


def violations(report: Path) -> list[str]:
    return [line for line in report.read_text().splitlines() if line] if report.is_file() else []

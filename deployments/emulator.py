"""The local Azure ML emulator's process, for the commands that start, stop or report it (`mlops emulator`, the
platform). Its module is imported only when asked for: it imports cryptography, ~50 ms of every `mlops` command's
start otherwise (issue 27)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.settings import Settings

if TYPE_CHECKING:
    from azureml_emulator.process import EmulatorProcess


def emulator_process(settings: Settings) -> EmulatorProcess:
    """`EmulatorProcess.from_settings(settings)`, its module imported now."""
    from azureml_emulator.process import EmulatorProcess

    return EmulatorProcess.from_settings(settings)

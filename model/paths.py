"""Where the project's code is: the one place that works it out (standard library only, importable by every layer).

code_root()            the folder holding the `model`, `infra`, ... packages: the PYTHONPATH of every child process
checkout_root()        the same folder when it is a checkout (it holds `pyproject.toml`), else the working directory
model_package()        the `model` package's own folder
command_environment()  this process's environment with the code root first on PYTHONPATH
"""

from __future__ import annotations

import os
from pathlib import Path

_CODE_ROOT = Path(__file__).resolve().parents[1]


def code_root() -> Path:
    """The folder holding the `model` package: on the PYTHONPATH of every command a package runs."""
    return _CODE_ROOT


def checkout_root() -> Path:
    """The folder holding `pyproject.toml` when the project is installed from a checkout, else the working directory."""
    here = code_root()
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def model_package() -> Path:
    """The folder of the `model` package this process imports."""
    return code_root() / "model"


def python_path() -> str:
    """PYTHONPATH for a child process: the code root first, then this process's PYTHONPATH."""
    return os.pathsep.join(filter(None, [str(code_root()), os.environ.get("PYTHONPATH")]))


def command_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with the code root first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": python_path(), **(extra or {})}

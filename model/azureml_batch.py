"""The entry script of our Azure ML batch deployments: runs the model package's `batch_score.py` there.

Azure ML's parallel-run driver imports this file (the deployment's `scoring_script`), calls `init()`
once per process and `run(mini_batch)` with a list of input files (one `part-NNNNNN.csv` per
mini-batch: `mini_batch_size=1`). It exists so that nothing depends on what Azure does not document:

- **The output's format.** With `output_action=append_row`, Azure writes a returned DataFrame to
  `predictions.csv` space-separated and without a header (Microsoft Learn, "Image processing with
  batch model deployments", reads it with `sep=' ', header=None`), and how it quotes a value holding
  a space is not documented. A returned list is written one item per line, as it is. So `run`
  returns lines it formatted itself: the input file's name, then the scored row as CSV
  (`part-000003.csv,59,2,32.1,...,<score>`); `infra.azureml.batch` splits them back per file.
- **Which failure hit which file.** A mini-batch that raises is retried and then counted failed; the
  error lands in the job's logs in a format Azure does not document. `run` also writes the error to
  `<file stem>.error.txt` in the job's output folder (`AZUREML_BI_OUTPUT_PATH`, Microsoft Learn,
  "Customize outputs in model batch deployments"), where the client finds it by name.
- **Imports.** The code folder is the checkout's layout (`model/`, `models/<name>/`); whether the
  driver puts its root on `sys.path` is not documented, so this file does.

The package's script is `MLOPS_BATCH_SCRIPT` (a path inside the code folder, set on the deployment).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the code folder: `model/` and the packages sit in it
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.scripts import load_script  # noqa: E402 - the code folder is on sys.path from here

SCRIPT_VARIABLE = "MLOPS_BATCH_SCRIPT"
OUTPUT_VARIABLE = "AZUREML_BI_OUTPUT_PATH"
ERROR_SUFFIX = ".error.txt"
FILE_COLUMN = "file"

script: ModuleType | None = None


def init() -> None:
    """Import the package's batch script (`MLOPS_BATCH_SCRIPT`, relative to the code folder) and call its `init()`."""
    global script
    relative = os.environ.get(SCRIPT_VARIABLE)
    if not relative:
        raise RuntimeError(f"{SCRIPT_VARIABLE} is not set: the deployment names the package's batch script there")
    path = ROOT / relative
    if not path.is_file():
        raise FileNotFoundError(f"{SCRIPT_VARIABLE}={relative}: no such file in the code folder {ROOT}")
    script = load_script(path, name="mlops_package_batch_score")  # AZUREML_MODEL_DIR: Azure ML's own


def run(mini_batch: list[str]) -> list[str]:
    """Score each file with the package's `run([file])`; its rows as `<file name>,<row as CSV>` lines."""
    if script is None:
        raise RuntimeError("init() was not called")
    output = Path(os.environ.get(OUTPUT_VARIABLE) or ".")
    lines: list[str] = []
    for item in mini_batch:
        path = Path(item)
        error = output / f"{path.stem}{ERROR_SUFFIX}"
        try:
            scored = script.run([str(path)])
        except Exception as exc:
            output.mkdir(parents=True, exist_ok=True)
            error.write_text(f"{type(exc).__name__}: {exc}\n")
            raise
        error.unlink(missing_ok=True)  # an earlier attempt's error, now retried successfully
        lines += _lines(path.name, scored)
    return lines


def _lines(name: str, scored: Any) -> list[str]:
    """The scored rows as CSV lines (the package's own `file` column dropped), each led by the file's name."""
    if FILE_COLUMN in getattr(scored, "columns", ()):
        scored = scored.drop(columns=[FILE_COLUMN])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in scored.itertuples(index=False, name=None):
        writer.writerow([name, *row])
    return buffer.getvalue().splitlines()

"""Local batch scoring: inputs cut into mini-batches of whole lines (`infra.common.batching`), each scored here
into a part file.

Scoring a mini-batch parses its byte range, runs the model package's `batch_score.run` (the batch
contract) and appends each row's score to the row's own input text: the output keeps the input's
columns exactly as written, plus `score`. `score_all` hands each mini-batch to the caller's runner
(the batch-score flow makes each one a task run). Parts are concatenated in order into one CSV.
"""

from __future__ import annotations

import io
import threading
from functools import partial
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from infra.backend import DEFAULT_PACKAGE, BatchRunner, MiniBatch, MiniBatchResult, ModelVersion, Scored
from infra.common import batching
from infra.errors import BackendError
from model.datarows import RowLimits
from model.errors import DataValidationError, ModelError
from model.package import SCORE_COLUMN, ModelPackage, load_package
from model.scripts import load_script

_BINARY = pa.large_binary()


class LocalBatch:
    """Plans and scores mini-batches in this process with the model package's `batch_score.py`; each model
    is loaded once (its `init()`) and shared by threads."""

    def __init__(self, package: ModelPackage | None = None) -> None:
        self.package = package or load_package(DEFAULT_PACKAGE)
        self._models: dict[str, ModuleType] = {}
        self._limits = RowLimits(self.package.schema, self.package.features)
        self._lock = threading.Lock()

    def plan(self, files: list[Path], rows_per_batch: int) -> list[MiniBatch]:
        return batching.plan(files, rows_per_batch, self.package.features)

    def score(self, model: ModelVersion, batch: MiniBatch, work: Path) -> MiniBatchResult:
        data = batching.read(batch)
        try:
            frame = pd.read_csv(io.BytesIO(data), header=None, names=batch.columns, skip_blank_lines=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            hint = ""
            if "inside string" in str(exc):
                hint = "; a quoted field spans lines, and mini-batches are cut at line ends: use a mini_batch_size of at least the file's rows"
            raise DataValidationError(f"{batch.describe()}: not a readable CSV ({exc}){hint}") from None
        _check_rows(self._limits, frame, batch)
        scored = self._score(model, frame, batch)
        work.mkdir(parents=True, exist_ok=True)
        part = work / f"part-{batch.index:06d}.csv"
        rows_out = _write_part(data, scored, part)
        return MiniBatchResult(index=batch.index, rows_in=len(frame), rows_out=rows_out, part=part)

    def score_all(
        self,
        model: ModelVersion,
        batches: list[MiniBatch],
        work: Path,
        *,
        parallelism: int,
        error_threshold: int,  # noqa: ARG002 - the flow checks it against the failures returned
        runner: BatchRunner | None = None,
    ) -> Scored:
        """Each mini-batch scored in this process by `score`, through the runner (the flow: one task run each)."""
        return (runner or batching.InProcess()).each(partial(self.score, model, work=work), batches, parallelism)

    def count_rows(self, batch: MiniBatch) -> int:
        return batching.count_rows(batch)

    def assemble(self, results: list[MiniBatchResult], columns: list[str], out: Path) -> int:
        return batching.assemble(results, columns, out)

    def _score(self, model: ModelVersion, frame: pd.DataFrame, batch: MiniBatch) -> pd.DataFrame:
        """The script's `run(mini_batch)`; its error names the mini-batch, and its answer is checked."""
        try:
            scored = self._script(model).run(frame)
        except ModelError as exc:
            raise DataValidationError(f"{batch.describe()}: {exc}") from None
        except (ValueError, KeyError) as exc:
            raise DataValidationError(f"{batch.describe()}: batch_score.run failed: {exc}") from None
        if not isinstance(scored, pd.DataFrame) or SCORE_COLUMN not in scored.columns or len(scored) != len(frame):
            raise BackendError(
                f"{batch.describe()}: batch_score.run returned {type(scored).__name__} "
                f"without one {SCORE_COLUMN!r} per row (the batch contract)"
            )
        return scored

    def _script(self, model: ModelVersion) -> ModuleType:
        with self._lock:
            if model.path not in self._models:
                self._models[model.path] = load_script(self.package.batch_script, Path(model.path))
            return self._models[model.path]


def _check_rows(limits: RowLimits, frame: pd.DataFrame, batch: MiniBatch) -> None:
    """The package's `[data.checks]` on the mini-batch's features (numpy, no validation library): a row that breaks
    them fails its mini-batch, named with its column and row, and counts against the error threshold. Cells that are
    not numbers are left to the scoring script, which names them."""
    if not limits.active:
        return
    columns = [frame[name] for name in limits.features]
    values = np.column_stack(
        [
            c.to_numpy(np.float64)
            if pd.api.types.is_numeric_dtype(c) and not pd.api.types.is_bool_dtype(c)
            else np.full(len(c), np.nan)
            for c in columns
        ]
    )
    bad = limits.violations(values)
    if bad.any():
        raise DataValidationError(f"{batch.describe()}: the data checks fail: {limits.explain(values, bad)}")


def _write_part(data: bytes, scored: pd.DataFrame, part: Path) -> int:
    """Write each input line followed by `,<score>`; return the lines written.

    The input text is kept as it is. When lines and rows disagree (a quoted field holding a
    newline) or lines end in CR LF, the rows are written out by pyarrow instead.
    """
    scores = scored[SCORE_COLUMN].to_numpy()
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")) + 1
    if len(ends) != len(scores) or b"\r" in data:
        table = pa.Table.from_pandas(scored, preserve_index=False)
        pa_csv.write_csv(table, str(part), write_options=pa_csv.WriteOptions(include_header=False))
        return len(scored)
    offsets = pa.py_buffer(np.concatenate([[0], ends]).astype(np.int64))
    lines = pa.Array.from_buffers(_BINARY, len(ends), [None, offsets, pa.py_buffer(data)])
    texts = pc.cast(pc.cast(pa.array(scores), pa.string()), _BINARY)
    joined = pc.binary_join_element_wise(pc.binary_slice(lines, 0, -1), texts, pa.scalar(b",", _BINARY))
    rows = pc.binary_join_element_wise(joined, pa.scalar(b"", _BINARY), pa.scalar(b"\n", _BINARY))
    bounds = np.frombuffer(rows.buffers()[1], dtype=np.int64, count=len(rows) + 1)
    part.write_bytes(memoryview(rows.buffers()[2])[bounds[0] : bounds[-1]])
    return len(rows)

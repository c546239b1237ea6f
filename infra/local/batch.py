"""Local batch scoring: inputs cut into mini-batches of whole lines, each scored into a part file.

A mini-batch is a byte range of one CSV, so planning reads a few bytes per mini-batch, not the
file. Scoring parses the range, runs the model package's `batch_score.run` (the batch contract)
and appends each row's score to the row's own input text: the output keeps the input's columns
exactly as written, plus `score`. Parts are concatenated in order into one CSV.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from infra.backend import DEFAULT_PACKAGE, MiniBatch, MiniBatchResult, ModelVersion
from infra.errors import BackendError
from model.errors import DataValidationError, ModelError
from model.package import SCORE_COLUMN, ModelPackage, load_package
from model.scripts import load_script

_SAMPLE_BYTES = 1 << 20
_BINARY = pa.large_binary()


class LocalBatch:
    """Plans and scores mini-batches in this process with the model package's `batch_score.py`; each model
    is loaded once (its `init()`) and shared by threads."""

    remote = False

    def __init__(self, package: ModelPackage | None = None) -> None:
        self.package = package or load_package(DEFAULT_PACKAGE)
        self._models: dict[str, ModuleType] = {}
        self._lock = threading.Lock()

    def plan(self, files: list[Path], rows_per_batch: int) -> list[MiniBatch]:
        batches: list[MiniBatch] = []
        header: list[str] | None = None
        for file in files:
            columns, start, step = _inspect(file, rows_per_batch, self.package.features)
            if header is not None and columns != header:
                raise DataValidationError(
                    f"{file}: columns {','.join(columns)} differ from {files[0]}'s {','.join(header)}"
                )
            header = columns
            batches += _cut(file, columns, start, step, first_index=len(batches))
        return batches

    def score(self, model: ModelVersion, batch: MiniBatch, work: Path) -> MiniBatchResult:
        data = _read(batch)
        try:
            frame = pd.read_csv(io.BytesIO(data), header=None, names=batch.columns, skip_blank_lines=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            hint = ""
            if "inside string" in str(exc):
                hint = "; a quoted field spans lines, and mini-batches are cut at line ends: use a mini_batch_size of at least the file's rows"
            raise DataValidationError(f"{batch.describe()}: not a readable CSV ({exc}){hint}") from None
        scored = self._score(model, frame, batch)
        work.mkdir(parents=True, exist_ok=True)
        part = work / f"part-{batch.index:06d}.csv"
        rows_out = _write_part(data, scored, part)
        return MiniBatchResult(index=batch.index, rows_in=len(frame), rows_out=rows_out, part=part)

    def run_job(
        self,
        model: ModelVersion,  # noqa: ARG002
        batches: list[MiniBatch],  # noqa: ARG002
        work: Path,  # noqa: ARG002
        *,
        parallelism: int,  # noqa: ARG002
        error_threshold: int,  # noqa: ARG002
    ) -> tuple[list[MiniBatchResult], dict[int, str]]:
        raise BackendError("the local backend has no batch jobs: the flow scores each mini-batch (score)")

    def count_rows(self, batch: MiniBatch) -> int:
        return _read(batch).count(b"\n")  # lines: a failed mini-batch may not parse into rows

    def assemble(self, results: list[MiniBatchResult], columns: list[str], out: Path) -> int:
        out.parent.mkdir(parents=True, exist_ok=True)
        header = (",".join([*columns, SCORE_COLUMN]) + "\n").encode()
        with out.open("wb", buffering=0) as target:
            target.write(header)
            for result in sorted(results, key=lambda r: r.index):
                with result.part.open("rb") as part:
                    size = os.fstat(part.fileno()).st_size
                    os.sendfile(target.fileno(), part.fileno(), 0, size)
                result.part.unlink()
        return out.stat().st_size

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


def _inspect(file: Path, rows_per_batch: int, features: tuple[str, ...]) -> tuple[list[str], int, int]:
    """The header's columns, where the data starts, and the byte length of about `rows_per_batch` lines."""
    with file.open("rb") as handle:
        first = handle.readline()
        start = handle.tell()
        sample = handle.read(_SAMPLE_BYTES)
    if not first.strip():
        raise DataValidationError(f"{file}: the file is empty (expected a header line with {','.join(features)})")
    columns = next(csv.reader([first.decode("utf-8-sig").rstrip("\r\n")]))
    missing = [name for name in features if name not in columns]
    if missing:
        raise DataValidationError(
            f"{file}: missing column(s) {', '.join(map(repr, missing))}; expected {','.join(features)}"
        )
    if SCORE_COLUMN in columns:
        raise DataValidationError(f"{file}: the input already has a {SCORE_COLUMN!r} column")
    if not sample.strip():
        raise DataValidationError(f"{file}: no data rows (only a header)")
    per_line = len(sample) / max(1, sample.count(b"\n"))
    return columns, start, max(1, int(per_line * rows_per_batch))


def _cut(file: Path, columns: list[str], start: int, step: int, first_index: int) -> list[MiniBatch]:
    """Byte ranges of about `step` bytes, each ending just after a newline (or at the end of the file)."""
    size = file.stat().st_size
    batches: list[MiniBatch] = []
    position = start
    with file.open("rb") as handle:
        while position < size:
            end = min(size, position + step)
            if end < size:
                handle.seek(end - 1)
                handle.readline()  # to just past the next newline (`end - 1` keeps a range that already ends on one)
                end = handle.tell()
            batches.append(
                MiniBatch(index=first_index + len(batches), file=file, start=position, end=end, columns=columns)
            )
            position = end
    return batches


def _read(batch: MiniBatch) -> bytes:
    with batch.file.open("rb") as handle:
        handle.seek(batch.start)
        data = handle.read(batch.end - batch.start)
    return data if data.endswith(b"\n") else data + b"\n"


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

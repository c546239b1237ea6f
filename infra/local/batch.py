"""Local batch scoring: inputs cut into mini-batches of whole lines (`infra.common.batching`), each scored here
into a part file.

Scoring a mini-batch parses its byte range, runs the model package's `batch_score.run` (the batch
contract) and appends each row's score to the row's own input text: the output keeps the input's
columns exactly as written, plus `score`. `score_all` hands each mini-batch to the caller's runner
(the batch-score flow makes each one a task run). Parts are concatenated in order into one CSV.

A mini-batch scored before in this workspace is not scored again (`scored`, MLOPS_BATCH_REUSE_SCORED): its key is
the SHA-256 of the model's identity (version and folder), the package's manifest and batch script, and the
mini-batch's bytes, and `<home>/batch/.scored/<key>.json` says where its scored lines lie in the output a run
assembled. While that output is there unchanged (size and modification time), the lines are copied from it: the
same bytes scoring would write, and neither the model nor its libraries are loaded (an unchanged re-run of
`mlops run` imports no scikit-learn; issue 27).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
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
_PIECE_BYTES = 1 << 20  # the line-end search's piece
SCORED_FOLDER = ".scored"  # under <home>/batch: one small JSON file per mini-batch scored (its key)


class LocalBatch:
    """Plans and scores mini-batches in this process with the model package's `batch_score.py`; each model
    is loaded once (its `init()`) and shared by threads."""

    def __init__(self, package: ModelPackage | None = None, *, scored: Path | None = None) -> None:
        self.package = package or load_package(DEFAULT_PACKAGE)
        self._models: dict[str, ModuleType] = {}
        self._limits = RowLimits(self.package.schema, self.package.features)
        self._lock = threading.Lock()
        self._scored = scored  # where scored mini-batches are remembered; None: every mini-batch is scored
        self._model_keys: dict[str, bytes] = {}
        self._keys: dict[str, str] = {}  # each scored part's key, until `assemble` records where it went

    def plan(self, files: list[Path], rows_per_batch: int) -> list[MiniBatch]:
        return batching.plan(files, rows_per_batch, self.package.features)

    def score(self, model: ModelVersion, batch: MiniBatch, work: Path) -> MiniBatchResult:
        work.mkdir(parents=True, exist_ok=True)
        part = work / f"part-{batch.index:06d}.csv"
        with batching.lines(batch) as data:
            key = self._key(model, data) if self._scored is not None else None
            if key is not None and (reused := self._reuse(key, batch, part)) is not None:
                return reused
            frame = _parse(data, batch)
            _check_rows(self._limits, frame, batch)
            scored = self._score(model, frame, batch)
            rows_out = _write_part(data, scored, part)
        if key is not None:
            with self._lock:
                self._keys[str(part)] = key  # recorded once the part is assembled (`assemble`)
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
        if self._scored is None:
            return batching.assemble(results, columns, out)
        return self._remember(results, columns, out)

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

    def _key(self, model: ModelVersion, data: bytes | memoryview) -> str:
        """What decides a mini-batch's scores: the model version and its folder, the package's manifest (its data
        checks) and batch script, and the mini-batch's bytes."""
        with self._lock:
            if model.path not in self._model_keys:
                identity = hashlib.sha256(f"{model.id}\0{model.path}\0".encode())
                for file in (self.package.root / "mlops-model.toml", self.package.batch_script):
                    identity.update(file.read_bytes() if file.is_file() else b"-")
                    identity.update(b"\0")
                self._model_keys[model.path] = identity.digest()
            prefix = self._model_keys[model.path]
        digest = hashlib.sha256(prefix)
        digest.update(data)  # not `prefix + data`: a mini-batch is megabytes
        return digest.hexdigest()

    def _reuse(self, key: str, batch: MiniBatch, part: Path) -> MiniBatchResult | None:
        """The earlier scoring of this key, copied from the output it was assembled into to `part`; None when there
        is none, or that output is gone or changed since."""
        try:
            entry = json.loads((self._scored_folder() / f"{key}.json").read_text())
            output = Path(entry["output"])
            with output.open("rb") as source:
                found = os.fstat(source.fileno())
                if (found.st_size, found.st_mtime_ns) != (entry["output_size"], entry["output_mtime_ns"]):
                    return None
                with part.open("wb") as target:
                    copied = os.sendfile(target.fileno(), source.fileno(), entry["offset"], entry["size"])
            if copied != entry["size"]:
                return None
            result = MiniBatchResult(
                index=batch.index, rows_in=entry["rows_in"], rows_out=entry["rows_out"], part=part, reused=True
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        with self._lock:
            self._keys[str(part)] = key
        return result

    def _remember(self, results: list[MiniBatchResult], columns: list[str], out: Path) -> int:
        """Assemble, and record where each scored mini-batch now lies in `out` (a workspace that cannot write the
        record scores again next time)."""
        with self._lock:
            keys = [self._keys.pop(str(r.part), None) for r in results]
        spans = [(r, key, r.part.stat().st_size) for r, key in zip(results, keys, strict=True)]
        size = batching.assemble(results, columns, out)
        written = out.stat()
        offset = len(batching.header(columns))
        folder = self._scored_folder()
        for result, key, length in sorted(spans, key=lambda span: span[0].index):
            if key is not None:
                entry = {
                    "output": str(out.resolve()),
                    "output_size": written.st_size,
                    "output_mtime_ns": written.st_mtime_ns,
                    "offset": offset,
                    "size": length,
                    "rows_in": result.rows_in,
                    "rows_out": result.rows_out,
                }
                with contextlib.suppress(OSError):
                    folder.mkdir(parents=True, exist_ok=True)
                    staging = folder / f".{key}.{os.getpid()}.tmp"
                    staging.write_text(json.dumps(entry))
                    staging.replace(folder / f"{key}.json")
            offset += length
        return size

    def _scored_folder(self) -> Path:
        if self._scored is None:
            raise RuntimeError("scores are not remembered here")
        return self._scored

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


def _parse(data: memoryview, batch: MiniBatch) -> pd.DataFrame:
    try:
        return pd.read_csv(batching.ViewStream(data), header=None, names=batch.columns, skip_blank_lines=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        hint = ""
        if "inside string" in str(exc):
            hint = "; a quoted field spans lines, and mini-batches are cut at line ends: use a mini_batch_size of at least the file's rows"
        raise DataValidationError(f"{batch.describe()}: not a readable CSV ({exc}){hint}") from None


def _line_ends(data: memoryview) -> tuple[np.ndarray, bool]:
    """The offset past each newline, and whether any CR is there, a MiB at a time (a mask of the whole mini-batch
    was tens of MB of new memory each time)."""
    values = np.frombuffer(data, dtype=np.uint8)
    ends, carriage_return = [], False
    for at in range(0, len(values), _PIECE_BYTES):
        piece = values[at : at + _PIECE_BYTES]
        ends.append(np.flatnonzero(piece == ord("\n")) + (at + 1))
        carriage_return = carriage_return or bool((piece == ord("\r")).any())
    return (np.concatenate(ends) if ends else np.empty(0, np.int64)), carriage_return


def _write_part(data: memoryview, scored: pd.DataFrame, part: Path) -> int:
    """Write each input line followed by `,<score>`; return the lines written.

    The input text is kept as it is. When lines and rows disagree (a quoted field holding a
    newline) or lines end in CR LF, the rows are written out by pyarrow instead.
    """
    scores = scored[SCORE_COLUMN].to_numpy()
    ends, carriage_return = _line_ends(data)
    if len(ends) != len(scores) or carriage_return:
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

"""Local batch scoring on real files: planning, scoring into parts, writing the output."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infra.local import LocalBackend
from infra.local import batch as local_batch
from infra.local.batch import SCORED_FOLDER, LocalBatch
from infra.settings import load_settings
from model.errors import DataValidationError
from model.package import load_package
from models.diabetes.data import FEATURES, write_sample_csv
from models.diabetes.score import predict_locally
from tests.support.helpers import MODEL, clone_home

HEADER = ",".join(FEATURES)


@pytest.fixture(scope="module")
def model_and_backend(seeded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, LocalBackend]:
    backend = LocalBackend(load_settings(home=clone_home(seeded_template, tmp_path_factory.mktemp("b") / "home")))
    return backend.registry.get(MODEL, 1), backend


def _score_all(batch: LocalBatch, model: object, files: list[Path], rows: int, work: Path) -> pd.DataFrame:
    batches = batch.plan(files, rows)
    results = [batch.score(model, b, work) for b in batches]  # type: ignore[arg-type]
    out = work / "out.csv"
    batch.assemble(results, batches[0].columns, out)
    assert sum(r.rows_out for r in results) == sum(r.rows_in for r in results)
    return pd.read_csv(out)


class TestPlan:
    def test_ranges_cover_the_file_and_end_on_newlines(self, tmp_path: Path) -> None:
        path = write_sample_csv(tmp_path / "s.csv", for_scoring=True)
        batches = LocalBatch().plan([path], 100)
        data = path.read_bytes()
        assert batches[0].start == len(HEADER) + 1
        assert batches[-1].end == len(data)
        assert all(a.end == b.start for a, b in itertools.pairwise(batches))
        assert all(data[b.end - 1 : b.end] == b"\n" for b in batches)
        assert 4 <= len(batches) <= 6
        assert sum(LocalBatch().count_rows(b) for b in batches) == 442

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param("", "the file is empty", id="empty"),
            pytest.param(HEADER + "\n", "no data rows", id="header-only"),
            pytest.param(HEADER.replace("bmi,", "") + "\n1,2\n", "missing column(s) 'bmi'", id="missing-column"),
            pytest.param(HEADER + ",score\n" + "1," * 10 + "1\n", "already has a 'score' column", id="score-column"),
        ],
    )
    def test_bad_inputs_are_refused_before_scoring(self, tmp_path: Path, text: str, expected: str) -> None:
        path = tmp_path / "in.csv"
        path.write_text(text)
        with pytest.raises(DataValidationError) as caught:
            LocalBatch().plan([path], 100)
        assert expected in str(caught.value)
        assert str(path) in str(caught.value)

    def test_files_with_different_headers_are_refused(self, tmp_path: Path) -> None:
        first = write_sample_csv(tmp_path / "a.csv", for_scoring=True)
        second = tmp_path / "b.csv"
        second.write_text(",".join(reversed(FEATURES)) + "\n" + "0," * 9 + "0\n")
        with pytest.raises(DataValidationError, match="differ from"):
            LocalBatch().plan([first, second], 100)


class TestScore:
    def test_scores_equal_the_model_and_input_text_is_kept(self, model_and_backend: tuple, tmp_path: Path) -> None:
        model, _ = model_and_backend
        path = write_sample_csv(tmp_path / "s.csv", for_scoring=True)
        out = _score_all(LocalBatch(), model, [path], 50, tmp_path / "work")
        source = pd.read_csv(path)
        assert list(out.columns) == [*FEATURES, "score"]
        np.testing.assert_array_equal(out[list(FEATURES)].to_numpy(), source.to_numpy())
        # Per mini-batch, BLAS may sum in another order than over all rows at once: last-bit differences only.
        expected = predict_locally(Path(model.path), source.to_numpy().tolist())
        assert out["score"].tolist() == pytest.approx(expected, rel=1e-13)
        written = (tmp_path / "work" / "out.csv").read_text().splitlines()
        assert written[1].startswith(path.read_text().splitlines()[1] + ",")

    @pytest.mark.parametrize(
        "variant", ["crlf", "quoted-newline-in-one-mini-batch", "no-final-newline", "extra-column"]
    )
    def test_unusual_files_still_score_every_row(self, model_and_backend: tuple, tmp_path: Path, variant: str) -> None:
        model, _ = model_and_backend
        rows = [[0.01 * (i + j) for j in range(10)] for i in range(7)]
        columns = list(FEATURES)
        lines = [",".join(map(str, r)) for r in rows]
        if variant == "extra-column":
            columns.append("note")
            lines = [f'{line},"x{i}"' for i, line in enumerate(lines)]
        if variant.startswith("quoted-newline"):
            columns.append("note")
            lines = [f'{line},"two\nlines"' for line in lines]
        text = ",".join(columns) + "\n" + "\n".join(lines) + "\n"
        if variant == "crlf":
            text = text.replace("\n", "\r\n")
        if variant == "no-final-newline":
            text = text.rstrip("\n")
        path = tmp_path / "in.csv"
        path.write_bytes(text.encode())
        out = _score_all(LocalBatch(), model, [path], 100 if variant.startswith("quoted") else 3, tmp_path / "work")
        assert len(out) == 7
        assert out["score"].tolist() == pytest.approx(predict_locally(Path(model.path), rows), rel=1e-12)

    def test_a_quoted_field_cut_by_a_mini_batch_is_a_clear_error(
        self, model_and_backend: tuple, tmp_path: Path
    ) -> None:
        model, _ = model_and_backend
        path = tmp_path / "in.csv"
        path.write_text(",".join([*FEATURES, "note"]) + "\n" + ("0.1," * 10 + '"two\nlines"\n') * 6)
        batch = LocalBatch()
        parts = batch.plan([path], 3)
        with pytest.raises(DataValidationError, match="a quoted field spans lines"):
            [batch.score(model, part, tmp_path / "work") for part in parts]

    def test_a_poisoned_row_fails_its_mini_batch_naming_column_and_row(
        self, model_and_backend: tuple, tmp_path: Path
    ) -> None:
        model, _ = model_and_backend
        path = write_sample_csv(tmp_path / "s.csv", for_scoring=True)
        lines = path.read_text().splitlines()
        lines[3] = lines[3].replace(lines[3].split(",")[2], "abc", 1)
        path.write_text("\n".join(lines) + "\n")
        batch = LocalBatch()
        first = batch.plan([path], 100)[0]
        with pytest.raises(DataValidationError) as caught:
            batch.score(model, first, tmp_path / "work")
        assert "column 'bmi', row 3: 'abc' is not a number" in str(caught.value)
        assert "s.csv mini-batch 0" in str(caught.value)


class TestReuse:
    """A mini-batch scored before in the workspace (same bytes, model and scoring files) is not scored again."""

    @staticmethod
    def _run(batch: LocalBatch, model: object, path: Path, rows: int, work: Path) -> tuple[list, Path]:
        batches = batch.plan([path], rows)
        results = [batch.score(model, b, work) for b in batches]  # type: ignore[arg-type]
        batch.assemble(results, batches[0].columns, work / "out.csv")
        return results, work / "out.csv"

    def test_the_same_bytes_with_the_same_model_take_the_earlier_scores(
        self, model_and_backend: tuple, tmp_path: Path
    ) -> None:
        model, _ = model_and_backend
        path = write_sample_csv(tmp_path / "s.csv", for_scoring=True)
        scored = tmp_path / "scored"
        first, first_out = self._run(LocalBatch(scored=scored), model, path, 100, tmp_path / "one")
        assert len(first) == 5
        assert not any(r.reused for r in first)

        again = LocalBatch(scored=scored)  # a new process, as the next `mlops run`
        second, second_out = self._run(again, model, path, 100, tmp_path / "two")
        assert all(r.reused for r in second)
        assert again._models == {}  # the model (and scikit-learn) was never loaded
        assert [(r.rows_in, r.rows_out) for r in second] == [(r.rows_in, r.rows_out) for r in first]
        assert second_out.read_bytes() == first_out.read_bytes()

        first_out.unlink()  # the first run's folder cleaned up: the second run's output is the one recorded now
        third, third_out = self._run(LocalBatch(scored=scored), model, path, 100, tmp_path / "three")
        assert all(r.reused for r in third)
        assert third_out.read_bytes() == second_out.read_bytes()

    def test_other_bytes_a_changed_output_or_reuse_off_score_again(
        self, model_and_backend: tuple, tmp_path: Path
    ) -> None:
        model, _ = model_and_backend
        path = write_sample_csv(tmp_path / "s.csv", for_scoring=True)
        scored = tmp_path / "scored"
        _, out = self._run(LocalBatch(scored=scored), model, path, 1000, tmp_path / "one")

        [off], _ = self._run(LocalBatch(), model, path, 1000, tmp_path / "off")  # no folder: never reused
        assert not off.reused
        out.write_bytes(out.read_bytes().replace(b"\n", b"\r\n", 1))  # the earlier output was edited
        [edited], _ = self._run(LocalBatch(scored=scored), model, path, 1000, tmp_path / "two")
        assert not edited.reused
        [again], _ = self._run(LocalBatch(scored=scored), model, path, 1000, tmp_path / "three")
        assert again.reused  # the new output is the one recorded

        lines = path.read_text().splitlines()
        path.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # one row fewer
        [changed], _ = self._run(LocalBatch(scored=scored), model, path, 1000, tmp_path / "four")
        assert (changed.reused, changed.rows_out) == (False, 441)

    def test_a_changed_batch_script_scores_again(self, model_and_backend: tuple, tmp_path: Path) -> None:
        model, _ = model_and_backend
        path = write_sample_csv(tmp_path / "s.csv", for_scoring=True)
        scored = tmp_path / "scored"
        package = LocalBatch().package
        copy = tmp_path / "package"
        shutil.copytree(package.root, copy)
        runs = iter(range(3))

        def reused() -> bool:
            [result], _ = self._run(
                LocalBatch(load_package(copy), scored=scored), model, path, 1000, tmp_path / f"run-{next(runs)}"
            )
            return bool(result.reused)

        assert (reused(), reused()) == (False, True)
        script = copy / package.batch_script.relative_to(package.root)
        script.write_text(script.read_text() + "\n# changed\n")
        assert not reused()

    def test_the_workspace_setting_turns_it_off(self, seeded_template: Path, tmp_path: Path) -> None:
        home = clone_home(seeded_template, tmp_path / "home")
        assert LocalBackend(load_settings(home=home)).batch._scored == home / "batch" / SCORED_FOLDER
        assert LocalBackend(load_settings(home=home, batch_reuse_scored=False)).batch._scored is None


@pytest.mark.parametrize("carriage_return_at", [None, 0, 15, 16, 17, 99])
def test_line_ends_by_pieces_are_those_of_the_whole(
    monkeypatch: pytest.MonkeyPatch, carriage_return_at: int | None
) -> None:
    """The line ends and the CR check, a piece at a time (16-byte pieces here), agree with the whole buffer's."""
    monkeypatch.setattr(local_batch, "_PIECE_BYTES", 16)
    data = bytearray(b"".join(b"%d,%d\n" % (i, i * 7) for i in range(20)))
    if carriage_return_at is not None:
        data[carriage_return_at] = ord("\r")
    ends, carriage_return = local_batch._line_ends(memoryview(data))
    assert ends.tolist() == [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    assert carriage_return == (b"\r" in data)

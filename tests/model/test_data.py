"""The sample data and the schema checks, on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from model.errors import DataValidationError
from models.diabetes.data import COLUMNS, FEATURES, read_csv, write_sample_csv

GOOD_ROW = "0.03,0.05,0.06,0.02,-0.04,-0.03,-0.04,-0.002,0.02,-0.017,151.0"
HEADER = ",".join(COLUMNS)


class TestSampleCsv:
    def test_training_csv_matches_mlopspython_layout(self, tmp_path: Path) -> None:
        path = write_sample_csv(tmp_path / "diabetes.csv")
        lines = path.read_text().splitlines()
        assert lines[0] == "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,Y"
        assert len(lines) == 443
        frame = read_csv(path)
        reference = load_diabetes()
        np.testing.assert_array_equal(frame[list(FEATURES)].to_numpy(), reference.data)
        np.testing.assert_array_equal(frame["Y"].to_numpy(), reference.target)

    def test_scoring_csv_has_no_target(self, tmp_path: Path) -> None:
        path = write_sample_csv(tmp_path / "score.csv", for_scoring=True)
        assert path.read_text().splitlines()[0] == ",".join(FEATURES)
        assert read_csv(path, FEATURES).shape == (442, 10)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


class TestSchemaErrors:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param("", "the file is empty", id="empty-file"),
            pytest.param(HEADER + "\n", "no data rows", id="header-only"),
            pytest.param(
                HEADER.replace("age,", "") + "\n" + GOOD_ROW.split(",", 1)[1] + "\n",
                "missing column(s) 'age'",
                id="missing-column",
            ),
            pytest.param(HEADER + ",extra\n" + GOOD_ROW + ",1\n", "unexpected column(s) 'extra'", id="extra-column"),
            pytest.param(
                HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.replace("0.06", "abc") + "\n",
                "column 'bmi', row 2: 'abc' is not a number",
                id="non-numeric",
            ),
            pytest.param(
                HEADER + "\n" + GOOD_ROW.replace("0.02,-0.04", "NaN,-0.04") + "\n",
                "column 'bp', row 1: the value is missing",
                id="nan",
            ),
            pytest.param(
                HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.replace(",151.0", ",") + "\n",
                "column 'Y', row 2: the value is missing",
                id="empty-cell",
            ),
            pytest.param(
                HEADER + "\n" + GOOD_ROW.replace("-0.017", "inf") + "\n",
                "column 's6', row 1: the value is not finite",
                id="infinite",
            ),
        ],
    )
    def test_bad_data_names_the_problem(self, tmp_path: Path, text: str, expected: str) -> None:
        path = _write(tmp_path, text)
        with pytest.raises(DataValidationError) as caught:
            read_csv(path)
        assert expected in str(caught.value)
        assert str(path) in str(caught.value)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DataValidationError, match="no such file"):
            read_csv(tmp_path / "absent.csv")

    def test_columns_in_another_order_are_reordered(self, tmp_path: Path) -> None:
        names = list(COLUMNS)
        values = GOOD_ROW.split(",")
        path = _write(tmp_path, ",".join(reversed(names)) + "\n" + ",".join(reversed(values)) + "\n")
        frame = read_csv(path)
        assert list(frame.columns) == names
        assert frame.iloc[0].tolist() == [float(v) for v in values]

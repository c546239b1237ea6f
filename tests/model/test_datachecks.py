"""Data checks (`[data.checks]`, README "Data checks"): the manifest's schema, a starting one inferred from sample
data, the training data's check with pandera, and the numpy checks of batch rows and online requests."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from model.datarows import RowLimits, infer_schema, write_checks
from model.dataschema import SchemaError, read_schema
from model.package import ContractError, load_package
from model.validation import check_file
from models.classification.data import write_sample_csv as write_classification
from models.diabetes.data import write_sample_csv as write_diabetes

ROOT = Path(__file__).resolve().parents[2]
DIABETES, CLASSIFICATION = ROOT / "models" / "diabetes", ROOT / "models" / "classification"


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_diabetes(tmp_path_factory.mktemp("data") / "diabetes.csv")


def _columns(root: Path) -> tuple[str, ...]:
    package = load_package(root)
    return (*package.features, package.target)


def test_the_shipped_diabetes_sample_passes_its_own_checks(diabetes_csv: Path) -> None:
    package = load_package(DIABETES)
    report = check_file(diabetes_csv, package.schema, _columns(DIABETES))
    assert report.passed, report.message()
    assert report.rows == 442


def test_a_column_of_nans_fails_naming_the_column_and_its_rows(diabetes_csv: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(diabetes_csv)
    frame["bmi"] = np.nan
    frame.to_csv(bad := tmp_path / "nans.csv", index=False)
    report = check_file(bad, load_package(DIABETES).schema, _columns(DIABETES))
    assert report.columns == ["bmi"]
    assert "column 'bmi': 442 row(s) empty (at most 0% of rows may be) (row 1: empty" in report.message()
    assert "| bmi | empty" in report.markdown()


def test_a_feature_scaled_by_1000_fails_naming_the_column(diabetes_csv: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(diabetes_csv)
    frame["s5"] *= 1000
    frame.to_csv(bad := tmp_path / "scaled.csv", index=False)
    report = check_file(bad, load_package(DIABETES).schema, _columns(DIABETES))
    assert report.columns == ["s5"]  # 2 of its 442 values are within the range even scaled: near 0
    assert "column 's5': 440 row(s) outside [-0.3858, 0.3933]" in report.message()


def test_types_allowed_values_missing_columns_and_row_count_are_all_reported_at_once(tmp_path: Path) -> None:
    frame = pd.read_csv(write_classification(tmp_path / "c.csv")).head(10).astype({"mean_texture": object})
    frame.loc[3, "mean_texture"] = "abc"
    frame.loc[[1, 7], "target"] = 2
    frame = frame.drop(columns=["worst_symmetry"])
    frame.to_csv(bad := tmp_path / "bad.csv", index=False)
    report = check_file(bad, load_package(CLASSIFICATION).schema, _columns(CLASSIFICATION))
    text = report.message()
    assert report.columns == ["mean_texture", "target", "worst_symmetry"]
    assert "column 'mean_texture': 1 row(s) not a number (row 4: 'abc')" in text
    assert "column 'target': 2 row(s) not one of 0, 1 (row 2: 2, row 8: 2)" in text
    assert "column 'worst_symmetry': is missing from the file" in text
    assert "the table: has 10 rows; the checks ask for 62 rows" in text


def test_inference_gives_labels_allowed_values_and_features_wide_ranges(tmp_path: Path) -> None:
    frame = pd.read_csv(write_classification(tmp_path / "c.csv"))
    schema = infer_schema(frame, ("mean_radius", "target"), features=30)
    radius, target = schema.columns
    assert (target.type, target.allowed) == ("int", (0.0, 1.0))
    low, high = frame["mean_radius"].min(), frame["mean_radius"].max()
    assert radius.min == 0  # non-negative in the sample: kept so
    assert radius.max is not None
    assert radius.max >= high + (high - low)  # a span of room for drift
    assert radius.max < 1000 * low  # never room for a change of unit
    assert schema.min_rows == 62


def test_init_writes_the_checks_into_the_manifest_and_writing_again_changes_nothing(
    diabetes_csv: Path, tmp_path: Path
) -> None:
    package_dir = tmp_path / "pkg"
    shutil.copytree(DIABETES, package_dir, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = package_dir / "mlops-model.toml"
    written = write_checks(manifest, diabetes_csv, load_package(DIABETES).features, "Y", online=False)
    once = manifest.read_text()
    write_checks(manifest, diabetes_csv, load_package(DIABETES).features, "Y", online=False)
    assert manifest.read_text() == once
    assert once.count("[data.checks]") == 1
    assert load_package(package_dir).schema == written == load_package(DIABETES).schema


@pytest.mark.parametrize(
    ("checks", "problem"),
    [
        ({"columns": {"height": {"min": 0}}}, "height: not a feature or the target"),
        ({"columns": {"age": {"min": 2, "max": 1}}}, "age: min 2.0 is above max 1.0"),
        ({"columns": {"age": {"type": "text"}}}, 'type must be "float" or "int"'),
        ({"columns": {"age": {"min": 0, "allowed": [1]}}}, "either min/max or allowed"),
        ({"min_rows": 0}, "min_rows must be a whole number of at least 1"),
        ({"columns": {"age": {"max_missing": 2}}}, "max_missing must be a fraction from 0 to 1"),
    ],
)
def test_a_malformed_schema_is_refused_naming_the_key(checks: dict[str, object], problem: str) -> None:
    with pytest.raises(SchemaError, match=r"\[data\.checks") as caught:
        read_schema(checks, Path("mlops-model.toml"), ("age", "Y"))
    assert problem in str(caught.value)


def test_a_malformed_schema_makes_the_package_fail_to_load(tmp_path: Path) -> None:
    package_dir = tmp_path / "pkg"
    shutil.copytree(DIABETES, package_dir, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = package_dir / "mlops-model.toml"
    manifest.write_text(manifest.read_text().replace("min_rows = 22", "min_rows = -1"))
    with pytest.raises(ContractError, match="min_rows"):
        load_package(package_dir)


def test_row_limits_flag_each_offending_cell_and_name_its_column() -> None:
    package = load_package(DIABETES)
    limits = RowLimits(package.schema, package.features)
    rows = np.zeros((4, 10))
    rows[2, 2] = 25.0  # bmi in kg/m², not the sample's scaled unit
    rows[3, 0] = np.nan  # missing: the scoring script names it
    bad = limits.violations(rows)
    assert np.argwhere(bad).tolist() == [[2, 2]]
    assert limits.explain(rows, bad) == "column 'bmi': 1 row(s) outside [-0.3512, 0.4314] (row 3: 25)"


def _classification_score() -> ModuleType:
    spec = importlib.util.spec_from_file_location("classification_score", CLASSIFICATION / "score.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_online_request_outside_the_checks_is_a_value_error_naming_the_column(tmp_path: Path) -> None:
    score = _classification_score()
    score.limits = score.read_limits(CLASSIFICATION / "mlops-model.toml")
    rows = pd.read_csv(write_classification(tmp_path / "c.csv", for_scoring=True)).head(3).to_numpy(copy=True)
    score.check_rows(rows)  # the sample's rows pass
    rows[1, 3] *= 1000  # mean_area in another unit
    with pytest.raises(ValueError, match=r"column 'mean_area' \(data row 2, column 4\): .* is outside \[0, 4859\]"):
        score.check_rows(rows)


def test_a_package_with_online_false_leaves_requests_unchecked(tmp_path: Path) -> None:
    score = _classification_score()
    manifest = tmp_path / "mlops-model.toml"
    manifest.write_text(
        (CLASSIFICATION / "mlops-model.toml").read_text().replace("min_rows = 62", "min_rows = 62\nonline = false")
    )
    assert score.read_limits(manifest) is None

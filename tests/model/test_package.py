"""The model contract's manifest (model/package.py): manifests that break it name the problem; the sample's old
folder still means the sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model.package import ContractError, load_package, moved_package
from models.diabetes.data import FEATURES, TARGET

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "diabetes": ROOT / "models" / "diabetes",
    "classification": ROOT / "models" / "classification",
    "r": ROOT / "models" / "diabetes_r",
}


def test_the_former_sample_folder_means_the_sample_and_other_folders_are_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "models" / "diabetes").mkdir(parents=True)
    (tmp_path / "model").mkdir()
    assert moved_package(tmp_path / "model") == tmp_path / "models" / "diabetes"
    assert moved_package(tmp_path / "model") == tmp_path / "models" / "diabetes"
    notices = capsys.readouterr().err.splitlines()
    assert len(notices) == 1  # one line, once
    assert "set MLOPS_MODEL_PACKAGE=models/diabetes" in notices[0]
    own = tmp_path / "elsewhere" / "model"  # no models/diabetes beside it: not the former sample
    own.mkdir(parents=True)
    assert moved_package(own) == own
    (tmp_path / "model" / "mlops-model.toml").write_text("")  # a package of its own at model/
    assert moved_package(tmp_path / "model") == tmp_path / "model"


def _copy(tmp_path: Path, which: str = "classification") -> Path:
    target = tmp_path / which
    shutil.copytree(PACKAGES[which], target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


class TestManifest:
    def test_the_diabetes_manifest_agrees_with_the_sample_code(self) -> None:
        package = load_package(PACKAGES["diabetes"])
        assert (package.features, package.target) == (FEATURES, TARGET)
        assert (package.metric, package.direction, package.model_name) == (
            "mse",
            "minimize",
            "diabetes_regression_model.pkl",
        )
        assert package.micro_batching is True

    def test_no_manifest(self, tmp_path: Path) -> None:
        with pytest.raises(ContractError, match=r"no mlops-model.toml"):
            load_package(tmp_path)

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            pytest.param(('metric = "auc"', ""), r"missing \[gate\] metric", id="missing-key"),
            pytest.param(
                ('direction = "maximize"', 'direction = "up"'),
                r"direction must be 'minimize' or 'maximize'",
                id="bad-direction",
            ),
            pytest.param(
                ('"{out}"]\nparameters', '"{output}"]\nparameters'), r"unknown placeholder", id="unknown-placeholder"
            ),
            pytest.param(
                ('"--out", "{out}"]\nparameters', '"--out", "x"]\nparameters'),
                r"\[train\] command never uses \{out\}",
                id="no-out",
            ),
            pytest.param(
                ('online = "score.py"', 'online = "serve.py"'),
                r"\[score\] online names serve.py, which is not in the package",
                id="absent-file",
            ),
            pytest.param(("[gate]", "[gate"), r"not valid TOML", id="not-toml"),
            pytest.param(
                ("micro_batching = true", 'micro_batching = "yes"'),
                r"\[score\] micro_batching must be true or false, got 'yes'",
                id="micro-batching-not-a-flag",
            ),
        ],
    )
    def test_a_broken_manifest_names_the_problem(self, tmp_path: Path, edit: tuple[str, str], message: str) -> None:
        package = _copy(tmp_path)
        manifest = package / "mlops-model.toml"
        text = manifest.read_text()
        assert edit[0] in text
        manifest.write_text(text.replace(edit[0], edit[1], 1))
        with pytest.raises(ContractError, match=message):
            load_package(package)

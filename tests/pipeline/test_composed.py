"""The pipeline's composed config handed to its steps: used only for its own project and overrides."""

import os
import shutil
import stat
from pathlib import Path

import pytest

from housing_mlops.config.loading import load_config
from housing_mlops.errors import ConfigError
from housing_mlops.pipeline import composed
from tests.conftest import ROOT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path


def set_test_size(project: Path, value: float) -> None:
    path = project / "config" / "split" / "default.yaml"
    text = path.read_text()
    assert "test_size: 0.2 " in text
    path.write_text(text.replace("test_size: 0.2 ", f"test_size: {value} "))


def test_a_step_of_the_pipeline_gets_its_config_not_config_composed_again(project: Path) -> None:
    cfg, plain = load_config(project / "config", ["split.seed=7"], estimators=False)
    with composed.handed_to_steps(project, "split.seed=7", cfg, plain):
        set_test_size(project, 0.3)  # edited while the pipeline runs
        got, got_plain = composed.config_for(project, "split.seed=7", estimators=True)
        assert (got.split.test_size, got.split.seed) == (0.2, 7)
        assert got_plain == plain
        # other overrides, or another project, are not the pipeline's config: composed afresh
        other = composed.config_for(project, "split.seed=8", estimators=False)[0]
        assert (other.split.test_size, other.split.seed) == (0.3, 8)
        assert composed.config_for(ROOT, "split.seed=7", estimators=False)[0].split.test_size == 0.2
        handed = Path(os.environ[composed.ENV])
        assert stat.S_IMODE(handed.parent.stat().st_mode) == 0o700
    assert composed.ENV not in os.environ
    assert not handed.exists()
    assert composed.config_for(project, "split.seed=7", estimators=False)[0].split.test_size == 0.3


def test_a_file_gone_with_its_pipeline_means_composing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(composed.ENV, str(project / "gone.pickle"))
    assert composed.config_for(project, "", estimators=False)[0].split.test_size == 0.2


def test_a_step_that_builds_models_still_checks_the_zoo(project: Path) -> None:
    cfg, plain = load_config(project / "config", [], estimators=False)
    family = next(iter(cfg.models.zoo.values()))
    family.estimator = "sklearn.linear_model.NoSuchModel"
    with composed.handed_to_steps(project, "", cfg, plain):
        assert composed.config_for(project, "", estimators=False)[0] == cfg
        with pytest.raises(ConfigError, match="NoSuchModel"):
            composed.config_for(project, "", estimators=True)

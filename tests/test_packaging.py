"""pyproject.toml and conda.yaml pin the same runtime dependencies."""

import tomllib

import yaml

from tests.conftest import ROOT


def test_conda_env_pins_match_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    pinned = {d for d in pip_section if not d.startswith("-e")}
    assert pinned == set(project["dependencies"])
    assert all("==" in dep for dep in project["dependencies"]), "every runtime dependency is pinned"
    python = next(d for d in conda["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11" and project["requires-python"] == ">=3.11,<3.12"


def test_mlproject_uses_conda_env_and_has_every_step() -> None:
    from housing_mlops.pipeline.dag import STEPS

    mlproject = yaml.safe_load((ROOT / "MLproject").read_text())
    assert mlproject["conda_env"] == "conda.yaml"
    assert set(STEPS) | {"main"} <= set(mlproject["entry_points"])
    for step in STEPS:
        assert (ROOT / "steps" / f"{step}.py").is_file()

"""pyproject.toml and conda.yaml pin the same runtime dependencies."""

import inspect
import re
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
    assert python == "python=3.11"
    assert project["requires-python"] == ">=3.11,<3.12"


def test_mlproject_uses_conda_env_and_has_every_step() -> None:
    from housing_mlops.pipeline.dag import STEPS

    mlproject = yaml.safe_load((ROOT / "MLproject").read_text())
    assert mlproject["conda_env"] == "conda.yaml"
    assert set(STEPS) | {"main"} <= set(mlproject["entry_points"])
    for step in STEPS:
        assert (ROOT / "steps" / f"{step}.py").is_file()


def test_the_smoke_overrides_exist_once_in_the_smoke_profile() -> None:
    # make smoke, the tests and bench --quick select config/profile/smoke.yaml; none repeats a key of it.
    from tests import conftest

    profile = yaml.safe_load((ROOT / "config" / "profile" / "smoke.yaml").read_text())
    spelled = [f"{group}.{key}={_hydra(value)}" for group, keys in profile.items() for key, value in keys.items()]
    # ... except the checksum skip, which every run on a sample needs, fast or not (SAMPLE_OPTIONS)
    spelled.remove("data.sha256=null")
    makefile = (ROOT / "Makefile").read_text()
    bench = (ROOT / "benchmarks" / "bench.py").read_text()
    assert re.search(r"^SMOKE_HYDRA = profile=smoke\b", makefile, re.MULTILINE)
    assert 'hydra_options="$(SMOKE_HYDRA)"' in makefile.split("\nsmoke:", 1)[1].split("\n\n", 1)[0]
    assert conftest.FAST_OPTIONS == "profile=smoke"
    assert '"profile=smoke' in bench
    assert "Makefile" not in bench
    for name, text in (("Makefile", makefile), ("tests/conftest.py", inspect.getsource(conftest)), ("bench", bench)):
        assert [s for s in spelled if s in text] == [], name


def _hydra(value: object) -> str:
    """A YAML value as a Hydra override spells it."""
    if isinstance(value, list):
        return "[" + ",".join(_hydra(v) for v in value) + "]"
    return "null" if value is None else str(value)

"""A data domain that contradicts the schema is a config error at start-up, naming its key."""

import re
from pathlib import Path

import pytest

from housing_mlops.config.data import ColumnConfig, DomainConfig
from housing_mlops.config.loading import load_config
from housing_mlops.errors import ConfigError
from tests.conftest import ROOT

FLOAT = ColumnConfig(role="numeric", dtype="float")
CATEGORICAL = ColumnConfig(role="categorical", dtype="str", categories=["A", "B"])


def rejects(domain: DomainConfig, column: ColumnConfig, key: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config key '{re.escape(key)}' = .* expected {expected}") as info:
        domain.validate("c", column)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("domain", "column", "key", "expected"),
    [
        (DomainConfig(ge=5.0, le=1.0), FLOAT, "data.columns.c.domain", "a non-empty range"),
        (DomainConfig(gt=1.0, lt=1.0), FLOAT, "data.columns.c.domain", "a non-empty range"),
        (DomainConfig(ge=1.0, lt=1.0), FLOAT, "data.columns.c.domain", "a non-empty range"),
        (DomainConfig(ge=0.0, gt=0.0), FLOAT, "data.columns.c.domain.gt", "no gt beside ge"),
        (DomainConfig(le=0.0, lt=0.0), FLOAT, "data.columns.c.domain.lt", "no lt beside le"),
        (DomainConfig(ge=float("nan")), FLOAT, "data.columns.c.domain.ge", "a number, not nan"),
        (DomainConfig(ge=0.0), CATEGORICAL, "data.columns.c.domain.ge", "no numeric bound on a str column"),
        (DomainConfig(categories=["A"]), FLOAT, "data.columns.c.domain.categories", "no categories on a float"),
        (DomainConfig(categories="all"), CATEGORICAL, "data.columns.c.domain.categories", "'any' or a non-empty"),
        (DomainConfig(categories=[]), CATEGORICAL, "data.columns.c.domain.categories", "'any' or a non-empty"),
        (
            DomainConfig(categories=["A", "Z"]),
            CATEGORICAL,
            "data.columns.c.domain.categories",
            re.escape("a subset of data.columns.c.categories ['A', 'B'] (not ['Z'])"),
        ),
        (DomainConfig(), FLOAT, "data.columns.c.domain", "at least one of ge, gt, le, lt, categories"),
    ],
    ids=lambda v: repr(v) if isinstance(v, DomainConfig) else "",
)
def test_a_contradicting_domain_names_its_key(
    domain: DomainConfig, column: ColumnConfig, key: str, expected: str
) -> None:
    rejects(domain, column, key, expected)


@pytest.mark.parametrize(
    "domain",
    [DomainConfig(ge=1.0, le=1.0), DomainConfig(gt=0.0), DomainConfig(lt=0.0), DomainConfig(categories="any")],
    ids=repr,
)
def test_a_consistent_domain_passes(domain: DomainConfig) -> None:
    domain.validate("c", CATEGORICAL if domain.categories else FLOAT)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.columns.latitude.domain.between=1", "data.columns.latitude.domain.between"),
        ("data.columns.latitude.domain.ge=50", "data.columns.latitude.domain"),
        (
            "data.columns.ocean_proximity.domain.categories=[INLAND,MARS]",
            "data.columns.ocean_proximity.domain.categories",
        ),
        ("data.on_invalid=skip", "data.on_invalid"),
    ],
)
def test_a_bad_domain_override_fails_at_start_up(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"key '{re.escape(key)}'") as info:
        load_config(ROOT / "config", [override])
    assert "\n" not in str(info.value)


def test_a_domain_file_that_contradicts_the_schema_fails_at_start_up(tmp_path: Path) -> None:
    config = tmp_path / "config"
    for path in (ROOT / "config").rglob("*.yaml"):
        target = config / path.relative_to(ROOT / "config")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    data = config / "data" / "housing.yaml"
    text = data.read_text()
    numeric = "total_rooms:        {role: numeric, dtype: float, min: 1.0, max: 50000.0, domain: {ge: 1.0}}"
    assert numeric in text
    data.write_text(text.replace(numeric, numeric.replace("{ge: 1.0}", "{categories: any}")))
    with pytest.raises(ConfigError, match=r"^config key 'data\.columns\.total_rooms\.domain\.categories' = 'any'"):
        load_config(config, [])

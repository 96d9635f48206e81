"""Config composition: defaults, overrides, and one-line errors naming the key."""

import pytest

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.errors import ConfigError
from tests.conftest import ROOT


def load(*overrides: str):
    return load_config(ROOT / "config", list(overrides))[0]


def test_defaults_compose(cfg) -> None:
    assert cfg.split.test_size == 0.2 and cfg.split.seed == 42
    assert cfg.data.target == "median_house_value"
    assert cfg.data.features("geo") == ["longitude", "latitude"]
    assert "median_house_value" not in cfg.data.features()


def test_env_var_sets_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOUSING_DATA_SOURCE", "/data/other.csv")
    assert load().data.source == "/data/other.csv"


def test_several_overrides_in_one_string() -> None:
    overrides = parse_overrides("split.test_size=0.25 pipeline.force=[split] 'tracking.experiment_name=a b'")
    cfg = load(*overrides)
    assert (cfg.split.test_size, cfg.pipeline.force) == (0.25, ["split"])
    assert cfg.tracking.experiment_name == "a b"
    assert parse_overrides("") == []


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("split.foo=1", "split.foo"),
        ("+split.foo=1", "split.foo"),
        ("nope=1", "nope"),
        ("split.test_size=abc", "split.test_size"),
        ("split.test_size=1.5", "split.test_size"),
        ("split.test_size=0", "split.test_size"),
        ("pipeline.steps=[ingest,bogus]", "pipeline.steps"),
        ("pipeline.force=[bogus]", "pipeline.force"),
        ("data.columns.latitude.role=x", "data.columns.latitude.role"),
        ("data.columns.latitude.typo=1", "data.columns.latitude.typo"),
        ("data.min_rows=0", "data.min_rows"),
        ("data.target=latitude", "data.target"),
        ("data.download.retries=-1", "data.download.retries"),
        ("data.stratify.bins=[3,1,2]", "data.stratify.bins"),
        ("features.neighbor_ks=[0,3]", "features.neighbor_ks"),
        ("features.neighbor_ks=[3,3]", "features.neighbor_ks"),
        ("features.neighbor_ks=[a]", "features.neighbor_ks"),
        ("data=nonexistent", "data/nonexistent"),
        ("wandb=bogus", "wandb/bogus"),
        ("wandb.mode=dryrun", "wandb.mode"),
        ("wandb.project=a/b", "wandb.project"),
        ("wandb.project=''", "wandb.project"),
        ("wandb.typo=1", "wandb.typo"),
    ],
)
def test_bad_key_or_value_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")) as info:
        load(override)
    assert "\n" not in str(info.value)


def test_unbalanced_quotes_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hydra_options"):
        parse_overrides("split.test_size='0.3")


def test_wandb_mirror_is_off_by_default_and_selected_by_group(cfg) -> None:
    assert (cfg.wandb.mode, cfg.wandb.project, cfg.wandb.entity, cfg.wandb.dir) == (
        "disabled",
        "housing-mlops",
        None,
        None,
    )
    offline = load("wandb=offline", "wandb.project=other", "wandb.dir=/tmp/w")
    assert (offline.wandb.mode, offline.wandb.project, offline.wandb.dir) == ("offline", "other", "/tmp/w")


def test_wandb_online_needs_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"wandb\.mode.*WANDB_API_KEY") as info:
        load("wandb=online")
    assert "\n" not in str(info.value)
    monkeypatch.setenv("WANDB_API_KEY", "")
    with pytest.raises(ConfigError, match="WANDB_API_KEY"):
        load("wandb=online")
    monkeypatch.setenv("WANDB_API_KEY", "not-a-real-key")
    assert load("wandb=online").wandb.mode == "online"

"""Config composition: defaults, overrides, and one-line errors naming the key."""

import dataclasses
from typing import Any

import pytest
import yaml

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.errors import ConfigError
from tests.conftest import ROOT


def load(*overrides: str):
    return load_config(ROOT / "config", list(overrides))[0]


def test_defaults_compose(cfg) -> None:
    assert cfg.split.test_size == 0.2
    assert cfg.split.seed == 42
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
        ("registry.bootstrap_resamples=99", "registry.bootstrap_resamples"),
        ("registry.bootstrap_confidence=1.0", "registry.bootstrap_confidence"),
        ("registry.bootstrap_confidence=0", "registry.bootstrap_confidence"),
        ("registry.bootstrap_seed=-1", "registry.bootstrap_seed"),
        ("registry.reference.bins=1", "registry.reference.bins"),
        ("registry.reference.folds=1", "registry.reference.folds"),
        ("registry.reference.n_jobs=0", "registry.reference.n_jobs"),
        ("registry.reference.typo=1", "registry.reference.typo"),
        ("serving.max_rel_error=0", "serving.max_rel_error"),
        ("serving.poll_s=0", "serving.poll_s"),
        ("serving.poll_s=-1", "serving.poll_s"),
        ("serving.poll_s=never", "serving.poll_s"),
        ("serving.poll_s=1e9", "serving.poll_s"),
        ("serving.threads=0", "serving.threads"),
        ("serving.chunk_rows=0", "serving.chunk_rows"),
        ("serving.opset=7", "serving.opset"),
        ("serving.typo=1", "serving.typo"),
        ("sweep.n_trials=0", "sweep.n_trials"),
        ("sweep.timeout_s=-1", "sweep.timeout_s"),
        ("sweep.ensemble=0", "sweep.ensemble"),
        ("select.candidate_timeout_s=0", "select.candidate_timeout_s"),
        ("sweep.pruner=bogus", "sweep.pruner"),
        ("sweep.fidelity.min_resource=600", "sweep.fidelity.min_resource"),  # above every max_iter
        ("sweep.fidelity.min_resource=0", "sweep.fidelity.min_resource"),
        ("sweep.fidelity.reduction_factor=1", "sweep.fidelity.reduction_factor"),
        ("models.zoo.ridge.fidelity=alpha", "models.zoo.ridge.fidelity"),  # Ridge has no warm_start
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


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix[:-1]: node}
    return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}{key}.").items()}


def test_the_smoke_profile_changes_exactly_the_keys_its_file_lists() -> None:
    profile = yaml.safe_load((ROOT / "config" / "profile" / "smoke.yaml").read_text())
    default = _flat(load_config(ROOT / "config", [])[1])
    smoke = _flat(load_config(ROOT / "config", ["profile=smoke"])[1])
    assert smoke.keys() == default.keys()
    assert {k: v for k, v in smoke.items() if v != default[k]} == {
        k: v for k, v in _flat(profile).items() if v != default[k]
    }
    assert _flat(profile).items() <= smoke.items()


def test_the_smoke_profile_keeps_trial_counts_independent_of_load() -> None:
    smoke = load("profile=smoke")
    assert smoke.sweep.timeout_s is None  # a time limit would make the trial count depend on load
    assert smoke.select.candidate_timeout_s is None  # ... and which families finish, so the winner
    assert smoke.sweep.n_startup_trials < smoke.sweep.n_trials  # TPE has trials of its own
    assert smoke.data.sha256 is None  # the profile runs on samples
    # Keys given on the command line win over the profile, whatever their order.
    assert load("sweep.n_trials=6", "profile=smoke").sweep.n_trials == 6
    assert load("profile=smoke", "sweep.n_trials=6").sweep.n_trials == 6


@pytest.mark.parametrize(("override", "key"), [("profile=bogus", "profile/bogus"), ("profile=null", "profile=null")])
def test_a_bad_profile_names_it(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        load(override)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_a_wandb_mode_file_states_only_its_mode(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "not-a-real-key")
    text = yaml.safe_load((ROOT / "config" / "wandb" / f"{mode}.yaml").read_text())
    assert text == {"defaults": ["disabled", "_self_"], "mode": mode}
    disabled = dataclasses.asdict(load().wandb)
    assert dataclasses.asdict(load(f"wandb={mode}").wandb) == {**disabled, "mode": mode}

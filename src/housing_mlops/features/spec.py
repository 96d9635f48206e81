"""FeatureSpec: everything the preprocessor needs, saved as feature_spec.json by the features step.

A spec has no default field: feature_spec_from_config fills it from the composed config (data.* and
features.*, whose values live in config/ only) plus the two choices config cannot make, the
imputer (the impute step's winner) and the number of clusters (the K search or a sweep trial).
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from housing_mlops.config.schema import Config
from housing_mlops.errors import ConfigError
from housing_mlops.features.imputation import make_imputer
from housing_mlops.features.transformers import RATIO_KEYS, is_int


@dataclass(frozen=True)
class FeatureSpec:
    """Everything build_preprocessor needs; saved as feature_spec.json by the features step."""

    numeric: list[str]  # non-geo numeric feature columns
    geo: list[str]  # coordinates, clustered by ClusterSimilarity
    categorical: dict[str, list[str]]  # column -> allowed categories (one-hot, in this order)
    imputer: dict[str, Any]  # {"strategy", "params"}: the impute step's winner (impute.strategies)
    ratios: list[dict[str, str]]  # data.ratios
    log_columns: list[str]  # data.log_columns
    n_clusters: int  # chosen by the features step's K search, or a sweep trial
    gamma: float  # features.gamma
    cluster_weighted_by_target: bool  # features.weighted_by_target
    cluster_n_init: int  # features.n_init
    neighbor_ks: list[int]  # features.neighbor_ks; [] = no neighbour feature
    seed: int  # features.seed

    def __post_init__(self) -> None:
        """Validate on construction: no invalid spec exists."""
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the field (features.* or impute.*) of a bad value."""

        def fail(key: str, value: Any, allowed: str) -> None:
            raise ConfigError(f"config key 'features.{key}' = {value!r} is not allowed: expected {allowed}")

        numeric = set(self.numeric)
        for key, columns in (("geo", self.geo), ("categorical", list(self.categorical))):
            if numeric & set(columns):
                fail(key, sorted(numeric & set(columns)), "columns not also listed as numeric")
        for column, categories in self.categorical.items():
            if not categories or not all(isinstance(c, str) for c in categories):
                fail(
                    f"categorical.{column}",
                    categories,
                    f"a non-empty list of strings (data.columns.{column}.categories)",
                )
        for i, ratio in enumerate(self.ratios):
            if not isinstance(ratio, Mapping) or set(ratio) != set(RATIO_KEYS):
                fail(f"ratios[{i}]", ratio, f"a mapping with exactly the keys {list(RATIO_KEYS)}")
            for key in ("numerator", "denominator"):
                if ratio[key] not in numeric:
                    fail(f"ratios[{i}].{key}", ratio[key], f"a numeric column {self.numeric}")
        names = [r["name"] for r in self.ratios]
        if len(set(names)) != len(names):
            fail("ratios", names, "distinct ratio names")
        for i, column in enumerate(self.log_columns):
            if column not in numeric:
                fail(f"log_columns[{i}]", column, f"a numeric column {self.numeric}")
        if not is_int(self.n_clusters) or self.n_clusters < 2:
            fail("n_clusters", self.n_clusters, "an integer >= 2")
        is_number = isinstance(self.gamma, int | float) and not isinstance(self.gamma, bool)
        if not is_number or not self.gamma > 0:
            fail("gamma", self.gamma, "a number > 0")
        if not is_int(self.cluster_n_init) or self.cluster_n_init < 1:
            fail("cluster_n_init", self.cluster_n_init, "an integer >= 1")
        if not isinstance(self.neighbor_ks, list) or not all(is_int(k) and k >= 1 for k in self.neighbor_ks):
            fail("neighbor_ks", self.neighbor_ks, "a list of integers >= 1 (empty for none)")
        if len(set(self.neighbor_ks)) != len(self.neighbor_ks):
            fail("neighbor_ks", self.neighbor_ks, "distinct values")
        if not isinstance(self.cluster_weighted_by_target, bool):
            fail("cluster_weighted_by_target", self.cluster_weighted_by_target, "true or false")
        if not is_int(self.seed):
            fail("seed", self.seed, "an integer")
        make_imputer(self.imputer, self.seed)  # raises ConfigError naming impute.strategy / impute.params

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (lists, dicts, str, int, float, bool, None)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpec":
        """The spec of a feature_spec.json (or any mapping with exactly its fields)."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"config key 'features.{unknown[0]}' is not allowed: expected keys among {sorted(known)}")
        absent = [k for k in known if k not in data]
        if absent:
            raise ConfigError(f"config key 'features.{absent[0]}' is missing: a FeatureSpec needs all of {known}")
        return cls(**{k: _plain_copy(v) for k, v in data.items()})


def _plain_copy(value: Any) -> Any:
    """Own copies of nested lists/dicts, so the spec never aliases the caller's JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_copy(v) for v in value]
    return value


def feature_spec_from_config(cfg: Config, **choices: Any) -> FeatureSpec:
    """The feature spec the config describes.

    Column roles, ratios and log columns come from cfg.data, cluster and neighbour settings from
    cfg.features; `choices` give `imputer` and `n_clusters` (no config key holds them) and may
    replace any other field, e.g. `seed` in a test.
    """
    roles = {"numeric", "geo", "categorical"}
    if roles & set(choices):
        raise ConfigError(
            f"features {sorted(roles & set(choices))} come from config data.columns roles; do not pass them as choices"
        )
    data, features = cfg.data, cfg.features
    from_config = {
        "numeric": data.features("numeric"),
        "geo": data.features("geo"),
        "categorical": {c: list(data.columns[c].categories or []) for c in data.features("categorical")},
        "ratios": [asdict(r) for r in data.ratios],
        "log_columns": list(data.log_columns),
        "gamma": features.gamma,
        "cluster_weighted_by_target": features.weighted_by_target,
        "cluster_n_init": features.n_init,
        "neighbor_ks": list(features.neighbor_ks),
        "seed": features.seed,
    }
    return FeatureSpec.from_dict({**from_config, **choices})


def feature_spec_for(cfg: Config, imputer: Mapping[str, Any], n_clusters: int) -> FeatureSpec:
    """The spec of the features step (and the benchmark floor) for one candidate K."""
    return feature_spec_from_config(cfg, imputer=dict(imputer), n_clusters=n_clusters)

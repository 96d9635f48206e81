"""FeatureSpec: everything the preprocessor needs, saved as feature_spec.json by the features step."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from housing_mlops.config.schema import Config, DataConfig
from housing_mlops.errors import ConfigError
from housing_mlops.features.imputation import make_imputer
from housing_mlops.features.transformers import _RATIO_KEYS, DEFAULT_LOG_COLUMNS, DEFAULT_RATIOS, is_int


@dataclass(frozen=True)
class FeatureSpec:
    """Everything build_preprocessor needs; saved as feature_spec.json by the features step."""

    numeric: list[str]  # non-geo numeric feature columns
    geo: list[str]  # coordinates, clustered by ClusterSimilarity
    categorical: dict[str, list[str]]  # column -> allowed categories (one-hot, in this order)
    imputer: dict[str, Any] = field(default_factory=lambda: {"strategy": "median", "params": {}})
    ratios: list[dict[str, str]] = field(default_factory=lambda: [dict(r) for r in DEFAULT_RATIOS])
    log_columns: list[str] = field(default_factory=lambda: list(DEFAULT_LOG_COLUMNS))
    n_clusters: int = 10
    gamma: float = 1.0
    cluster_weighted_by_target: bool = False
    cluster_n_init: int = 1  # KMeans restarts; re-fitted in every CV fold, so keep it small
    neighbor_ks: list[int] = field(default_factory=lambda: [3, 10, 30])  # [] = no neighbour feature
    seed: int = 42

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
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
            if not isinstance(ratio, Mapping) or set(ratio) != set(_RATIO_KEYS):
                fail(f"ratios[{i}]", ratio, f"a mapping with exactly the keys {list(_RATIO_KEYS)}")
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
        make_imputer(self.imputer)  # raises ConfigError naming impute.strategy / impute.params

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (lists, dicts, str, int, float, bool, None)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"config key 'features.{unknown[0]}' is not allowed: expected keys among {sorted(known)}")
        return cls(**{k: _plain_copy(v) for k, v in data.items()})


def _plain_copy(value: Any) -> Any:
    """Own copies of nested lists/dicts, so the spec never aliases the caller's JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_copy(v) for v in value]
    return value


def feature_spec_from_config(data: DataConfig, **choices: Any) -> FeatureSpec:
    """Column roles from config data.columns; everything else from `choices` (FeatureSpec fields).

    Unless given explicitly, ratios and log columns default to the California ones whose columns
    this dataset has, so another dataset needs only its own config/data/*.yaml.
    """
    roles = {"numeric", "geo", "categorical"}
    if roles & set(choices):
        raise ConfigError(
            f"features {sorted(roles & set(choices))} come from config data.columns roles; do not pass them as choices"
        )
    numeric = data.features("numeric")
    categorical = {c: list(data.columns[c].categories or []) for c in data.features("categorical")}
    choices.setdefault(
        "ratios",
        [dict(r) for r in DEFAULT_RATIOS if {r["numerator"], r["denominator"]} <= set(numeric)],
    )
    choices.setdefault("log_columns", [c for c in DEFAULT_LOG_COLUMNS if c in numeric])
    return FeatureSpec.from_dict(
        {"numeric": numeric, "geo": data.features("geo"), "categorical": categorical, **choices}
    )


def feature_spec_for(cfg: Config, imputer: Mapping[str, Any], n_clusters: int) -> FeatureSpec:
    """The spec of the features step (and the benchmark floor) for one candidate K."""
    return feature_spec_from_config(
        cfg.data,
        imputer=dict(imputer),
        ratios=[asdict(r) for r in cfg.data.ratios],
        log_columns=list(cfg.data.log_columns),
        n_clusters=n_clusters,
        gamma=cfg.features.gamma,
        cluster_weighted_by_target=cfg.features.weighted_by_target,
        cluster_n_init=cfg.features.n_init,
        neighbor_ks=list(cfg.features.neighbor_ks),
        seed=cfg.features.seed,
    )

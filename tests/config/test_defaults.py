"""One home for every default: config/*.yaml. The code declares none, so it cannot disagree.

The schema's section dataclasses declare no default at all (the YAML gives every key); entry
schemas (one item of a dict or list the user extends) default their optional keys only to an
"absent" value; FeatureSpec, the transformers and the imputers take every value from config; and
what the preprocessor is built with equals what the YAML says.
"""

import dataclasses
import importlib
import inspect
import pkgutil
import types
import typing
from pathlib import Path
from typing import Any

import pytest

import housing_mlops.config
import housing_mlops.features
from housing_mlops.config import capture, data, modeling, monitor, registry, schema, serving, webhook
from housing_mlops.config.loading import load_config
from housing_mlops.errors import ConfigError
from housing_mlops.features.imputation import PARAMS, make_imputer
from housing_mlops.features.preprocessing import build_preprocessor
from housing_mlops.features.spec import FeatureSpec, feature_spec_for
from tests.conftest import ROOT

MEDIAN = {"strategy": "median", "params": {}}


def _dataclass_args(annotation: Any) -> list[type]:
    """Dataclasses inside a field annotation such as `dict[str, X]` or `list[X] | None`."""
    if dataclasses.is_dataclass(annotation):
        return [annotation]
    return [c for arg in typing.get_args(annotation) for c in _dataclass_args(arg)]


def schema_classes() -> tuple[set[type], set[type]]:
    """(sections, entries) reachable from Config: a field typed X is a section, dict/list of X an entry."""
    sections, entries, todo = {schema.Config}, set(), [schema.Config]
    while todo:
        for f in dataclasses.fields(todo.pop()):
            kind = f.type if dataclasses.is_dataclass(f.type) else None
            for cls in _dataclass_args(f.type):
                group = sections if cls is kind else entries
                if cls not in sections | entries:
                    todo.append(cls)
                group.add(cls)
    return sections, entries


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def test_every_schema_dataclass_is_reached_and_classified() -> None:
    sections, entries = schema_classes()
    declared = {
        c
        for module in (capture, data, modeling, monitor, registry, schema, serving, webhook)
        for c in vars(module).values()
        if inspect.isclass(c) and dataclasses.is_dataclass(c) and c.__module__ == module.__name__
    }
    assert sections | entries == declared
    assert not sections & entries
    assert {data.ColumnConfig, modeling.SpaceParam, modeling.ModelConfig} <= entries


@pytest.mark.parametrize("cls", sorted(schema_classes()[0], key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_a_section_declares_no_default(cls: type) -> None:
    with_default = [f.name for f in dataclasses.fields(cls) if _default(f) is not dataclasses.MISSING]
    assert with_default == [], f"{cls.__name__} fields {with_default}: give them in config/*.yaml instead"


@pytest.mark.parametrize("cls", sorted(schema_classes()[1], key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_an_entry_defaults_only_its_optional_keys_to_absent(cls: type) -> None:
    for f in dataclasses.fields(cls):
        value = _default(f)
        if value is dataclasses.MISSING:
            continue  # a required key
        assert value is None or value is False or (isinstance(value, dict | list) and not value), (
            f"{cls.__name__}.{f.name} = {value!r}: only null, false or empty may stand for a key not given"
        )


def test_no_module_of_the_config_or_features_layer_keeps_a_default_constant() -> None:
    # DEFAULT_RATIOS / DEFAULT_LOG_COLUMNS / DEFAULT_PARAMS repeated config/data and config/impute.
    found = [
        f"{info.name}.{name}"
        for package in (housing_mlops.config, housing_mlops.features)
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
        for name in vars(importlib.import_module(info.name))
        if "DEFAULT" in name.upper()
    ]
    assert found == []


def test_feature_spec_declares_no_default() -> None:
    with_default = [f.name for f in dataclasses.fields(FeatureSpec) if _default(f) is not dataclasses.MISSING]
    assert with_default == []


def _config_key_names(plain: dict[str, Any]) -> set[str]:
    """Every key name of the composed config, except data column names and model parameters."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in plain.items() if k not in ("data", "models")})
    walk({k: v for k, v in plain["data"].items() if k != "columns"})
    names.update(k for k in plain["models"] if k != "zoo")
    return names


def _library_callables(*packages: types.ModuleType) -> list[tuple[str, Any]]:
    found = []
    for package in packages:
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if getattr(obj, "__module__", None) != module.__name__:
                    continue
                if inspect.isfunction(obj):
                    found.append((f"{info.name}.{name}", obj))
                elif inspect.isclass(obj) and not dataclasses.is_dataclass(obj):
                    found += [
                        (f"{info.name}.{name}.{attr}", fn) for attr, fn in vars(obj).items() if inspect.isfunction(fn)
                    ]
    return found


def test_no_function_of_the_config_or_features_layer_defaults_a_config_key() -> None:
    # e.g. NeighborTargetFeatures(n_neighbors=(3, 10, 30)) or make_imputer's max_iter: the value
    # would live twice. Dataclasses are checked above (entries may default optional keys to absent).
    _, plain = load_config(ROOT / "config", [])
    keys = _config_key_names(plain)
    offenders = [
        f"{where}({p.name}={p.default!r})"
        for where, fn in _library_callables(housing_mlops.config, housing_mlops.features)
        for p in inspect.signature(fn).parameters.values()
        if p.name in keys and p.default is not p.empty
    ]
    assert offenders == []


def test_make_imputer_has_no_param_of_its_own(cfg) -> None:
    # Each strategy's params are exactly what config impute.strategies gives, and all are needed.
    assert {name: set(params) for name, params in cfg.impute.strategies.items()} == {
        name: set(keys) for name, keys in PARAMS.items()
    }
    for name, params in cfg.impute.strategies.items():
        for key in params:
            with pytest.raises(ConfigError, match=rf"impute\.params\.{key}' is missing"):
                make_imputer({"strategy": name, "params": {k: v for k, v in params.items() if k != key}}, seed=0)


@pytest.mark.parametrize("strategy", ["median", "knn", "iterative"])
def test_the_preprocessor_is_built_with_the_yaml_values(cfg, strategy: str) -> None:
    imputer = {"strategy": strategy, "params": cfg.impute.strategies[strategy]}
    spec = feature_spec_for(cfg, imputer, n_clusters=7)
    built = build_preprocessor(spec).get_params(deep=True)
    features, data = cfg.features, cfg.data
    geo = built["features__geo"]
    assert (geo.n_clusters, geo.gamma, geo.weighted_by_target, geo.n_init, geo.random_state) == (
        7,
        features.gamma,
        features.weighted_by_target,
        features.n_init,
        features.seed,
    )
    assert list(built["features__neighbors__neighbortargetfeatures__n_neighbors"]) == features.neighbor_ks
    assert built["features__ratio__ratiofeatures__ratios"] == [dataclasses.asdict(r) for r in data.ratios]
    log_branch = next(cols for name, _, cols in built["features__transformers"] if name == "log")
    assert log_branch == data.log_columns
    made = built["impute__numeric"]
    if strategy == "knn":
        assert made.n_neighbors == cfg.impute.strategies["knn"]["n_neighbors"]
    if strategy == "iterative":
        given = cfg.impute.strategies["iterative"]
        assert (made.max_iter, made.estimator.n_estimators, made.estimator.max_depth) == (
            given["max_iter"],
            given["n_estimators"],
            given["max_depth"],
        )
        assert made.random_state == made.estimator.random_state == features.seed


def test_a_key_missing_from_the_yaml_fails_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    for path in (ROOT / "config").rglob("*.yaml"):
        target = config / path.relative_to(ROOT / "config")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    sweep = config / "sweep" / "default.yaml"
    sweep.write_text("\n".join(line for line in sweep.read_text().splitlines() if not line.startswith("timeout_s:")))
    with pytest.raises(ConfigError, match=r"key 'sweep\.timeout_s' has no value: set it in config/sweep/") as info:
        load_config(config, [])
    assert "\n" not in str(info.value)

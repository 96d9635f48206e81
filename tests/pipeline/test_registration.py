"""Registration as a transaction, against a real SQLite MLflow store (no mocks): the gate
re-scores the champion, a failure after the version exists leaves nothing behind, and
interrupted registrations are pruned."""

import dataclasses
from collections.abc import Callable

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.base import RegressorMixin
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import Ridge

from housing_mlops.config.registry import RegistryConfig
from housing_mlops.config.schema import Config
from housing_mlops.modeling.metrics import wmape
from housing_mlops.pipeline import tracking
from housing_mlops.pipeline.registration import VersionRecord, register_version, save_args
from housing_mlops.registry import store
from housing_mlops.registry.gate import Contender, Verdict
from housing_mlops.tags import STEP_TAG


def truth(X: pd.DataFrame) -> np.ndarray:
    return 1000.0 + 30.0 * X["a"] - 20.0 * X["b"]


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.uniform(0, 10, 300), "b": rng.uniform(0, 10, 300)})
    y = pd.Series(truth(X) + rng.normal(0, 1.0, 300))
    return X[:200], y[:200], X[200:].reset_index(drop=True), y[200:].reset_index(drop=True)


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module: creating its schema takes seconds; each test has its own model."""
    return f"sqlite:///{tmp_path_factory.mktemp('registration')}/mlflow.db"


@pytest.fixture
def client(store_uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(store_uri)
    experiment = tracking.ensure_experiment(MlflowClient(), "registration-test")  # artifacts beside the db
    mlflow.set_experiment(experiment_id=experiment)
    return MlflowClient()


@pytest.fixture
def reg(request: pytest.FixtureRequest, cfg: Config) -> RegistryConfig:
    return dataclasses.replace(cfg.registry, model_name=f"model_{request.node.name}")


def log(model: RegressorMixin, X: pd.DataFrame, step: str = "register") -> tuple[str, list, str]:
    """Log `model` exactly as the register step does; return (model URI, input schema, run id)."""
    args = save_args(model, X)
    with mlflow.start_run() as run:
        mlflow.set_tag(STEP_TAG, step)
        info = mlflow.sklearn.log_model(model, name="model", **args)
    return info.model_uri, args["signature"].inputs.to_dict(), run.info.run_id


def challenger_of(model: RegressorMixin, schema: list, X_test: pd.DataFrame, y_test: pd.Series) -> Contender:
    """The challenger's facts as the register step gives them: scored on the sealed test rows."""
    predicted = model.predict(X_test)
    return Contender("", wmape(y_test, predicted), 5.0, schema, predicted)


def register(
    client: MlflowClient,
    cfg: RegistryConfig,
    model: RegressorMixin,
    data: tuple,
    record: Callable[[str, Verdict], VersionRecord] | None = None,
) -> tuple[str, Verdict]:
    X, y, X_test, y_test = data
    model.fit(X, y)
    uri, schema, _ = log(model, X)
    challenger = challenger_of(model, schema, X_test, y_test)

    def card(version: str, verdict: Verdict) -> VersionRecord:
        return VersionRecord(f"card of v{version}", {"promotion.verdict": "promote" if verdict.promote else "hold"})

    return register_version(client, cfg, uri, challenger, X_test, y_test, record or card)


def alias(client: MlflowClient, cfg: RegistryConfig, name: str) -> str | None:
    found = store.version_by_alias(client, cfg.model_name, name)
    return None if found is None else str(found.version)


def versions(client: MlflowClient, cfg: RegistryConfig) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{cfg.model_name}'"))


def test_first_version_is_complete_champion_and_predicts_like_the_fitted_model(
    client: MlflowClient, reg: RegistryConfig, data
) -> None:
    _, _, X_test, _ = data
    model = Ridge(alpha=1e-6)
    version, verdict = register(client, reg, model, data)
    assert version == "1"
    assert verdict.promote
    assert verdict.reason.endswith("no champion yet")
    assert alias(client, reg, "champion") == alias(client, reg, "challenger") == "1"
    registered = client.get_model_version(reg.model_name, "1")
    assert registered.description == "card of v1"
    assert registered.tags[store.COMPLETE_TAG] == "complete"
    assert registered.tags["promotion.verdict"] == "promote"
    assert store.history(client, reg.model_name) == ["1"]

    served = mlflow.pyfunc.load_model(f"models:/{reg.model_name}@champion").predict(X_test)
    assert np.isfinite(served).all()
    np.testing.assert_allclose(served, model.predict(X_test), rtol=1e-12)
    np.testing.assert_allclose(served, truth(X_test), atol=1.0)  # the noise is N(0, 1): the fit is close


def test_failure_after_the_version_exists_discards_it_and_keeps_the_champion(
    client: MlflowClient, reg: RegistryConfig, data
) -> None:
    register(client, reg, DummyRegressor(), data)  # v1: a weak champion any real model beats
    seen: list[tuple[str, Verdict]] = []

    def failing(version: str, verdict: Verdict) -> VersionRecord:
        seen.append((version, verdict))
        raise RuntimeError("disk full while writing promotion.json")

    with pytest.raises(RuntimeError, match="disk full"):
        register(client, reg, Ridge(alpha=1e-6), data, record=failing)
    ((version, verdict),) = seen
    assert version == "2"
    assert verdict.promote, "the failure must come after a version the gate would promote"
    assert versions(client, reg) == ["1"]
    assert alias(client, reg, "champion") == alias(client, reg, "challenger") == "1"
    assert store.history(client, reg.model_name) == ["1"]

    again, verdict = register(client, reg, Ridge(alpha=1e-6), data)  # the retry goes through
    assert verdict.promote
    assert alias(client, reg, "champion") == again
    assert versions(client, reg) == ["1", again]


def test_gate_rescores_the_champion_on_the_challenger_s_test_set(
    client: MlflowClient, reg: RegistryConfig, data
) -> None:
    _, _, X_test, y_test = data
    champion = Ridge(alpha=1e-6)
    register(client, reg, champion, data)
    dummy = DummyRegressor()
    version, verdict = register(client, reg, dummy, data)
    champion_now = wmape(y_test, champion.predict(X_test))
    assert not verdict.promote
    assert verdict.champion == "1"
    assert verdict.challenger == version == "2"
    # the interval compares the two versions on the challenger's test rows, the champion re-scored
    assert verdict.difference is not None
    assert verdict.difference.estimate == pytest.approx(wmape(y_test, dummy.predict(X_test)) - champion_now, abs=1e-12)
    assert 0 < verdict.difference.low <= verdict.difference.high
    assert verdict.reason.startswith(
        f"does not beat champion v1 by registry.min_improvement {reg.min_improvement}: "
        f"wMAPE difference {verdict.difference.estimate:.4f} [{verdict.difference.low:.4f}, "
    )
    assert alias(client, reg, "champion") == "1"
    assert alias(client, reg, "challenger") == "2"
    held = client.get_model_version(reg.model_name, "2")
    assert held.tags[store.COMPLETE_TAG] == "complete"
    assert held.tags["promotion.verdict"] == "hold"


def test_the_champion_s_latency_is_its_cpu_time_p95_else_its_wall_clock_p95(
    client: MlflowClient, reg: RegistryConfig, data
) -> None:
    _, _, X_test, y_test = data
    register(client, reg, Ridge(alpha=1e-6), data)
    assert np.isnan(store.contender(client, reg.model_name, "1", X_test, y_test).p95_latency_ms)
    client.set_model_version_tag(reg.model_name, "1", "hardware.latency_p95_ms", "12.5")  # registered before
    assert store.contender(client, reg.model_name, "1", X_test, y_test).p95_latency_ms == 12.5
    client.set_model_version_tag(reg.model_name, "1", "hardware.cpu_p95_ms", "0.75")
    assert store.contender(client, reg.model_name, "1", X_test, y_test).p95_latency_ms == 0.75


def test_auto_promote_off_records_the_verdict_only(client: MlflowClient, reg: RegistryConfig, data) -> None:
    register(client, reg, DummyRegressor(), data)
    manual = dataclasses.replace(reg, auto_promote=False)
    version, verdict = register(client, manual, Ridge(alpha=1e-6), data)
    assert verdict.promote
    assert alias(client, reg, "champion") == "1"
    assert alias(client, reg, "challenger") == version


def test_discard_of_a_version_that_became_champion_gives_the_alias_back(
    client: MlflowClient, reg: RegistryConfig, data
) -> None:
    register(client, reg, DummyRegressor(), data)
    register(client, reg, Ridge(alpha=1e-6), data)
    assert alias(client, reg, "champion") == "2"
    assert store.history(client, reg.model_name) == ["1", "2"]
    store.discard(client, reg.model_name, "2")
    assert versions(client, reg) == ["1"]
    assert alias(client, reg, "champion") == "1"
    assert store.history(client, reg.model_name) == ["1"]


def test_versions_of_dead_register_runs_are_pruned_and_running_ones_left(
    client: MlflowClient, reg: RegistryConfig, data, caplog: pytest.LogCaptureFixture
) -> None:
    X, y, _, _ = data
    register(client, reg, DummyRegressor(), data)
    dead_uri, _, dead_run = log(DummyRegressor().fit(X, y), X)
    live_uri, _, live_run = log(DummyRegressor().fit(X, y), X)
    store.ensure_model(client, reg.model_name, "")
    dead = str(mlflow.register_model(dead_uri, reg.model_name).version)
    live = str(mlflow.register_model(live_uri, reg.model_name).version)
    client.set_terminated(dead_run, "KILLED")
    client.set_terminated(live_run, "RUNNING")  # a register run of a concurrent pipeline, still at work
    warnings: list[str] = []

    X, y, X_test, y_test = data
    model = Ridge(alpha=1e-6).fit(X, y)
    uri, schema, _ = log(model, X)
    challenger = challenger_of(model, schema, X_test, y_test)
    with caplog.at_level("INFO"):
        version, _ = register_version(
            client, reg, uri, challenger, X_test, y_test, lambda v, _: VersionRecord("", {}), warnings.append
        )
    assert dead not in versions(client, reg)
    assert live in versions(client, reg)
    assert version in versions(client, reg)
    assert f"deleted half-registered version(s) {dead} of {reg.model_name}" in caplog.text
    assert warnings == [
        f"{reg.model_name} version(s) {live} lack tag {store.COMPLETE_TAG} and their register run is still RUNNING "
        "(registering elsewhere, or interrupted): left alone"
    ]

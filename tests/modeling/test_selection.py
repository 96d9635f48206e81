"""Model selection: isolation of failing and slow candidates, ranking, the sealed test set."""

import dataclasses
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from housing_mlops.errors import HousingError, SealedTestSetError
from housing_mlops.modeling.selection import CandidateResult, evaluate_grid, leaderboard, run_isolated, winner
from housing_mlops.pipeline.runner import StepContext


def _rows(value: float) -> list[dict]:
    return [{"params": {"a": 1}, "cv_wmape": value, "cv_wmape_std": 0.0, "fit_s": 0.1}]


def _raise(message: str) -> list[dict]:
    raise ValueError(message)


def _sleep(seconds: float) -> list[dict]:
    time.sleep(seconds)
    return _rows(0.1)


def test_failing_and_slow_candidates_do_not_stop_the_others() -> None:
    ok = run_isolated("good", _rows, (0.2,), timeout_s=None)
    failed = run_isolated("bad", _raise, ("max_depth must be >= 1",), timeout_s=60)
    slow = run_isolated("slow", _sleep, (30.0,), timeout_s=1.0)
    assert ok.status == "ok"
    assert ok.best["cv_wmape"] == 0.2
    assert failed.status == "failed"
    assert failed.error.startswith("ValueError: max_depth must be >= 1")
    assert slow.status == "timeout"
    assert "select.candidate_timeout_s=1" in slow.error
    assert slow.seconds < 10
    board = leaderboard([failed, slow, ok])
    assert list(board["family"]) == ["good", "bad", "slow"]
    assert winner(board)["family"] == "good"


@pytest.mark.parametrize("how", ["path", "module"])
def test_a_candidates_process_does_not_run_the_main_module_again(tmp_path: Path, how: str) -> None:
    # A step's main module imports MLflow and matplotlib: each family's process paid them again.
    marker = tmp_path / "ran"
    main = tmp_path / "step_main.py"
    main.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            with Path({str(marker)!r}).open("a") as out:
                out.write(__name__ + "\\n")
            from housing_mlops.modeling.selection import run_isolated
            if __name__ == "__main__":
                assert run_isolated("x", list, (), timeout_s=60).status == "ok"
            """
        )
    )
    command = [str(main)] if how == "path" else ["-m", "step_main"]
    env = os.environ | {"PYTHONPATH": str(tmp_path)}
    subprocess.run([sys.executable, *command], cwd=tmp_path, env=env, check=True, timeout=120)
    assert marker.read_text().split() == ["__main__"]


def test_all_candidates_failing_is_a_clear_error() -> None:
    board = leaderboard(
        [
            CandidateResult("a", "failed", 0.1, error="ValueError: x"),
            CandidateResult("b", "timeout", 9.0, error="exceeded"),
        ]
    )
    with pytest.raises(HousingError, match=r"every candidate in models\.candidates failed"):
        winner(board)


def test_ties_go_to_the_faster_family() -> None:
    slow = CandidateResult("slow", "ok", 1.0, rows=[{**_rows(0.1)[0], "fit_s": 5.0}])
    fast = CandidateResult("fast", "ok", 1.0, rows=[{**_rows(0.1)[0], "fit_s": 1.0}])
    assert winner(leaderboard([slow, fast]))["family"] == "fast"


def test_a_real_family_fails_alone_in_its_process(cfg, sample_csv: Path, tmp_path: Path) -> None:
    from housing_mlops.features.spec import feature_spec_from_config

    data = pd.read_csv(sample_csv).dropna()
    X, y = data[cfg.data.features()], data[cfg.data.target]
    spec = feature_spec_from_config(cfg, n_clusters=4, imputer={"strategy": "median", "params": {}})
    broken = cfg.models.zoo["decision_tree"]
    broken = type(broken)(estimator=broken.estimator, fixed={"max_depth": -3}, fast={"min_samples_leaf": [5]})
    args = (broken, "fast", spec, X, y, 2, 0, 1, str(tmp_path))
    result = run_isolated("decision_tree", evaluate_grid, args, timeout_s=120)
    assert result.status == "failed"
    assert "max_depth" in result.error
    good = run_isolated("ridge", evaluate_grid, (cfg.models.zoo["ridge"], *args[1:]), timeout_s=120)
    assert good.status == "ok"
    assert len(good.rows) == len(cfg.models.zoo["ridge"].fast["alpha"])


def test_the_test_set_is_sealed_before_register(cfg, tmp_path: Path) -> None:
    for step in ("impute", "features", "select", "sweep"):
        ctx = StepContext(step, cfg, {}, tmp_path, tmp_path, {}, None, "run", "0", "key")  # type: ignore[arg-type]
        with pytest.raises(SealedTestSetError, match=f"step '{step}' tried to open test.parquet"):
            ctx.input("split", "test.parquet")


def test_grid_winner_is_clipped_into_the_search_space(cfg) -> None:
    from housing_mlops.config.modeling import SpaceParam
    from housing_mlops.modeling.tuning import clip_to_space

    # plus a categorical: an unknown choice is dropped, not clipped
    loss = SpaceParam(type="categorical", choices=["absolute_error", "squared_error"])
    rounds = SpaceParam(type="int", low=100, high=500, step=50)
    space = cfg.models.zoo["hist_gradient_boosting"].space | {"loss": loss, "max_iter": rounds}
    values = {"l2_regularization": 0.0, "max_iter": 10_000, "loss": "poisson", "learning_rate": 0.1}
    clipped = clip_to_space(values, space)
    assert clipped == {
        "l2_regularization": space["l2_regularization"].low,
        "max_iter": 500,
        "learning_rate": 0.1,
    }


def _ok(family: str, wmape: float, fit_s: float = 0.1) -> CandidateResult:
    row = {"params": {"alpha": wmape}, "cv_wmape": wmape, "cv_wmape_std": 0.01, "cv_rmse": 1000 * wmape, "fit_s": fit_s}
    return CandidateResult(family, "ok", 2.0, rows=[row])


def test_the_selection_record_names_the_winner_and_the_runner_up(cfg) -> None:
    from housing_mlops.modeling.selection import selection_record

    board = leaderboard([_ok("ridge", 0.21), CandidateResult("lasso", "failed", 0.1, error="x"), _ok("ridge2", 0.2)])
    assert list(board["family"]) == ["ridge2", "ridge", "lasso"]
    assert list(board["rank"]) == [1, 2, 3]
    models = dataclasses.replace(cfg.models, candidates=["ridge"], zoo={"ridge2": cfg.models.zoo["ridge"]})
    record = selection_record(board, models, folds=4)
    assert record["family"] == "ridge2"
    assert record["estimator"] == "sklearn.linear_model.Ridge"
    assert record["params"] == {"alpha": 0.2}
    assert record["folds"] == 4
    assert record["cv"] == {"wmape": 0.2, "wmape_std": 0.01, "rmse": 200.0}
    assert record["why"] == "lowest mean CV wMAPE over 4 folds on train: 0.2000; next best ridge 0.2100"


def test_select_model_ranks_real_families_in_process(cfg, full_data: pd.DataFrame, tmp_path: Path) -> None:
    from housing_mlops.features.spec import feature_spec_from_config
    from housing_mlops.modeling.selection import select_model

    data = full_data.sample(300, random_state=4)
    X, y = data[cfg.data.features()], data[cfg.data.target]
    spec = feature_spec_from_config(cfg, n_clusters=4, imputer={"strategy": "median", "params": {}}, neighbor_ks=[3])
    models = dataclasses.replace(cfg.models, candidates=["ridge", "decision_tree"], grid="fast")
    select_cfg = dataclasses.replace(cfg.select, folds=2, seed=0, n_jobs=1)
    seen: list[str] = []
    chosen = select_model(
        models, select_cfg, spec, X, y, str(tmp_path), isolated=False, on_candidate=lambda r: seen.append(r.family)
    )
    assert seen == ["ridge", "decision_tree"]
    assert [r.status for r in chosen.results] == ["ok", "ok"]
    assert len(chosen.results[0].rows) == len(cfg.models.zoo["ridge"].fast["alpha"])
    board = chosen.board
    assert board["cv_wmape"].is_monotonic_increasing
    assert 0 < board["cv_wmape"].iloc[0] < 1
    assert chosen.record["family"] == board["family"].iloc[0] == chosen.best["family"]
    best = min(r.best["cv_wmape"] for r in chosen.results)
    assert chosen.record["cv"]["wmape"] == round(best, 6)

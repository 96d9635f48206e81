"""Model selection: each family's grid cross-validated on train.

Each family runs in an isolated process with a time limit, so one failing or slow family never
stops the others.
"""

import contextlib
import json
import logging
import multiprocessing
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import pandas as pd
from joblib import Memory, parallel_config

from housing_mlops.config.modeling import ModelConfig, ModelsConfig, SelectConfig
from housing_mlops.errors import HousingError
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling.evaluation import cross_validate
from housing_mlops.modeling.zoo import build_estimator, grid, make_pipeline

log = logging.getLogger(__name__)

METRIC_COLUMNS = (
    "wmape",
    "mae",
    "rmse",
    "r2",
    "mape",
    "smape",
    "median_ape",
    "within_5pct",
    "within_10pct",
    "within_15pct",
)


@dataclass
class CandidateResult:
    """One family's grid results, or why it has none."""

    family: str
    status: str  # ok | failed | timeout
    seconds: float
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per grid combination
    error: str = ""

    @property
    def best(self) -> dict[str, Any]:
        """The grid point of lowest CV wMAPE (ties: faster fit)."""
        return min(self.rows, key=lambda r: (r["cv_wmape"], r["fit_s"]))


def summarise_folds(params: dict[str, Any], folds: pd.DataFrame) -> dict[str, Any]:
    """Mean (and std of wMAPE) over folds, train scores and the overfitting gap."""
    row: dict[str, Any] = {"params": params}
    for metric in METRIC_COLUMNS:
        row[f"cv_{metric}"] = float(folds[metric].mean())
    row["cv_wmape_std"] = float(folds["wmape"].std(ddof=0))
    if "train_wmape" in folds:
        row["train_wmape"] = float(folds["train_wmape"].mean())
        row["gap_wmape"] = row["cv_wmape"] - row["train_wmape"]
    row["fit_s"] = float(folds["fit_s"].mean())
    row["predict_s"] = float(folds["predict_s"].mean())
    return row


def evaluate_grid(
    model: ModelConfig,
    grid_name: str,
    spec: FeatureSpec,
    X: pd.DataFrame,
    y: pd.Series,
    n_folds: int,
    seed: int,
    n_jobs: int,
    cache_dir: str,
) -> list[dict[str, Any]]:
    """Cross-validate every combination of one family's grid; one summary row each."""
    memory = Memory(cache_dir, verbose=0)
    return [
        summarise_folds(
            params,
            cross_validate(
                make_pipeline(spec, build_estimator(model, params), memory),
                X,
                y,
                n_folds,
                seed,
                n_jobs=n_jobs,
                with_train=True,
            ),
        )
        for params in grid(model, grid_name)
    ]


def _child(sender: Connection, work: Callable[..., list[dict[str, Any]]], args: tuple) -> None:
    try:
        # threads, not loky processes: loky workers started inside this child hung it
        with parallel_config(backend="threading"):
            sender.send(("ok", work(*args)))
    except BaseException as exc:  # reported to the parent, never swallowed
        first = f"{type(exc).__name__}: {exc}".splitlines()[0]
        sender.send(("failed", first + "\n" + traceback.format_exc(limit=3)))


@contextlib.contextmanager
def _main_not_inherited() -> Iterator[None]:
    """Processes started inside do not run this process's main module again.

    A forkserver child imports the parent's `__main__` (as `__mp_main__`) before its target. The
    target and its work are importable functions that need nothing from it, and a step's main
    module imports MLflow and matplotlib: 1.4 s a child (measured), once per family.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")  # no __spec__, no __file__: nothing to import
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def run_isolated(
    family: str, work: Callable[..., list[dict[str, Any]]], args: tuple, timeout_s: float | None
) -> CandidateResult:
    """Run `work(*args)` in a fresh process; a raise or a timeout (None: none) becomes a failed result.

    A forkserver child starts clean: forking the step process itself, which holds MLflow's
    threads and locks, can deadlock the child (seen with loky workers inside it).
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["housing_mlops.modeling.selection"])
    receiver, sender = context.Pipe(duplex=False)
    started = time.perf_counter()
    process = context.Process(target=_child, args=(sender, work, args))
    with _main_not_inherited():
        process.start()
    ready = receiver.poll(timeout_s)
    seconds = time.perf_counter() - started
    if not ready:
        process.kill()
        process.join()
        return CandidateResult(family, "timeout", seconds, error=f"exceeded select.candidate_timeout_s={timeout_s:g}")
    status, payload = receiver.recv()
    process.join()
    if status == "ok":
        return CandidateResult(family, "ok", seconds, rows=payload)
    return CandidateResult(family, "failed", seconds, error=payload)


def leaderboard(results: list[CandidateResult]) -> pd.DataFrame:
    """Best combination per family, ranked by CV wMAPE (ties: faster fit); failures last."""
    records = []
    for result in results:
        base = {
            "family": result.family,
            "status": result.status,
            "seconds": result.seconds,
            "combos": len(result.rows),
            "error": result.error.split("\n")[0],
        }
        if result.status == "ok":
            best = result.best
            records.append(base | best | {"params": json.dumps(best["params"], sort_keys=True)})
        else:
            records.append(base)
    board = pd.DataFrame(records)
    if "cv_wmape" not in board:
        board["cv_wmape"] = float("nan")
        board["fit_s"] = float("nan")
    board = board.sort_values(["cv_wmape", "fit_s"], na_position="last").reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board


def winner(board: pd.DataFrame) -> pd.Series:
    """The top-ranked family that finished; a HousingError when none did."""
    ok = board[board["status"] == "ok"]
    if ok.empty:
        errors = "; ".join(f"{r.family}: {r.error}" for r in board.itertuples())
        raise HousingError(f"every candidate in models.candidates failed ({errors})")
    return ok.iloc[0]


@dataclass(frozen=True)
class Selection:
    """Every candidate's result, the ranked leaderboard and the content of selection.json."""

    results: list[CandidateResult]
    board: pd.DataFrame
    record: dict[str, Any]

    @property
    def best(self) -> pd.Series:
        """The winning leaderboard row."""
        return winner(self.board)


def selection_record(board: pd.DataFrame, models: ModelsConfig, folds: int) -> dict[str, Any]:
    """selection.json: the winner's family, estimator, grid params, CV means and why it won."""
    best = winner(board)
    ranked = board[board["status"] == "ok"]
    runner_up = f"; next best {ranked.iloc[1]['family']} {ranked.iloc[1]['cv_wmape']:.4f}" if len(ranked) > 1 else ""
    return {
        "family": best["family"],
        "estimator": models.zoo[best["family"]].estimator,
        "params": json.loads(best["params"]),
        "cv": {k.removeprefix("cv_"): round(float(best[k]), 6) for k in map(str, board.columns) if k.startswith("cv_")},
        "folds": folds,
        "why": f"lowest mean CV wMAPE over {folds} folds on train: {best['cv_wmape']:.4f}{runner_up}",
    }


def candidate_summary(result: CandidateResult) -> str:
    """One line: the family's best CV wMAPE, or its failure."""
    if result.status == "ok":
        return f"CV wMAPE {result.best['cv_wmape']:.4f} ± {result.best['cv_wmape_std']:.4f}"
    return f"{result.status.upper()}: {result.error.splitlines()[0]}"


def _in_process(family: str, args: tuple) -> CandidateResult:
    started = time.perf_counter()
    # the threading backend the isolated child uses, so that both paths compute alike
    with parallel_config(backend="threading"):
        rows = evaluate_grid(*args)
    return CandidateResult(family, "ok", time.perf_counter() - started, rows=rows)


def select_model(
    models: ModelsConfig,
    cfg: SelectConfig,
    spec: FeatureSpec,
    X: pd.DataFrame,
    y: pd.Series,
    cache_dir: str,
    isolated: bool = True,
    on_candidate: Callable[[CandidateResult], None] | None = None,
) -> Selection:
    """Cross-validate every family of models.candidates in turn and rank them.

    `isolated` runs each family in its own process under select.candidate_timeout_s (the step);
    without it a family runs in this process and its error propagates (the benchmark floor).
    `on_candidate` sees each result as soon as it is known (the step logs a nested run).
    """
    results: list[CandidateResult] = []
    for i, family in enumerate(models.candidates, start=1):
        model = models.zoo[family]
        args = (model, models.grid, spec, X, y, cfg.folds, cfg.seed, cfg.n_jobs, cache_dir)
        if isolated:
            result = run_isolated(family, evaluate_grid, args, cfg.candidate_timeout_s)
        else:
            result = _in_process(family, args)
        results.append(result)
        if on_candidate is not None:
            on_candidate(result)
        log.info(f"{i}/{len(models.candidates)} {family}: {candidate_summary(result)} ({result.seconds:.1f} s)")
    board = leaderboard(results)
    return Selection(results, board, selection_record(board, models, cfg.folds))

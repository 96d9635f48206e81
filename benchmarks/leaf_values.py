"""One sweep-sized boosting fit, with sklearn's per-leaf medians and with `leaf_values`'s one sort.

The first fold of the sweep's folds on the train split, its features as a trial with K clusters
makes them, and a HistGradientBoosting with the fast grid's winner (absolute error, 63 leaves,
400 rounds), one native thread: fitted alternately with each leaf-value function, the median of
--repeats each. Checks that both give the same trees; prints one JSON line.

    python -m benchmarks.leaf_values [--data CSV] [--clusters 20] [--repeats 3] [--hydra ...]
"""

import argparse
import json
import statistics
import time
from pathlib import Path

from sklearn.base import clone
from sklearn.ensemble._hist_gradient_boosting import gradient_boosting
from threadpoolctl import threadpool_limits

from benchmarks import floor
from benchmarks.machine import say
from benchmarks.settings import ROOT
from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.features.spec import feature_spec_from_config
from housing_mlops.modeling import leaf_values
from housing_mlops.modeling.evaluation import folds
from housing_mlops.modeling.fidelity import PrefixCache, prefix_outputs
from housing_mlops.modeling.zoo import build_estimator, make_pipeline

FAMILY = "hist_gradient_boosting"


def main(argv: list[str] | None = None) -> int:
    """Time both leaf-value functions on the same fit; one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.leaf_values", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "housing.csv")
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hydra", default="", help="Hydra overrides, e.g. data.sha256=null for another file")
    args = parser.parse_args(argv)
    cfg, _ = load_config(ROOT / "config", parse_overrides(args.hydra))
    train, _ = floor.load_train(cfg, args.data)
    X, y = train[cfg.data.features()], train[cfg.data.target]
    model = cfg.models.zoo[FAMILY]
    winner = {name: values[0] for name, values in model.fast.items()}
    spec = feature_spec_from_config(cfg, n_clusters=args.clusters, imputer={"strategy": "median", "params": {}})
    pipeline = make_pipeline(spec, build_estimator(model, winner))
    train_rows, test_rows = next(folds(len(X), cfg.sweep.folds, cfg.sweep.seed))
    functions = {"sklearn": leaf_values.SKLEARN_UPDATE, "one_sort": leaf_values.update_leaves_values}
    seconds: dict[str, list[float]] = {name: [] for name in functions}
    trees: dict[str, bytes] = {}
    with threadpool_limits(1):
        X_train, _ = prefix_outputs(
            pipeline[:-1], 0, X.iloc[train_rows], y.iloc[train_rows], X.iloc[test_rows], PrefixCache()
        )
        original = gradient_boosting._update_leaves_values
        try:
            for _ in range(args.repeats):
                for name, function in functions.items():
                    gradient_boosting._update_leaves_values = function
                    regressor = clone(pipeline[-1])
                    started = time.perf_counter()
                    regressor.fit(X_train, y.iloc[train_rows])
                    seconds[name].append(time.perf_counter() - started)
                    trees[name] = b"".join(p.nodes.tobytes() for [p] in regressor._predictors)
        finally:
            gradient_boosting._update_leaves_values = original
    if trees["sklearn"] != trees["one_sort"]:
        raise AssertionError("the one-sort leaf values grew different trees from sklearn's")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    figures = {
        "rows": len(X_train),
        "features": X_train.shape[1],
        "rounds": winner.get("max_iter", model.fixed.get("max_iter")),
        "repeats": args.repeats,
        "same_trees": True,
    }
    figures |= {f"{name}_s": round(value, 2) for name, value in medians.items()}
    say(json.dumps(figures | {"saved": round(1 - medians["one_sort"] / medians["sklearn"], 3)}), tag=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

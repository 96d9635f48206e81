"""The step graph: what each step reads, which config it depends on, what it hands on.

Adding a step is an entry here, an entry point in MLproject and a script in steps/.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class StepSpec:
    """One step of the DAG: its upstream steps, the config that keys it, its outputs."""

    name: str
    upstream: tuple[str, ...]  # steps whose outputs this step reads
    config: tuple[str, ...]  # top-level config sections that enter the cache key
    outputs: tuple[str, ...]  # artifacts handed downstream, each tagged with its sha256
    optional: tuple[str, ...] = ()  # artifacts handed downstream when the step could make them

    @property
    def builds_models(self) -> bool:
        """Whether the step builds the zoo's estimators (its config includes `models`).

        Only such a step imports and checks their classes (scikit-learn, ~1 s): the others, and a
        fully cached re-run, never pay it.
        """
        return "models" in self.config


STEPS: dict[str, StepSpec] = {
    spec.name: spec
    for spec in (
        StepSpec("ingest", (), ("data",), ("raw.parquet",)),
        StepSpec("split", ("ingest",), ("data", "split"), ("train.parquet", "test.parquet")),
        StepSpec("impute", ("split",), ("data", "impute"), ("imputation.json",)),
        StepSpec("features", ("split", "impute"), ("data", "features"), ("feature_spec.json",)),
        StepSpec("select", ("split", "features"), ("data", "models", "select"), ("selection.json",)),
        StepSpec(
            "sweep",
            ("split", "features", "select"),
            ("data", "models", "sweep"),
            ("best_params.yaml",),
            # the best trial's out-of-fold predictions, when this run computed them: register's
            # monitoring reference uses them instead of refitting the same folds
            ("oof_predictions.npy",),
        ),
        StepSpec(
            "register",
            ("ingest", "split", "impute", "features", "select", "sweep"),
            ("data", "registry", "deployment", "serving"),
            ("promotion.json",),
        ),
    )
}
ORDER: tuple[str, ...] = tuple(STEPS)


def closure(requested: list[str]) -> list[str]:
    """The requested steps plus everything upstream of them, in DAG order."""
    needed: set[str] = set()
    stack = list(requested)
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack.extend(STEPS[name].upstream)
    return [name for name in ORDER if name in needed]

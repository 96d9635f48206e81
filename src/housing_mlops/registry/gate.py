"""The promotion gate: pure rules deciding whether a challenger may become champion."""

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from housing_mlops.config.registry import RegistryConfig
from housing_mlops.modeling.comparison import Interval, paired_wmape_difference


@dataclass(frozen=True)
class Contender:
    """One side of the gate: a version and the facts the rules compare."""

    version: str
    wmape: float  # on the sealed test set, scored now
    p95_latency_ms: float
    schema: list[dict[str, Any]]  # signature inputs
    predictions: np.ndarray = field(compare=False, repr=False)  # of the sealed test rows, in their order


@dataclass(frozen=True)
class Verdict:
    """The gate's decision, its one-line reason, the interval it compared and every check it made.

    `difference` is the paired bootstrap interval of (challenger - champion) test wMAPE, None
    without a champion.
    """

    promote: bool
    reason: str
    challenger: str
    champion: str | None
    difference: Interval | None
    checks: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the verdict, as written to promotion.json."""
        return asdict(self)


def describe(difference: Interval, cfg: RegistryConfig) -> str:
    """The interval as the verdict's reason states it, with how it was computed."""
    return (
        f"wMAPE difference {difference.estimate:.4f} [{difference.low:.4f}, {difference.high:.4f}] "
        f"({cfg.bootstrap_confidence * 100:g} % paired bootstrap, {cfg.bootstrap_resamples:,} resamples, "
        f"seed {cfg.bootstrap_seed})"
    )


def decide(challenger: Contender, champion: Contender | None, y_true: ArrayLike, cfg: RegistryConfig) -> Verdict:
    """Decide whether `challenger` may replace `champion` (None: there is no champion yet).

    Promote only a challenger within the absolute bounds that, when a champion exists, has its
    input schema and is better on the sealed test rows `y_true` (both contenders' predictions are
    of those rows): the upper bound of the paired bootstrap interval of (challenger - champion)
    wMAPE must be < -`min_improvement`. A challenger within noise of the champion, or tied with it, is held.
    """
    checks = {
        "max_wmape": challenger.wmape <= cfg.max_wmape,
        "max_p95_latency_ms": challenger.p95_latency_ms <= cfg.max_p95_latency_ms,
    }
    reasons = []
    if not checks["max_wmape"]:
        reasons.append(f"test wMAPE {challenger.wmape:.4f} > registry.max_wmape {cfg.max_wmape}")
    if not checks["max_p95_latency_ms"]:
        reasons.append(
            f"p95 latency {challenger.p95_latency_ms:.2f} ms > registry.max_p95_latency_ms {cfg.max_p95_latency_ms}"
        )
    difference = None
    if champion is not None:
        difference = paired_wmape_difference(
            y_true,
            champion.predictions,
            challenger.predictions,
            cfg.bootstrap_resamples,
            cfg.bootstrap_confidence,
            cfg.bootstrap_seed,
        )
        checks["schema"] = challenger.schema == champion.schema
        checks["min_improvement"] = difference.high < -cfg.min_improvement
        if not checks["schema"]:
            reasons.append(f"input schema differs from champion v{champion.version}")
        if not checks["min_improvement"]:
            reasons.append(
                f"does not beat champion v{champion.version} by registry.min_improvement {cfg.min_improvement}: "
                f"{describe(difference, cfg)}"
            )
    promote = all(checks.values())
    if not promote:
        reason = "; ".join(reasons)
    elif champion is None or difference is None:
        reason = f"test wMAPE {challenger.wmape:.4f} within bounds; no champion yet"
    else:
        reason = (
            f"test wMAPE {challenger.wmape:.4f} within bounds; beats champion v{champion.version} by "
            f"registry.min_improvement {cfg.min_improvement}: {describe(difference, cfg)}"
        )
    return Verdict(promote, reason, challenger.version, champion.version if champion else None, difference, checks)

"""The promotion gate: pure rules deciding whether a challenger may become champion."""

from dataclasses import asdict, dataclass, field
from typing import Any

from housing_mlops.config.registry import RegistryConfig


@dataclass(frozen=True)
class Contender:
    """One side of the gate: a version and the facts the rules compare."""

    version: str
    wmape: float  # on the sealed test set, scored now
    p95_latency_ms: float
    schema: list[dict[str, Any]]  # signature inputs


@dataclass(frozen=True)
class Verdict:
    """The gate's decision, its one-line reason and every check it made."""

    promote: bool
    reason: str
    challenger: str
    champion: str | None
    checks: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the verdict, as written to promotion.json."""
        return asdict(self)


def decide(challenger: Contender, champion: Contender | None, cfg: RegistryConfig) -> Verdict:
    """Decide whether `challenger` may replace `champion` (None: there is no champion yet).

    Promote only a challenger within the absolute bounds that, when a champion exists, has
    its input schema and beats its test wMAPE by at least `min_improvement`.
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
    if champion is not None:
        checks["schema"] = challenger.schema == champion.schema
        checks["min_improvement"] = challenger.wmape <= champion.wmape - cfg.min_improvement
        if not checks["schema"]:
            reasons.append(f"input schema differs from champion v{champion.version}")
        if not checks["min_improvement"]:
            reasons.append(
                f"test wMAPE {challenger.wmape:.4f} does not beat champion v{champion.version}'s "
                f"{champion.wmape:.4f} by registry.min_improvement {cfg.min_improvement}"
            )
    promote = all(checks.values())
    if promote:
        against = f"beats champion v{champion.version} ({champion.wmape:.4f})" if champion else "no champion yet"
        reason = f"test wMAPE {challenger.wmape:.4f} within bounds; {against}"
    else:
        reason = "; ".join(reasons)
    return Verdict(promote, reason, challenger.version, champion.version if champion else None, checks)

"""The verdict of a check, ok | drift | degraded, and the report that carries everything behind it.

Precedence: `degraded` (labels say the model is worse) outranks `drift` (the inputs or the
predictions moved), which outranks `ok`.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from housing_mlops.config.monitor import MonitorConfig
from housing_mlops.monitoring.drift import DriftReport
from housing_mlops.monitoring.performance import PerformanceReport

VERDICTS = ("ok", "drift", "degraded")


@dataclass(frozen=True)
class MonitorReport:
    """One batch checked against a reference: the verdict, its reasons and every figure."""

    verdict: str
    reasons: list[str]
    drift: DriftReport
    performance: PerformanceReport | None  # None: the batch has no labels
    ignored_columns: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers become null); the drifted features listed first by PSI."""
        plain = dataclasses.asdict(self)
        plain["drift"]["drifted"] = self.drift.drifted
        return _finite(plain)


def _finite(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def verdict_of(drift: DriftReport, performance: PerformanceReport | None, cfg: MonitorConfig) -> tuple[str, list[str]]:
    """(verdict, reasons): every threshold crossed is one reason, whatever the verdict."""
    reasons = []
    if performance is not None and performance.degraded:
        w, test = performance.metrics["wmape"], performance.test_metrics["wmape"]
        reasons.append(
            f"wMAPE {w.value:.4f} (interval {w.low:.4f}-{w.high:.4f}) exceeds test wMAPE {test:.4f} "
            f"x (1 + monitor.tolerance {cfg.tolerance}) = {performance.limit:.4f}"
        )
    if drift.share_drifted >= cfg.drift_share:
        names = ", ".join(f"{n} (PSI {drift.features[n].psi:.2f})" for n in drift.drifted)
        reasons.append(
            f"{len(drift.drifted)} of {len(drift.features)} features drifted "
            f"(share {drift.share_drifted:.2f} >= monitor.drift_share {cfg.drift_share}): {names}"
        )
    if drift.prediction.drifted:
        reasons.append(f"predictions drifted (PSI {drift.prediction.psi:.2f}, p {drift.prediction.p_value:.1e})")
    degraded = performance is not None and performance.degraded
    verdict = "degraded" if degraded else "drift" if reasons else "ok"
    return verdict, reasons


def fails(verdict: str, fail_on: str) -> bool:
    """Whether `verdict` should fail the check under monitor.fail_on (degraded | drift | never)."""
    if fail_on == "never":
        return False
    return VERDICTS.index(verdict) >= VERDICTS.index(fail_on)

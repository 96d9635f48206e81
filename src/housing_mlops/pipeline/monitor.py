"""The monitor entry point's library: a batch against the champion's own reference, one MLflow run per check.

The champion, its reference and its served variant come from the registry alone (the reference is
a file of the model, see serving_model.REFERENCE_FILE), so a check needs no local file of the
training run and works the same against a team tracking server.
"""

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from housing_mlops.config.schema import Config
from housing_mlops.errors import HousingError, MonitoringReferenceError
from housing_mlops.monitoring import inference_log
from housing_mlops.monitoring.check import check
from housing_mlops.monitoring.drift import FeatureDrift, bin_shares
from housing_mlops.monitoring.reference import Reference, load_reference
from housing_mlops.monitoring.verdict import MonitorReport
from housing_mlops.pipeline.serving_model import REFERENCE_FILE
from housing_mlops.pipeline.tracking import ensure_experiment
from housing_mlops.registry import store as registry
from housing_mlops.reporting import monitor_report, plots
from housing_mlops.reporting.monitor_report import Subject
from housing_mlops.tags import (
    ERROR_TAG,
    MONITOR_BATCH_TAG,
    MONITOR_MODEL_TAG,
    MONITOR_VERDICT_TAG,
    MONITOR_VERSION_TAG,
)

log = logging.getLogger(__name__)

# A batch: (rows, what they are, e.g. the file or the inference log's window), read inside the
# check's run so that an unreadable batch is a FAILED run too.
BatchReader = Callable[[], tuple[pd.DataFrame, str]]


@dataclass(frozen=True)
class Monitored:
    """One finished check: its run, what was checked, the report and its renderings."""

    run_id: str
    subject: Subject
    report: MonitorReport
    summary: str  # Markdown (the job summary)
    page: str  # self-contained HTML


def captured(root: Path, window: str) -> tuple[pd.DataFrame, str]:
    """The inference log's rows of the last `window`, without the log's own columns, and what they are.

    Unreadable files are skipped, each named in one warning line and counted in the label.
    """
    found = inference_log.read_window(root, window)
    for skipped in found.skipped:
        log.warning(f"inference log: skipped {skipped}")
    label = f"inference log {root}, last {window}: {len(found.rows)} rows from {found.files} file(s)"
    if found.skipped:
        label += f", {len(found.skipped)} unreadable file(s) skipped"
    if found.rows.empty:
        raise HousingError(
            f"no inferences captured in the last {window} under {root}"
            f"{f' ({len(found.skipped)} unreadable file(s) skipped)' if found.skipped else ''}: "
            "serve or predict with capture on (HOUSING_CAPTURE=1 make serve), or pass BATCH=..."
        )
    return found.rows.drop(columns=list(inference_log.LOG_COLUMNS)), label


def champion_version(client: MlflowClient, name: str) -> ModelVersion:
    """The version `champion` points at; HousingError when there is none."""
    version = registry.version_by_alias(client, name, registry.CHAMPION)
    if version is None:
        raise HousingError(
            f"model '{name}' has no '{registry.CHAMPION}' in the registry at {client.tracking_uri}: "
            "run `make pipeline` (or `make promote VERSION=N`) first"
        )
    return version


def reference_of(client: MlflowClient, version: ModelVersion, workdir: Path) -> Reference:
    """The monitoring reference stored in the model of `version`."""
    where = f"model '{version.name}' v{version.version}"
    try:
        uri = f"models:/{version.name}/{version.version}/{REFERENCE_FILE}"
        path = mlflow.artifacts.download_artifacts(uri, dst_path=str(workdir))
    except (MlflowException, OSError) as exc:
        raise MonitoringReferenceError(
            f"{where} has no monitoring reference ({REFERENCE_FILE}): it was registered before references "
            "existed; re-register it: make pipeline HYDRA='pipeline.force=[register]'"
        ) from exc
    try:
        return load_reference(json.loads(Path(path).read_text()))
    except MonitoringReferenceError as exc:
        raise MonitoringReferenceError(f"{where}: {exc}") from exc


def monitor(client: MlflowClient, cfg: Config, read: BatchReader, workdir: Path) -> Monitored:
    """Check a batch against the champion's reference in a new run of experiment `monitor.experiment`.

    The run holds per-feature metrics, the verdict and the champion version as tags, plots of the
    drifted features (and the predictions), report.html, report.json and summary.md. Any failure
    leaves a FAILED run with the error as a tag, and nothing else changed.
    """
    name = cfg.registry.model_name
    experiment_id = ensure_experiment(client, cfg.monitor.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor {name}") as run:
        try:
            mlflow.set_tag(MONITOR_MODEL_TAG, name)
            version = champion_version(client, name)
            mlflow.set_tag(MONITOR_VERSION_TAG, version.version)
            reference = reference_of(client, version, workdir)
            batch, label = read()
            mlflow.set_tag(MONITOR_BATCH_TAG, label[:5000])
            model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
            scored: list[np.ndarray] = []

            def predict(X: pd.DataFrame) -> np.ndarray:
                scored.append(np.asarray(model.predict(X), dtype=float).ravel())
                return scored[-1]

            report = check(batch, reference, predict, cfg.monitor)
        except Exception as exc:
            error = str(exc) if isinstance(exc, HousingError) else f"{type(exc).__name__}: {exc}"
            mlflow.set_tag(ERROR_TAG, error.splitlines()[0][:5000])
            raise
        if report.ignored_columns:
            log.warning(f"batch columns ignored (not features of the model): {', '.join(report.ignored_columns)}")
        subject = Subject(name, version.version, label, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
        figures = _figures(report, reference, batch, scored[-1])
        done = Monitored(
            run.info.run_id,
            subject,
            report,
            monitor_report.markdown(report, subject),
            monitor_report.page(report, subject, figures),
        )
        _log(done, figures, workdir)
    return done


def _figures(
    report: MonitorReport, reference: Reference, batch: pd.DataFrame, predictions: np.ndarray
) -> dict[str, bytes]:
    """PNG of each drifted feature (largest PSI first) and of the predictions, against the reference."""
    shown: list[tuple[FeatureDrift, pd.Series | np.ndarray, dict[str, Any]]] = [
        (report.drift.features[n], batch[n], reference["features"][n]) for n in report.drift.drifted
    ]
    shown.append((report.drift.prediction, predictions, reference["predictions"]))
    figures = {}
    for drift, values, entry in shown:
        figure = plots.drift_bins(drift.name, bin_shares(values, entry), drift.psi, drift.p_value)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        plt.close(figure)
        figures[drift.name] = buffer.getvalue()
    return figures


def _log(done: Monitored, figures: dict[str, bytes], workdir: Path) -> None:
    report = done.report
    metrics: dict[str, float] = {
        "rows": report.drift.rows,
        "drift_share": report.drift.share_drifted,
        "drifted_features": len(report.drift.drifted),
    }
    for drift in [*report.drift.features.values(), report.drift.prediction]:
        for field in ("psi", "p_value", "js_distance", "missing_rate", "out_of_range", "unseen"):
            metrics[f"{field}.{drift.name}"] = float(getattr(drift, field))
    if report.performance is not None:
        for metric, interval in report.performance.metrics.items():
            metrics |= {metric: interval.value, f"{metric}_low": interval.low, f"{metric}_high": interval.high}
    mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
    mlflow.set_tag(MONITOR_VERDICT_TAG, report.verdict)
    mlflow.log_dict(report.to_dict(), "report.json")
    mlflow.log_text(done.page, "report.html")
    mlflow.log_text(done.summary, "summary.md")
    folder = workdir / "plots"
    folder.mkdir()
    for name, png in figures.items():
        (folder / f"{name}.png").write_bytes(png)
    mlflow.log_artifacts(str(folder), "plots")

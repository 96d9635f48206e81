"""Entry point `monitor`: a batch (or the inference log's last `monitor.window`) against the champion's reference.

mlflow run . --env-manager local -e monitor -P batch=new.csv     (CSV or parquet path, or URL)
mlflow run . --env-manager local -e monitor                      (the captured inferences)

Exit status 1 on bad input, and on a verdict at or above `monitor.fail_on`. Under GitHub Actions
the verdict goes to $GITHUB_OUTPUT and the summary to $GITHUB_STEP_SUMMARY.
"""

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.config.schema import Config
from housing_mlops.data.source import read_table
from housing_mlops.errors import HousingError
from housing_mlops.monitoring.verdict import fails
from housing_mlops.pipeline import logs
from housing_mlops.pipeline.capture import log_dir
from housing_mlops.pipeline.monitor import BatchReader, Monitored, captured, monitor
from housing_mlops.pipeline.tracking import tracking_uri
from housing_mlops.tags import MONITOR_RUN_TAG, MONITOR_VERDICT_TAG

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def batch_reader(cfg: Config, batch: str, workdir: Path) -> BatchReader:
    """Reads `batch`, or the inference log's last monitor.window when `batch` is empty."""
    if batch:
        return lambda: (read_table(batch, cfg.data.download, workdir, "batch"), batch)
    return lambda: captured(log_dir(cfg, ROOT), cfg.monitor.window)


def publish(done: Monitored, report_dir: str | None) -> None:
    """Write the report where the caller asked: monitor.report_dir, and GitHub's output and summary files."""
    if report_dir:
        folder = Path(report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.html").write_text(done.page)
        (folder / "summary.md").write_text(done.summary)
    for variable, text in (
        ("GITHUB_OUTPUT", f"verdict={done.report.verdict}\nrun_id={done.run_id}\n"),
        ("GITHUB_STEP_SUMMARY", done.summary),
    ):
        if os.environ.get(variable):
            with open(os.environ[variable], "a") as out:
                out.write(text)


def main(argv: list[str] | None = None) -> int:
    """Check the batch; return the exit code."""
    parser = argparse.ArgumentParser(prog="steps/monitor.py")
    parser.add_argument("--batch", default="")
    parser.add_argument("--hydra-options", default="")
    args = parser.parse_args(argv)
    logs.configure("monitor")
    # under `mlflow run` the launcher's run is not the check's: the check gets its own run in
    # monitor.experiment, and the launcher run points at it
    launched = os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        cfg, _ = load_config(ROOT / "config", parse_overrides(args.hydra_options))
        mlflow.set_tracking_uri(tracking_uri(ROOT))
        client = MlflowClient()
        with tempfile.TemporaryDirectory() as tmp:
            done = monitor(client, cfg, batch_reader(cfg, args.batch, Path(tmp)), Path(tmp))
        if launched:
            client.set_tag(launched, MONITOR_RUN_TAG, done.run_id)
            client.set_tag(launched, MONITOR_VERDICT_TAG, done.report.verdict)
        publish(done, cfg.monitor.report_dir)
    except (HousingError, mlflow.exceptions.MlflowException) as exc:
        log.error(str(exc).splitlines()[0])
        return 1
    report = done.report
    log.info(
        f"verdict {report.verdict}: {cfg.registry.model_name} v{done.subject.version} on {done.subject.batch} "
        f"({report.drift.rows} rows) -> run {done.run_id}"
    )
    for reason in report.reasons:
        log.info(f"  {reason}")
    if fails(report.verdict, cfg.monitor.fail_on):
        log.error(f"verdict {report.verdict} fails the check (monitor.fail_on={cfg.monitor.fail_on})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

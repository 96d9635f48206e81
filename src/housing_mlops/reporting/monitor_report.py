"""The monitor's report of one check: a self-contained HTML page and a Markdown job summary. Pure.

The HTML page embeds its plots (PNG, base64) so that it opens on its own in the MLflow UI's
artifact view and as a downloaded workflow artifact.
"""

import base64
import html
from dataclasses import dataclass

import pandas as pd

from housing_mlops.monitoring.verdict import MonitorReport


@dataclass(frozen=True)
class Subject:
    """What was checked against what: the champion and the batch."""

    model: str
    version: str
    batch: str  # the source, or the inference log and its window
    checked_at: str


def drift_table(report: MonitorReport) -> pd.DataFrame:
    """One row per feature (then the predictions): drift figures, the drifted first, largest PSI first."""
    rows = [*report.drift.features.values(), report.drift.prediction]
    table = pd.DataFrame(
        {
            "feature": [f.name for f in rows],
            "kind": [f.kind for f in rows],
            "drifted": [f.drifted for f in rows],
            "PSI": [round(f.psi, 4) for f in rows],
            "chi-square p": [f"{f.p_value:.1e}" for f in rows],
            "JS distance": [round(f.js_distance, 4) for f in rows],
            "missing": [f"{f.missing_rate:.1%} (ref {f.reference_missing_rate:.1%})" for f in rows],
            "out of range": [f.out_of_range for f in rows],
            "unseen": [f.unseen for f in rows],
            "examples": [", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in f.examples) for f in rows],
        }
    )
    return table.sort_values(["drifted", "PSI"], ascending=False, kind="stable").reset_index(drop=True)


def performance_table(report: MonitorReport) -> pd.DataFrame | None:
    """wMAPE, RMSE and MAE on the batch with their interval, beside the registered test figures."""
    perf = report.performance
    if perf is None:
        return None
    return pd.DataFrame(
        {
            "metric": list(perf.metrics),
            "batch": [round(m.value, 4) for m in perf.metrics.values()],
            "interval low": [round(m.low, 4) for m in perf.metrics.values()],
            "interval high": [round(m.high, 4) for m in perf.metrics.values()],
            "registered test": [round(perf.test_metrics[name], 4) for name in perf.metrics],
        }
    )


def _headline(report: MonitorReport, subject: Subject) -> str:
    return f"Monitor verdict: {report.verdict} — {subject.model} v{subject.version} on {report.drift.rows} rows"


def markdown(report: MonitorReport, subject: Subject) -> str:
    """The job summary: verdict, reasons, the most drifted features and the batch's metrics."""
    lines = [f"## {_headline(report, subject)}", "", f"Batch: `{subject.batch}` (checked {subject.checked_at})", ""]
    lines += [f"- {reason}" for reason in report.reasons] or ["- every feature and the predictions within thresholds"]
    drifted = drift_table(report).head(5)
    lines += ["", "### Most drifted features", "", drifted.drop(columns="examples").to_markdown(index=False)]
    performance = performance_table(report)
    if performance is not None:
        lines += ["", "### Metrics on the labelled rows", "", performance.to_markdown(index=False)]
    if report.ignored_columns:
        lines += ["", f"Ignored columns (not features): {', '.join(report.ignored_columns)}"]
    return "\n".join(lines) + "\n"


def page(report: MonitorReport, subject: Subject, figures: dict[str, bytes]) -> str:
    """The HTML report: headline, reasons, tables, and one embedded PNG per plotted feature."""
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report.reasons) or "<li>within every threshold</li>"
    performance = performance_table(report)
    sections = [
        f"<h1>{html.escape(_headline(report, subject))}</h1>",
        f"<p>Batch: <code>{html.escape(subject.batch)}</code>; checked {html.escape(subject.checked_at)}.</p>",
        f"<h2>Reasons</h2><ul>{reasons}</ul>",
        "<h2>Drift per feature</h2>",
        drift_table(report).to_html(index=False, border=0),
    ]
    if performance is not None:
        sections += ["<h2>Metrics on the labelled rows</h2>", performance.to_html(index=False, border=0)]
    if report.ignored_columns:
        sections.append(f"<p>Ignored columns: {html.escape(', '.join(report.ignored_columns))}</p>")
    for name, png in figures.items():
        data = base64.b64encode(png).decode()
        sections.append(
            f'<h3>{html.escape(name)}</h3><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
        )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
    )
    head = f"<meta charset='utf-8'><title>{html.escape(_headline(report, subject))}</title><style>{style}</style>"
    body = "\n".join(sections)
    return f"<!doctype html><html><head>{head}</head><body>\n{body}\n</body></html>\n"

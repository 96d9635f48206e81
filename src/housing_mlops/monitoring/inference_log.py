"""The inference log: what serving and batch prediction scored, as partitioned parquet; pure, no MLflow.

Layout: `<root>/date=YYYY-MM-DD/hour=HH/<uuid>.parquet` (UTC). Each file is one written batch: the
feature columns as the caller gave them, `prediction`, `model_version`, `model_uri`, `scored_at`
(UTC timestamp of each row) and `source` (serve | predict). A file is written under a hidden
temporary name and renamed into place, so a reader never sees half of one. `read_window` reads the
rows of the last `<n>h` / `<n>d`; a file it cannot read is skipped, counted and reported, never raised.
"""

import contextlib
import logging
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from housing_mlops.config.monitor import window_span
from housing_mlops.errors import StorageError

PREDICTION, MODEL_VERSION, MODEL_URI, SCORED_AT, SOURCE = (
    "prediction",
    "model_version",
    "model_uri",
    "scored_at",
    "source",
)
LOG_COLUMNS = (PREDICTION, MODEL_VERSION, MODEL_URI, SCORED_AT, SOURCE)
SOURCES = ("serve", "predict")
log = logging.getLogger(__name__)
_DATE, _HOUR = re.compile(r"date=(\d{4}-\d{2}-\d{2})"), re.compile(r"hour=(\d{2})")


@dataclass(frozen=True)
class LogWindow:
    """The rows of a time window of the log, how many files they came from, and what was skipped."""

    rows: pd.DataFrame  # features + prediction + model_version + model_uri + scored_at + source
    files: int  # files read
    skipped: list[str] = field(default_factory=list)  # "<path>: <one-line reason>" per unreadable file or partition


def _utc(now: datetime | None) -> datetime:
    """`now` as an aware UTC datetime (naive means UTC); the clock when None."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def rows_for(
    frame: pd.DataFrame,
    predictions: Sequence[Any] | np.ndarray,
    model_version: str | Sequence[str],
    model_uri: str | Sequence[str],
    source: str,
    now: datetime | Sequence[datetime] | None = None,
) -> pd.DataFrame:
    """Scored rows as log rows: `frame`'s columns, then the log's own.

    `model_version`, `model_uri` and `now` are one value for every row, or one per row.
    """
    if source not in SOURCES:
        raise ValueError(f"inference log source {source!r}: expected one of {SOURCES}")
    values = np.asarray(predictions)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or len(values) != len(frame):
        raise ValueError(f"predictions of shape {values.shape} for {len(frame)} row(s): the log holds one per row")
    rows = frame.drop(columns=[c for c in LOG_COLUMNS if c in frame.columns]).reset_index(drop=True)
    stamps = [now] * len(rows) if now is None or isinstance(now, datetime) else list(now)
    rows[PREDICTION] = values
    rows[MODEL_VERSION] = model_version if isinstance(model_version, str) else list(model_version)
    rows[MODEL_URI] = model_uri if isinstance(model_uri, str) else list(model_uri)
    rows[SCORED_AT] = pd.Series([pd.Timestamp(_utc(t)) for t in stamps], dtype="datetime64[us, UTC]")
    rows[SOURCE] = source
    return rows


def partition(root: Path, when: datetime) -> Path:
    """The folder of the hour `when` falls in."""
    when = _utc(when)
    return root / f"date={when:%Y-%m-%d}" / f"hour={when:%H}"


def _write_file(folder: Path, rows: pd.DataFrame) -> Path:
    """Write `rows` as one new file in `folder`: `.<name>.tmp` first, then renamed into place.

    Raises:
        StorageError: the folder or the file could not be written (a partial file is removed).
    """
    target = folder / f"{uuid.uuid4().hex}.parquet"
    temporary = folder / f".{target.name}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(temporary, index=False)
        os.replace(temporary, target)
    except Exception as exc:  # a full disk, a read-only folder, a column pyarrow cannot hold: all one error
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise StorageError(f"inference log: cannot write {target}: {one_line(exc)}") from exc
    return target


def write_rows(root: Path, rows: pd.DataFrame, now: datetime | None = None) -> list[Path]:
    """Write log rows (as `rows_for` makes them) into their hour partitions, one new file per hour.

    Zero rows still leave one file (the schema) in the partition of `now`.

    Raises:
        StorageError: a folder or file could not be written.
    """
    if rows.empty:
        return [_write_file(partition(root, _utc(now)), rows)]
    hours = pd.to_datetime(rows[SCORED_AT], utc=True).dt.floor("h")
    return [
        _write_file(partition(root, hour.to_pydatetime()), rows[(hours == hour).to_numpy()])
        for hour in sorted(hours.unique())
    ]


def append(
    root: Path,
    frame: pd.DataFrame,
    predictions: Sequence[Any] | np.ndarray,
    model_version: str,
    model_uri: str,
    source: str,
    now: datetime | None = None,
) -> Path:
    """Write one scored batch to the log under `root`; return the file.

    Args:
        root: the log's folder (created if missing).
        frame: the rows as scored (their columns are kept as given).
        predictions: one prediction per row of `frame`.
        model_version: the registry version that scored them.
        model_uri: the URI the model was loaded from.
        source: `serve` or `predict`.
        now: when they were scored (default: the clock, UTC).

    Raises:
        StorageError: the file could not be written.
    """
    when = _utc(now)
    return write_rows(root, rows_for(frame, predictions, model_version, model_uri, source, when), when)[0]


def _hour_of(folder: Path) -> datetime | None:
    """The UTC hour a `date=.../hour=..` folder holds, None for a name that is not one."""
    date, hour = _DATE.fullmatch(folder.parent.name), _HOUR.fullmatch(folder.name)
    if date is None or hour is None:
        return None
    try:
        return datetime.strptime(f"{date.group(1)} {hour.group(1)}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except ValueError:
        return None


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, for a warning or a skipped file."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def read_window(root: Path, window: str, now: datetime | None = None) -> LogWindow:
    """The log rows scored within [now - window, now].

    Only the hour partitions that overlap the window are opened. A file that cannot be read or
    lacks the log's columns, and a `date=` folder whose name is not a partition, are skipped and
    reported in `skipped` (path: reason); a missing or empty log gives zero rows.

    Args:
        root: the log's folder.
        window: `<n>h` or `<n>d` (config key `monitor.window`).
        now: the window's end (default: the clock, UTC).
    """
    end = _utc(now)
    start = end - window_span(window)
    frames: list[pd.DataFrame] = []
    skipped: list[str] = []
    files = 0
    folders = sorted(p for p in root.glob("date=*/hour=*") if p.is_dir()) if root.is_dir() else []
    for folder in folders:
        hour = _hour_of(folder)
        if hour is None:
            skipped.append(f"{folder}: not a date=YYYY-MM-DD/hour=HH partition")
            continue
        if hour + timedelta(hours=1) <= start or hour > end:
            continue
        for path in sorted(folder.glob("*.parquet")):
            try:
                frame = pd.read_parquet(path, use_threads=False)
            except Exception as exc:  # any unreadable file is skipped, whatever broke it
                skipped.append(f"{path}: {one_line(exc)}")
                continue
            missing = [c for c in LOG_COLUMNS if c not in frame.columns]
            if missing:
                skipped.append(f"{path}: missing column(s) {missing}")
                continue
            files += 1
            stamps = pd.to_datetime(frame[SCORED_AT], utc=True)
            frames.append(frame.assign(**{SCORED_AT: stamps})[(stamps >= start) & (stamps <= end)])
    return LogWindow(_concat(frames), files, skipped)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """All rows, in time order; an empty frame with the log's columns when there are none."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        empty = pd.DataFrame({c: pd.Series([], dtype="str") for c in LOG_COLUMNS})
        return empty.astype({PREDICTION: "float64", SCORED_AT: "datetime64[us, UTC]"})
    rows = pd.concat(frames, ignore_index=True)
    return rows.sort_values(SCORED_AT, kind="stable", ignore_index=True)


def try_append(
    root: Path,
    frame: pd.DataFrame,
    predictions: Sequence[Any] | np.ndarray,
    model_version: str,
    model_uri: str,
    source: str,
    now: datetime | None = None,
) -> Path | None:
    """`append`, but a failure logs one warning line and returns None: capture never fails a prediction."""
    try:
        return append(root, frame, predictions, model_version, model_uri, source, now)
    except Exception as exc:  # whatever broke the write, the prediction stands
        log.warning(f"inference capture skipped ({len(frame)} row(s) not logged): {one_line(exc)}")
        return None

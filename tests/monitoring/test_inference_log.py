"""The inference log: round trip, window boundaries, unreadable partitions, atomic writes, failed appends."""

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from housing_mlops.config.monitor import window_span
from housing_mlops.errors import ConfigError, StorageError
from housing_mlops.monitoring import inference_log
from housing_mlops.monitoring.inference_log import append, read_window, try_append

NOW = datetime(2026, 12, 5, 12, 30, tzinfo=UTC)
URI = "models:/housing_price_model/3"


def rows(n: int, start: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "median_income": np.arange(n, dtype=float) + start,
            "housing_median_age": np.arange(n) + 1,
            "ocean_proximity": ["INLAND", "NEAR BAY"] * (n // 2) + ["INLAND"] * (n % 2),
        }
    )


def test_a_batch_round_trips_with_its_features_prediction_version_and_time(tmp_path: Path) -> None:
    frame = rows(3)
    path = append(tmp_path, frame, np.array([1.5, 2.5, 3.5]), "3", URI, "serve", NOW)
    assert path.parent == tmp_path / "date=2026-12-05" / "hour=12"
    append(tmp_path, rows(2, start=10), [7.0, 8.0], "4", URI, "predict", NOW + timedelta(minutes=1))
    window = read_window(tmp_path, "1h", NOW + timedelta(minutes=5))
    assert (window.files, window.skipped) == (2, [])
    got = window.rows
    pd.testing.assert_frame_equal(got[frame.columns].head(3), frame, check_dtype=False)
    assert list(got["prediction"]) == [1.5, 2.5, 3.5, 7.0, 8.0]
    assert list(got["model_version"]) == ["3", "3", "3", "4", "4"]
    assert list(got["source"]) == ["serve"] * 3 + ["predict"] * 2
    assert set(got["model_uri"]) == {URI}
    assert str(got["scored_at"].dt.tz) == "UTC"
    assert got["scored_at"].iloc[0] == pd.Timestamp(NOW)


@pytest.mark.parametrize(
    ("window", "inside"),
    [("7d", ["7d ago", "1h ago", "now"]), ("1h", ["1h ago", "now"]), ("24h", ["1h ago", "now"])],
)
def test_the_window_holds_exactly_the_rows_scored_in_it(tmp_path: Path, window: str, inside: list[str]) -> None:
    times = {
        "before 7d": NOW - timedelta(days=7, seconds=1),
        "7d ago": NOW - timedelta(days=7),
        "1h ago": NOW - timedelta(hours=1),
        "now": NOW,
        "future": NOW + timedelta(seconds=1),
    }
    for i, (label, when) in enumerate(times.items()):
        append(tmp_path, rows(1).assign(label=label), [float(i)], "1", URI, "serve", when)
    got = read_window(tmp_path, window, NOW)
    assert list(got.rows["label"]) == inside
    assert got.skipped == []


def test_naive_now_is_utc_and_a_missing_or_empty_log_has_no_rows(tmp_path: Path) -> None:
    append(tmp_path / "log", rows(1), [1.0], "1", URI, "serve", NOW)
    assert len(read_window(tmp_path / "log", "1h", NOW.replace(tzinfo=None)).rows) == 1
    for root in (tmp_path / "missing", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        window = read_window(root, "7d", NOW)
        assert (len(window.rows), window.files, window.skipped) == (0, 0, [])
        assert {"prediction", "model_version", "scored_at"} <= set(window.rows.columns)


def test_unreadable_partitions_are_skipped_counted_and_reported(tmp_path: Path) -> None:
    good = append(tmp_path, rows(2), [1.0, 2.0], "1", URI, "serve", NOW)
    (good.parent / "torn.parquet").write_bytes(good.read_bytes()[:100])
    (good.parent / "junk.parquet").write_text("not parquet")
    rows(1).to_parquet(good.parent / "foreign.parquet")  # parquet, but not a log file
    (tmp_path / "date=yesterday" / "hour=07").mkdir(parents=True)
    window = read_window(tmp_path, "7d", NOW)
    assert (len(window.rows), window.files, len(window.skipped)) == (2, 1, 4)
    reasons = dict(line.split(": ", 1) for line in window.skipped)
    assert set(reasons) == {str(good.parent / name) for name in ("torn.parquet", "junk.parquet", "foreign.parquet")} | {
        str(tmp_path / "date=yesterday" / "hour=07")
    }
    assert "missing column(s) ['prediction'" in reasons[str(good.parent / "foreign.parquet")]
    assert "not a date=YYYY-MM-DD/hour=HH partition" in reasons[str(tmp_path / "date=yesterday" / "hour=07")]
    assert all("\n" not in line for line in window.skipped)


def test_a_reader_never_sees_half_a_file(tmp_path: Path) -> None:
    big = rows(20_000)
    done = threading.Event()
    seen: list[tuple[int, list[str]]] = []

    def read() -> None:
        while not done.is_set():
            window = read_window(tmp_path, "1d", NOW)
            seen.append((len(window.rows), window.skipped))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(15):
            append(tmp_path, big, np.zeros(len(big)), "1", URI, "serve", NOW)
    finally:
        done.set()
        reader.join()
    assert len(seen) > 1
    assert all(skipped == [] and n % len(big) == 0 for n, skipped in seen)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_append_raises_naming_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "log"
    not_a_folder.write_text("")
    with pytest.raises(StorageError, match=r"inference log: cannot write .*/log/date=2026-12-05/hour=12/\w+\.parquet"):
        append(not_a_folder, rows(1), [1.0], "1", URI, "serve", NOW)
    unwritable = rows(2).assign(odd=[{"a": 1}, 2])  # pyarrow cannot hold this column
    with pytest.raises(StorageError, match="cannot write"):
        append(tmp_path / "ok", unwritable, [1.0, 2.0], "1", URI, "serve", NOW)
    assert [p for p in (tmp_path / "ok").rglob("*") if p.is_file()] == []


def test_try_append_warns_in_one_line_and_never_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "log").write_text("")
    assert try_append(tmp_path / "log", rows(3), [1.0, 2.0, 3.0], "1", URI, "predict", NOW) is None
    err = capsys.readouterr().err.strip()
    assert err.startswith("warning: inference capture skipped (3 row(s) not logged): StorageError: inference log:")
    assert "\n" not in err
    assert try_append(tmp_path / "ok", rows(1), [1.0], "1", URI, "predict", NOW) is not None


def test_one_prediction_per_row_and_a_known_source() -> None:
    with pytest.raises(ValueError, match=r"predictions of shape \(2,\) for 3 row\(s\)"):
        inference_log.rows_for(rows(3), [1.0, 2.0], "1", URI, "serve")
    with pytest.raises(ValueError, match="source 'batch'"):
        inference_log.rows_for(rows(1), [1.0], "1", URI, "batch")
    assert list(inference_log.rows_for(rows(2), np.array([[1.0], [2.0]]), "1", URI, "serve")["prediction"]) == [1, 2]


def test_a_bad_window_names_the_key() -> None:
    assert window_span("36h") == timedelta(hours=36)
    with pytest.raises(ConfigError, match=r"config key 'monitor.window' = '7w' is not allowed: expected <n>h or <n>d"):
        window_span("7w")

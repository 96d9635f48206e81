"""The capture writer: MLflow's request formats parsed, batches written off the caller's thread,
a full queue, an unparseable request and a failed write each one warning and a dropped record."""

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from housing_mlops.monitoring.inference_log import read_window
from housing_mlops.serving.capture import CaptureWriter, Invocation, parse

FRAME = pd.DataFrame({"median_income": [1.5, 8.0], "ocean_proximity": ["INLAND", "NEAR BAY"]})
ANSWER = json.dumps({"predictions": [100.0, 400.0]}).encode()


def invocation(body: object, content_type: str = "application/json", answer: bytes = ANSWER) -> Invocation:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Invocation(raw, content_type, answer, "3", "models:/m/3", datetime.now(UTC))


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": json.loads(FRAME.to_json(orient="split", index=False))},
        {"dataframe_records": FRAME.to_dict(orient="records")},
        {"inputs": FRAME.to_dict(orient="list")},
        {"instances": FRAME.to_dict(orient="records")},
        FRAME.to_csv(index=False).encode(),
    ],
    ids=["split", "records", "inputs", "instances", "csv"],
)
def test_every_mlflow_input_format_gives_the_rows_as_sent(body: object) -> None:
    content_type = "text/csv" if isinstance(body, bytes) else "application/json"
    records, predictions = parse(invocation(body, content_type))
    pd.testing.assert_frame_equal(pd.DataFrame(records), FRAME, check_dtype=False)
    assert predictions == [100.0, 400.0]


def test_an_answer_that_does_not_match_the_rows_is_refused() -> None:
    body = {"dataframe_records": FRAME.to_dict(orient="records")}
    with pytest.raises(ValueError, match="one prediction for each of the 2 row"):
        parse(invocation(body, answer=b'{"predictions": [1.0]}'))
    with pytest.raises(ValueError, match="holds none of dataframe_split"):
        parse(invocation({"rows": []}))


def wait_for(root: Path, rows: int) -> pd.DataFrame:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = read_window(root, "1h").rows
        if len(found) >= rows:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{rows} rows not written within 10 s")


def test_requests_are_written_in_batches_and_close_writes_the_rest(tmp_path: Path) -> None:
    body = {"dataframe_records": FRAME.to_dict(orient="records")}
    writer = CaptureWriter(tmp_path, queue_size=100, flush_rows=4, flush_seconds=60).start()
    for _ in range(3):
        writer.submit(invocation(body))
    found = wait_for(tmp_path, 4)  # flush_rows reached after two requests: one file, four rows
    assert len(found) == 4
    writer.close()
    found = read_window(tmp_path, "1h")
    assert (len(found.rows), found.files) == (6, 2)
    assert set(found.rows["source"]) == {"serve"}
    assert set(found.rows["model_version"]) == {"3"}
    assert list(found.rows["prediction"]) == [100.0, 400.0] * 3
    timed = CaptureWriter(tmp_path / "timed", queue_size=100, flush_rows=10_000, flush_seconds=0.05).start()
    timed.submit(invocation(body))
    assert len(wait_for(tmp_path / "timed", 2)) == 2  # written after flush_seconds, without close
    timed.close()


def test_a_full_queue_drops_with_one_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    writer = CaptureWriter(tmp_path, queue_size=1, flush_rows=1, flush_seconds=1)  # not started: nothing drains
    for _ in range(5):
        writer.submit(invocation({"dataframe_records": FRAME.to_dict(orient="records")}))
    assert writer.dropped == 4
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["warning: inference capture: queue full (1 requests waiting): a request was not logged"]


def test_a_failed_write_or_a_bad_request_warns_and_the_writer_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    writer = CaptureWriter(tmp_path / "file", queue_size=10, flush_rows=1, flush_seconds=1).start()
    writer.submit(invocation({"dataframe_records": FRAME.to_dict(orient="records")}))
    writer.submit(invocation(b"{not json"))
    writer.close()
    assert not writer.thread.is_alive()
    assert writer.dropped == 2
    err = capsys.readouterr().err
    assert "warning: inference capture: 2 row(s) not logged: StorageError: inference log: cannot write" in err
    assert "warning: inference capture: a request was not logged: JSONDecodeError: Expecting property name" in err

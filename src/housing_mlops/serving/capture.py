"""Inference capture off the request path: a bounded queue and one writer thread; pure, no MLflow.

The serving middleware hands each answered /invocations request (its body and MLflow's JSON answer)
to `CaptureWriter.submit`, which only enqueues. The writer thread parses the bodies into rows and
writes them to the inference log in batches (one file per `flush_rows` rows or `flush_seconds`).
A full queue, a body it cannot parse or a failed write logs one warning line and drops the
record; nothing here raises into a request.
"""

import io
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from housing_mlops.monitoring import inference_log

log = logging.getLogger(__name__)

WARN_EVERY_S = 10.0  # at most one warning line per kind of trouble in this many seconds


@dataclass(frozen=True)
class Invocation:
    """One answered scoring request, as the middleware saw it."""

    body: bytes
    content_type: str
    response: bytes
    model_version: str
    model_uri: str
    scored_at: datetime = field(default_factory=lambda: datetime.now(UTC))


Record = dict[str, Any]  # one scored row: column -> value, as the client sent it


def _records(payload: Any) -> list[Record]:
    """The rows of one of MLflow's JSON input formats (dataframe_split / dataframe_records / instances / inputs)."""
    if not isinstance(payload, dict):
        raise ValueError("the body is not a JSON object")
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        data = split["data"]
        columns = split.get("columns") or [str(i) for i in range(len(data[0]) if data else 0)]
        return [dict(zip(columns, row, strict=True)) for row in data]
    if "dataframe_records" in payload:
        return [dict(row) for row in payload["dataframe_records"]]
    for key in ("instances", "inputs"):
        if key in payload:
            value = payload[key]
            if isinstance(value, dict):  # columns: lists of values, or one row of scalars
                if not any(isinstance(v, list) for v in value.values()):
                    return [dict(value)]
                return [dict(zip(value, row, strict=True)) for row in zip(*value.values(), strict=True)]
            return [row if isinstance(row, dict) else {str(i): v for i, v in enumerate(row)} for row in value]
    raise ValueError("the body holds none of dataframe_split, dataframe_records, instances, inputs")


def parse(invocation: Invocation) -> tuple[list[Record], list[float]]:
    """The scored rows (columns as the client sent them) and their predictions, in plain Python.

    The writer thread calls this for each request as it arrives; pandas only runs once per written
    file, so that capture holds the interpreter as little as possible between requests.

    Raises:
        ValueError: the body or the answer is not one the log can hold.
    """
    if invocation.content_type.split(";")[0].strip().lower() == "text/csv":
        table = pd.read_csv(io.BytesIO(invocation.body))
        records = [dict(zip(map(str, table.columns), row, strict=True)) for row in table.itertuples(index=False)]
    else:
        records = _records(json.loads(invocation.body))
    answer = json.loads(invocation.response)
    predictions = answer.get("predictions") if isinstance(answer, dict) else answer
    if not isinstance(predictions, list) or len(predictions) != len(records):
        raise ValueError(f"the answer does not hold one prediction for each of the {len(records)} row(s)")
    if not all(isinstance(p, int | float) and not isinstance(p, bool) for p in predictions):
        raise ValueError("the answer's predictions are not numbers")
    return records, [float(p) for p in predictions]


@dataclass
class _Pending:
    """Parsed requests waiting to be written: one entry per row."""

    records: list[Record] = field(default_factory=list)
    predictions: list[float] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    stamps: list[datetime] = field(default_factory=list)
    requests: int = 0
    since: float = 0.0  # time.monotonic() of the oldest

    def add(self, invocation: Invocation, records: list[Record], predictions: list[float]) -> None:
        if not self.requests:
            self.since = time.monotonic()
        n = len(records)
        self.records += records
        self.predictions += predictions
        self.versions += [invocation.model_version] * n
        self.uris += [invocation.model_uri] * n
        self.stamps += [invocation.scored_at] * n
        self.requests += 1

    def rows(self) -> pd.DataFrame:
        """The log rows of everything pending, in one frame."""
        return inference_log.rows_for(
            pd.DataFrame(self.records), self.predictions, self.versions, self.uris, "serve", self.stamps
        )


class _Throttle:
    """One warning line per kind at most every WARN_EVERY_S seconds, with how many it stands for."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.lock = threading.Lock()

    def warn(self, kind: str, message: str) -> None:
        with self.lock:
            self.count[kind] = self.count.get(kind, 0) + 1
            now = time.monotonic()
            if now - self.last.get(kind, -WARN_EVERY_S) < WARN_EVERY_S:
                return
            self.last[kind], n = now, self.count.pop(kind)
        log.warning(f"inference capture: {message}" + (f" ({n} times since the last such warning)" if n > 1 else ""))


class CaptureWriter:
    """A bounded queue of invocations and the daemon thread that writes them to the inference log."""

    def __init__(self, root: Path, queue_size: int, flush_rows: int, flush_seconds: float) -> None:
        """Prepare the writer; `start` starts its thread.

        Args:
            root: the inference log's folder.
            queue_size: invocations waiting at most; more are dropped (config `capture.queue_size`).
            flush_rows: write once this many rows wait (config `capture.flush_rows`).
            flush_seconds: or once the oldest waiting one is this old (config `capture.flush_seconds`).
        """
        self.root = root
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.queue: queue.Queue[Invocation | None] = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(target=self._run, name="inference-capture", daemon=True)
        self.throttle = _Throttle()
        self.dropped = 0  # invocations not logged: queue full, unparseable, or a failed write
        self.written_rows = 0

    def start(self) -> "CaptureWriter":
        """Start the writer thread; return self."""
        self.thread.start()
        return self

    def submit(self, invocation: Invocation) -> None:
        """Enqueue without waiting; a full queue drops the invocation with a warning."""
        try:
            self.queue.put_nowait(invocation)
        except queue.Full:
            self.dropped += 1
            self.throttle.warn("full", f"queue full ({self.queue.maxsize} requests waiting): a request was not logged")

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what waits and stop the thread (waits at most `timeout_s`)."""
        if not self.thread.is_alive():
            return
        try:
            self.queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self.thread.join(timeout_s)

    def _run(self) -> None:
        pending = _Pending()
        while True:
            wait = None if not pending.requests else max(0.0, pending.since + self.flush_seconds - time.monotonic())
            item: Invocation | bool | None
            try:
                item = self.queue.get(timeout=wait)
            except queue.Empty:
                item = False  # nothing new: the oldest waiting request is due
            if isinstance(item, Invocation):
                self._add(pending, item)
            aged = time.monotonic() - pending.since >= self.flush_seconds
            if pending.requests and (item is None or len(pending.records) >= self.flush_rows or aged):
                self._write(pending)
                pending = _Pending()
            if item is None:
                return

    def _add(self, pending: _Pending, invocation: Invocation) -> None:
        try:
            records, predictions = parse(invocation)
        except Exception as exc:  # a request the log cannot hold is dropped, whatever it is
            self.dropped += 1
            self.throttle.warn("parse", f"a request was not logged: {inference_log.one_line(exc)}")
            return
        pending.add(invocation, records, predictions)

    def _write(self, pending: _Pending) -> None:
        try:
            inference_log.write_rows(self.root, pending.rows())
            self.written_rows += len(pending.records)
        except Exception as exc:  # a failed write drops the records, never the server
            self.dropped += pending.requests
            self.throttle.warn("write", f"{len(pending.records)} row(s) not logged: {inference_log.one_line(exc)}")

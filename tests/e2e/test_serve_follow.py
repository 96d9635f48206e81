"""Serving follows the champion alias (issue 19, item 3): `make serve`'s command with
`serving.poll_s=1` on loopback, under a bounded load of single-row requests, while champion moves
to v2 and `make rollback` moves it back; then the faults: a champion whose signature differs is
refused with one line, and an unreachable tracking server changes nothing but two lines.

No timing is asserted (the machines are shared): that the swap came at the first poll that saw
the move is what the server's own line says (the poll before it saw the old version); the delay
from the move to the first answer of the new version is printed (`-s` shows it).
"""

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression

from housing_mlops.monitoring.inference_log import read_window
from tests.conftest import MODEL, Store, Trained
from tests.e2e.served import frame_body, make, post_with_headers, register_again, serving
from tests.services import TrackingServer

pytestmark = pytest.mark.e2e
POLL = "serving.poll_s=1"
CAPTURE = {"HOUSING_CAPTURE": "1"}
THREADS = 4
MAX_REQUESTS = 20_000  # per thread: the load is bounded in count ...
MAX_SECONDS = 240.0  # ... and in time, whatever happens to the alias
WAIT_S = 90.0  # for a change the test waits on (a swap, a log line): generous on a loaded machine
SWAP = re.compile(
    r"serving v(\d+) instead of v(\d+): champion was v(\d+) at poll (\d+)(?: \(start\))? "
    r"and v\d+ at poll (\d+); swapped"
)


@dataclass
class Answer:
    at: float  # time.monotonic() when it came
    status: int  # 0: no HTTP answer at all
    version: str | None  # X-Model-Version


@dataclass
class Load:
    """THREADS clients posting single rows in a loop, each answer recorded per thread, until stopped."""

    url: str
    bodies: list[bytes]
    answers: list[list[Answer]] = field(default_factory=lambda: [[] for _ in range(THREADS)])
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Load":
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(THREADS)]
        for thread in self.threads:
            thread.start()
        return self

    def _client(self, index: int) -> None:
        mine, deadline = self.answers[index], time.monotonic() + MAX_SECONDS
        while not self.stop.is_set() and len(mine) < MAX_REQUESTS and time.monotonic() < deadline:
            body = self.bodies[len(mine) % len(self.bodies)]
            try:
                status, _, headers = post_with_headers(self.url, body)
                mine.append(Answer(time.monotonic(), status, headers.get("x-model-version")))
            except OSError:
                mine.append(Answer(time.monotonic(), 0, None))

    def first(self, version: str, after: float) -> float:
        """When every thread has had an answer of `version` after `after`: the first such answer's time."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            firsts = [
                next((a.at for a in list(mine) if a.at > after and a.version == version), None) for mine in self.answers
            ]
            if all(t is not None for t in firsts):
                return min(t for t in firsts if t is not None)
            assert any(t.is_alive() for t in self.threads), "every load thread ended before the switch was seen"
            time.sleep(0.05)
        raise AssertionError(f"not every load thread saw v{version} within {WAIT_S:.0f} s")

    def finish(self) -> list[list[Answer]]:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        return self.answers


def lines(log: Path, pattern: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if re.search(pattern, line)]


def wait_for_line(log: Path, pattern: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if found := lines(log, pattern):
            return found[0]
        time.sleep(0.1)
    raise AssertionError(
        f"no line matching {pattern!r} within {WAIT_S:.0f} s in the server's log:\n{log.read_text()[-3000:]}"
    )


def single_rows(store: Store, count: int = 50) -> list[bytes]:
    rows = pd.read_csv(store.env["HOUSING_DATA_SOURCE"]).drop(columns="median_house_value").head(count)
    return [frame_body(rows.iloc[[i]]) for i in range(len(rows))]


def collapsed(versions: list[str | None]) -> list[str | None]:
    """The versions in order with repeats removed: 1 1 2 2 1 -> 1 2 1."""
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


def test_serving_follows_champion_to_v2_and_back_under_load_without_a_failed_request(
    trained: Trained, tmp_path: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    store = trained.copy(tmp_path / "store")
    register_again(store)
    client = store.client
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    log, served_log = tmp_path / "serve.log", tmp_path / "store" / "inference-log"
    with serving(store, f"{POLL} capture.flush_seconds=0.2", CAPTURE, log=log) as url:
        load = Load(url, single_rows(store)).start()
        started = time.monotonic()
        load.first("1", after=started)
        client.set_registered_model_alias(MODEL, "champion", "2")  # as the UI's alias editor does
        moved = time.monotonic()
        to_v2 = load.first("2", after=moved)
        back = time.monotonic()
        make(store, "rollback")
        rolled = time.monotonic()
        to_v1 = load.first("1", after=back)  # every thread had a v2 answer before `back`
        answers = load.finish()
        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"

        every = [a for mine in answers for a in mine]
        ok = Counter(a.version for a in every if a.status == 200)
        captured = wait_for_rows(served_log, sum(ok.values()))

    failed = [a for a in every if a.status != 200]
    assert not failed, f"{len(failed)} of {len(every)} requests failed, e.g. {failed[:3]}"
    assert all(a.version in ("1", "2") for a in every), "a response without X-Model-Version"
    for mine in answers:  # each client saw 1, then 2, then 1: never an old version after a new one
        assert collapsed([a.version for a in mine]) == ["1", "2", "1"]
    # the swaps, each at the first poll that saw the alias move: the poll before it saw the old version
    swaps = [SWAP.search(line) for line in lines(log, "serving v.* instead of")]
    assert [(m.group(1), m.group(2)) for m in swaps if m] == [("2", "1"), ("1", "2")], log.read_text()[-3000:]
    for m in swaps:
        assert m is not None
        assert m.group(3) == m.group(2), m.group(0)  # what the poll before saw is what was served
        assert int(m.group(5)) == int(m.group(4)) + 1, m.group(0)  # and it was the poll just before
    # the inference log records, per request, the version that answered it
    assert Counter(captured["model_version"]) == ok
    for version, uri in captured.groupby("model_version")["model_uri"].unique().items():
        assert list(uri) == [f"models:/{MODEL}/{version}"]
    # the figures (in the JUnit XML with --junitxml): the switch as a client sees it, under this load
    record_testsuite_property(
        "requests", f"{len(every)} by {THREADS} threads in {to_v1 - started:.1f} s, {dict(ok)} by version"
    )
    record_testsuite_property("move_to_first_v2_answer_s", f"{to_v2 - moved:.2f}")
    record_testsuite_property(
        "rollback_start_to_first_v1_answer_s", f"{to_v1 - back:.2f} (make rollback ran {rolled - back:.1f} s)"
    )
    record_testsuite_property("server_swaps", " | ".join(lines(log, "instead of")))


def wait_for_rows(root: Path, rows: int) -> pd.DataFrame:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        window = read_window(root, "1h")
        if len(window.rows) >= rows:
            return window.rows
        time.sleep(0.2)
    raise AssertionError(f"{rows} captured rows did not reach {root} within {WAIT_S:.0f} s")


def register_other_signature(store: Store) -> str:
    """A version of MODEL that takes two other columns: a LinearRegression logged with real MLflow."""
    mlflow.set_tracking_uri(store.uri)
    X = pd.DataFrame({"rooms": [1.0, 2.0, 3.0], "age": [10.0, 5.0, 1.0]})
    y = pd.Series([1.0, 2.0, 3.5])
    mlflow.set_experiment("other-signature")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            LinearRegression().fit(X, y),
            name="model",
            signature=infer_signature(X, y),
            input_example=X.head(1),
            registered_model_name=MODEL,
            pip_requirements=["scikit-learn"],
        )
    return str(info.registered_model_version)


@pytest.mark.faults
def test_a_champion_with_other_inputs_is_refused_once_and_the_served_version_keeps_answering(
    trained: Trained, tmp_path: Path
) -> None:
    store = trained.copy(tmp_path / "store")
    other = register_other_signature(store)
    client = store.client
    body = single_rows(store, 1)[0]
    log = tmp_path / "serve.log"
    with serving(store, POLL, log=log) as url:
        client.set_registered_model_alias(MODEL, "champion", other)
        line = wait_for_line(log, f"champion v{other} not served")
        time.sleep(3)  # about three polls: each sees the refused version again
        client.delete_registered_model_alias(MODEL, "champion")
        wait_for_line(log, "champion is not set")  # a poll after those: they are all in the log
        status, _, headers = post_with_headers(url, body)
    assert (status, headers["x-model-version"]) == (200, "1")
    assert lines(log, "not served") == [line]
    assert "still serving v1: its inputs differ from the served version's: missing " in line
    assert "added rooms, age" in line
    assert not lines(log, "instead of")


@pytest.mark.faults
def test_an_unreachable_tracking_server_keeps_the_loaded_version_with_one_line_each_way(
    trained: Trained, tmp_path: Path
) -> None:
    store = trained.copy(tmp_path / "store")
    server = TrackingServer(store.uri, tmp_path / "server")
    server.start()
    # one try per poll, so that a poll while the server is down ends quickly (the Makefile's
    # MLFLOW_HTTP_* settings retry twice with back-off: the same, a few seconds later)
    env = {
        "MLFLOW_TRACKING_URI": server.uri,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    body = single_rows(store, 1)[0]
    log = tmp_path / "serve.log"
    try:
        with serving(store, POLL, env, log=log) as url:
            assert post_with_headers(url, body)[2]["x-model-version"] == "1"
            server.kill()
            wait_for_line(log, "unreachable")
            answers = [post_with_headers(url, body) for _ in range(20)]
            time.sleep(3)  # about three more polls fail
            server.start()  # on the same port
            wait_for_line(log, "is back;")
            answers += [post_with_headers(url, body) for _ in range(5)]
    finally:
        server.kill()
    assert {(status, headers["x-model-version"]) for status, _, headers in answers} == {(200, "1")}
    assert len(lines(log, "unreachable")) == 1, log.read_text()[-3000:]
    assert lines(log, "is back;") == [f"warning: tracking server {server.uri} is back; champion is v1"]
    assert lines(log, "unreachable") == [
        f"warning: tracking server {server.uri} unreachable ([Errno 111] Connection refused); "
        "serving v1 until it is back"
    ]

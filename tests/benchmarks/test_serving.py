"""The serving part's pure pieces: latency percentiles, the /invocations body, a free port."""

import json
import math
import socket

import numpy as np
import pandas as pd
from benchmarks.report import latency_text
from benchmarks.serving import free_port, payload, percentiles


def test_percentiles_of_one_to_a_hundred_ms() -> None:
    ms = [float(x) for x in range(1, 101)]
    assert percentiles(ms) == {"p50_ms": 50.5, "p95_ms": 95.05, "p99_ms": 99.01}


def test_percentiles_round_to_the_microsecond() -> None:
    figures = percentiles([1.23456, 1.23456])
    assert figures == {"p50_ms": 1.235, "p95_ms": 1.235, "p99_ms": 1.235}


def test_latency_text_has_two_decimals() -> None:
    assert latency_text({"p50_ms": 1.5, "p95_ms": 2.345, "p99_ms": 10.0}) == "1.50 / 2.35 / 10.00 ms"


def test_payload_is_mlflow_dataframe_split_json() -> None:
    frame = pd.DataFrame({"median_income": [8.3, 7.2], "ocean_proximity": ["NEAR BAY", "INLAND"]}, index=[10, 20])
    body = json.loads(payload(frame))
    assert body == {
        "dataframe_split": {
            "columns": ["median_income", "ocean_proximity"],
            "data": [[8.3, "NEAR BAY"], [7.2, "INLAND"]],
        }
    }


def test_payload_keeps_values_exact() -> None:
    frame = pd.DataFrame({"x": np.array([0.1, 1e-7, 123456.789])})
    values = [row[0] for row in json.loads(payload(frame))["dataframe_split"]["data"]]
    assert all(math.isclose(a, b) for a, b in zip(values, frame["x"], strict=True))


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))

"""The serving part's pure pieces: percentiles, profile figures, the sklearn copy, parity, /invocations, a port."""

import json
import math
import socket
from pathlib import Path

import numpy as np
import pandas as pd
from benchmarks.report import latency_text
from benchmarks.serving import (
    free_port,
    parity_figures,
    payload,
    percentiles,
    profile_settings,
    profiled,
    sklearn_copy,
)
from benchmarks.settings import Settings

from housing_mlops.config.registry import ProfileConfig


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


PROFILE = {
    "size_mb": 1.5,
    "cpu_p95_ms": 0.12,
    "load_avg_1m_before": 1.0,
    "load_avg_1m_after": 1.25,
    "threads": {
        "1": {
            "load_s": 0.04,
            "single_row": {
                "wall_p50_ms": 0.1,
                "wall_p95_ms": 0.15,
                "wall_p99_ms": 0.3,
                "cpu_p50_ms": 0.09,
                "cpu_p95_ms": 0.12,
                "cpu_p99_ms": 0.2,
            },
            "batches": {
                "1": {"wall_ms": 0.1, "rows_per_s": 10000.0, "cpu_rows_per_s": 11000.0},
                "10000": {"wall_ms": 40.0, "rows_per_s": 250000.0, "cpu_rows_per_s": 260000.0},
            },
        }
    },
}


def test_profiled_reads_the_one_thread_figures_of_the_batch_asked_for() -> None:
    assert profiled(PROFILE, 10000) == {
        "p50_ms": 0.1,
        "p95_ms": 0.15,
        "p99_ms": 0.3,
        "cpu_p50_ms": 0.09,
        "cpu_p95_ms": 0.12,
        "cpu_p99_ms": 0.2,
        "batch_rows": 10000,
        "batch_ms": 40.0,
        "batch_rows_per_s": 250000.0,
        "batch_cpu_rows_per_s": 260000.0,
        "load_s": 0.04,
        "size_mb": 1.5,
        "load_avg_1m": [1.0, 1.25],
    }


def test_profile_settings_spread_the_calls_over_the_repeats(tmp_path: Path) -> None:
    settings = Settings(True, ("serving",), tmp_path, "", tmp_path, tmp_path, tmp_path, "bench")
    settings.latency_calls, settings.batch_repeats = 100, 3
    base = ProfileConfig(repeats=5, calls=60, warmup=10, batch_sizes=[1, 100, 10000], seed=7)
    assert profile_settings(base, settings, 1000) == ProfileConfig(
        repeats=3, calls=33, warmup=10, batch_sizes=[1, 1000], seed=7
    )


def test_sklearn_copy_serves_model_skops_and_leaves_the_champion_alone(tmp_path: Path) -> None:
    champion = tmp_path / "champion"
    (champion / "serving").mkdir(parents=True)
    info = {"variant": "onnx", "threads": 1, "chunk_rows": 1024, "trusted_types": ["x.Y"]}
    (champion / "serving" / "serving.json").write_text(json.dumps(info))
    (champion / "serving" / "model.onnx").write_bytes(b"graph")
    (champion / "model.skops").write_bytes(b"pipeline")
    copy = sklearn_copy(champion, tmp_path / "copy")
    assert json.loads((copy / "serving" / "serving.json").read_text()) == info | {"variant": "sklearn"}
    assert not (copy / "serving" / "model.onnx").exists()
    assert (copy / "model.skops").read_bytes() == b"pipeline"
    assert json.loads((champion / "serving" / "serving.json").read_text())["variant"] == "onnx"
    assert (champion / "serving" / "model.onnx").exists()


def test_parity_figures_of_two_variants() -> None:
    y = np.array([100.0, 200.0, 400.0])
    sklearn = np.array([110.0, 190.0, 400.0])
    onnx = sklearn * (1 + np.array([0.0, 1e-9, -2e-9]))
    figures = parity_figures(y, {"onnx": onnx, "sklearn": sklearn}, 1e-9)
    assert figures["rows"] == 3
    assert figures["tagged_max_rel_error"] == 1e-9
    assert math.isclose(figures["max_rel_error"], 2e-9, rel_tol=1e-6)
    assert figures["nan"] == 0
    assert figures["equal_4dp"] == {"wmape": True, "rmse": True}
    assert math.isclose(figures["scores"]["sklearn"]["wmape"], 20 / 700)
    assert math.isclose(figures["scores"]["sklearn"]["rmse"], math.sqrt(200 / 3))


def test_parity_figures_count_nan_and_tell_scores_apart() -> None:
    y = np.array([100.0, 200.0])
    figures = parity_figures(y, {"onnx": np.array([100.0, np.nan]), "sklearn": np.array([100.0, 210.0])}, None)
    assert figures["nan"] == 1
    assert figures["equal_4dp"] == {"wmape": False, "rmse": False}


def test_parity_figures_of_the_sklearn_variant_alone() -> None:
    figures = parity_figures(np.array([1.0, 2.0]), {"sklearn": np.array([1.0, 2.0])}, None)
    assert set(figures) == {"rows", "tagged_max_rel_error", "scores"}
    assert figures["scores"]["sklearn"] == {"wmape": 0.0, "rmse": 0.0}

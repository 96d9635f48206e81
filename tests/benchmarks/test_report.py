"""The bench's Markdown report: every figure of a small results dict lands in the right table cell."""

import copy
from pathlib import Path
from typing import Any

import pytest
from benchmarks.report import (
    README_END,
    README_START,
    checkpoints,
    goal_row,
    markdown_table,
    met,
    register_row,
    render,
    update_readme,
)

MACHINE = {
    "cpu_model": "Test CPU",
    "cores": 2,
    "memory_gb": 8.0,
    "python": "3.11.7",
    "libraries": {"mlflow": "3.0", "scikit-learn": "1.9", "optuna": "5.0"},
    "git_sha": "abc1234",
    "git_dirty": False,
    "quick": False,
}


def path(p50: float, p95: float, p99: float, batch: int, rate: float, **extra: Any) -> dict[str, Any]:
    """One variant's figures on one serving path."""
    return {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "batch_rows": batch, "batch_rows_per_s": rate} | extra


def graph_profile(rows: int, wall: float, run: float, model: float) -> dict[str, Any]:
    """graph_profile.profile_graph's figures: the model stage takes `model` ms of a `wall` ms call."""
    stages = {
        "model": {"ms": model, "ops": ["Cast", "TreeEnsembleRegressor"]},
        "features.neighbors": {"ms": min(1.0, model / 10), "ops": ["Add", "Div", "Gather", "TopK", "Where"]},
    }
    return {"rows": rows, "calls": 5, "wall_ms": wall, "run_ms": run, "stages": stages}


def serving_results() -> dict[str, Any]:
    """Both variants on the three paths, parity and the register run's cost, with round figures."""
    cpu = {"cpu_p50_ms": 0.09, "cpu_p99_ms": 0.2, "load_s": 0.05, "load_avg_1m": [1.0, 1.25]}
    return {
        "model_uri": "models:/m@champion",
        "version": "1",
        "served": "onnx",
        "calls": 1000,
        "repeats": 20,
        "load_avg_1m": [1.0, 1.5],
        "variants": {
            "onnx": {
                "runtime": path(0.1, 0.15, 0.25, 10000, 250000.0, **cpu),
                "pyfunc": path(1.5, 2.25, 3.125, 1000, 12345.6, **cpu),
                "http": path(4.0, 5.0, 6.0, 1000, 2000.0, startup_s=7.5, load_avg_1m=[1.25, 1.5]),
                "graph_profile": {
                    "one_row": {
                        "calls": 100,
                        "feeds_us": 60.0,
                        "run_us": 150.0,
                        "run_p99_us": 4100.0,
                        "predict_us": 215.5,
                    },
                    "batch": graph_profile(10000, 40.0, 39.0, 30.0),
                },
            },
            "sklearn": {
                "runtime": path(8.0, 9.0, 10.0, 10000, 20000.0, **cpu),
                "pyfunc": path(9.0, 10.0, 11.0, 1000, 15000.0, **cpu),
                "http": path(12.0, 13.0, 14.0, 1000, 9000.0, startup_s=8.0, load_avg_1m=[1.5, 1.5]),
            },
        },
        "parity": {
            "rows": 4128,
            "tagged_max_rel_error": 5.8e-8,
            "max_rel_error": 6e-8,
            "nan": 0,
            "equal_4dp": {"wmape": True, "rmse": True},
            "scores": {
                "onnx": {"wmape": 0.16789, "rmse": 45678.12345},
                "sklearn": {"wmape": 0.16789, "rmse": 45678.12341},
            },
        },
        "register": {"wall_s": None, "run_s": 21.0, "compile_s": 6.0, "profile_s": 9.0},
    }


def small_results() -> dict[str, Any]:
    """A full run's results with round figures: 3 steps, both serving paths, 6 sweep trials."""
    return {
        "date": "2026-01-02",
        "command": "python -m benchmarks.bench",
        "machine": dict(MACHINE),
        "data": {"path": "housing.csv", "rows": 20640},
        "cold": {
            "wall_s": 250.0,
            "steps": [
                {"step": "ingest", "status": "ran", "wall_s": 5.5, "run_s": 5.4},
                {"step": "impute", "status": "ran", "wall_s": 12.0, "run_s": 11.9},
                {"step": "sweep", "status": "ran", "wall_s": 180.0, "run_s": 179.0},
            ],
            "outside_steps_s": 52.5,
            "register": {"wall_s": 25.0, "run_s": 22.0, "compile_s": 6.5, "profile_s": 9.5},
        },
        "floor": {
            "wall_s": 200.0,
            "seconds": {"ingest": 0.1, "impute": 6.0, "sweep": 150.0},
            "sweep": {"trials_finished": 20},
            "same_best_as_pipeline": True,
            "same_test_wmape_as_pipeline": True,
        },
        "ratio": 1.25,
        "cached": {"median_s": 9.5, "runs_s": [9.4, 9.5, 9.9], "fully_cached": True, "steps_that_ran": []},
        "serving": serving_results(),
        "sweep": {
            "family": "ridge",
            "folds": 3,
            "n_startup_trials": 2,
            "plot": "2026-01-02-sweep.png",
            "samplers": {
                "tpe": {
                    "best_so_far": [None, 0.3, 0.25, 0.25, 0.2, 0.2],
                    "final_best": 0.2,
                    "best_at_trial": 5,
                    "pruned": 1,
                    "seconds": 12.4,
                },
                "random": {
                    "best_so_far": [0.4, 0.3, 0.3, 0.3, 0.3, 0.3],
                    "final_best": 0.3,
                    "best_at_trial": 2,
                    "pruned": 0,
                    "seconds": 10.0,
                },
            },
        },
    }


def table(markdown: str, first_header: str) -> list[list[str]]:
    """The rows (stripped cells, header first, no separator) of the table whose header starts so."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} "))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not all(set(c) <= set(":-") and c for c in cells):
            rows.append(cells)
    return rows


def by_label(rows: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in rows[1:]}


def test_checkpoints_are_round_marks_up_to_n_and_n_itself() -> None:
    assert checkpoints(1) == [1]
    assert checkpoints(6) == [1, 5, 6]
    assert checkpoints(50) == [1, 5, 10, 20, 30, 40, 50]
    assert checkpoints(120) == [1, 5, 10, 20, 30, 40, 50, 75, 100, 120]


def test_met_says_yes_at_the_goal_no_above_and_dash_without_a_figure() -> None:
    assert met(10.0, 10.0) == "yes"
    assert met(10.01, 10.0) == "**no**"
    assert met(None, 10.0) == "—"
    assert met(10.0, 10.0, at_least=True) == "yes"
    assert met(9.99, 10.0, at_least=True) == "**no**"


def test_markdown_table_keeps_cells_verbatim() -> None:
    lines = markdown_table(["step", "seconds"], [["split", "0.0"], ["sweep", "1.10"], ["(between)", ""]])
    assert len(lines) == 5
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["step", "seconds"]
    # no number parsing: 0.0 and 1.10 stay as formatted, the empty cell stays empty
    assert [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]] == [
        ["split", "0.0"],
        ["sweep", "1.10"],
        ["(between)", ""],
    ]


def test_summary_table_holds_every_headline_figure_against_its_goal() -> None:
    summary = by_label(table(render(small_results(), ""), "measure"))
    assert summary["pipeline end to end, cold (empty store)"] == ["250.0 s", "≤ 240 s", "**no**"]
    assert summary["sweep step: 0 finished trials"] == ["180.0 s", "50 trials ≤ 150 s", "**no**"]
    floor_label = "compute floor: same fits, bare script (20 sweep trials, same best CV and test wMAPE as the pipeline)"
    assert summary[floor_label] == ["200.0 s", "", ""]
    assert summary["pipeline / floor"] == ["1.250", "≤ 1.10", "**no**"]
    assert summary["fully cached re-run (median of 3)"] == ["9.5 s", "≤ 8 s", "**no**"]
    assert summary["served, compiled (ONNX Runtime): own runtime, one row, p50"] == ["0.100 ms", "≤ 0.2 ms", "yes"]
    assert summary["served, compiled (ONNX Runtime): own runtime, 10,000-row batch, 1 thread"] == [
        "250,000 rows/s",
        "≥ 200,000 rows/s",
        "yes",
    ]
    assert summary["served, compiled (ONNX Runtime): `mlflow.pyfunc`, one row, p50"] == ["1.50 ms", "≤ 2 ms", "yes"]
    assert summary["served, compiled (ONNX Runtime): `mlflow.pyfunc`, one row, p99"] == ["3.12 ms", "≤ 5 ms", "yes"]
    assert summary["served, compiled (ONNX Runtime): HTTP `mlflow models serve`, one row, p50"] == [
        "4.00 ms",
        "≤ 5 ms",
        "yes",
    ]
    assert summary["not served, sklearn Pipeline: one row p50, own runtime / pyfunc / HTTP"] == [
        "8.00 / 9.00 / 12.00 ms",
        "",
        "",
    ]
    assert summary["parity: max relative error, compiled vs sklearn, 4,128 test rows (version tag 5.8e-08)"] == [
        "6e-08",
        "≤ 0.0001",
        "yes",
    ]
    assert summary["test wMAPE, compiled / sklearn"] == ["0.1679 / 0.1679", "equal to 4 decimals", "yes"]
    assert summary["test RMSE, compiled / sklearn"] == ["45,678.1234 / 45,678.1234", "equal to 4 decimals", "yes"]
    assert summary[
        "register step (cold run; conversion + parity 6.5 s, profiling 9.5 s, fit, scoring, logging and gate 6.0 s)"
    ] == [
        "25.0 s",
        "≤ 30 s",
        "yes",
    ]
    assert summary["sweep: best CV wMAPE after 6 trials, TPE / random"][0] == "0.2000 / 0.3000"


def test_summary_flags_a_floor_that_differs_and_a_rerun_that_was_not_cached() -> None:
    results = small_results()
    results["floor"]["same_test_wmape_as_pipeline"] = False
    results["cached"] |= {"fully_cached": False, "steps_that_ran": ["sweep", "register"]}
    summary = by_label(table(render(results, ""), "measure"))
    assert any(label.endswith(", **results differ from the pipeline's**)") for label in summary)
    assert summary["re-run, **not fully cached** (sweep, register ran)"] == ["9.5 s", "≤ 8 s", "—"]


def test_steps_table_gives_ratios_only_above_half_a_second_of_floor() -> None:
    steps = by_label(table(render(small_results(), ""), "step"))
    assert steps["ingest"] == ["5.5", "5.4", "0.1", "—"]  # a sub-second floor time: the ratio is noise
    assert steps["impute"] == ["12.0", "11.9", "6.0", "2.00"]
    assert steps["sweep"] == ["180.0", "179.0", "150.0", "1.20"]
    assert steps["(launcher, orchestrator, between steps)"] == ["52.5", "", "", ""]


def test_steps_table_without_a_floor_shows_dashes() -> None:
    results = small_results()
    del results["floor"], results["ratio"]
    steps = by_label(table(render(results, ""), "step"))
    assert steps["impute"] == ["12.0", "11.9", "—", "—"]


def test_serving_table_lists_both_variants_on_every_path() -> None:
    markdown = render(small_results(), "")
    serving = table(markdown, "variant, path")
    assert serving[0] == [
        "variant, path",
        "p50 (ms)",
        "p95 (ms)",
        "p99 (ms)",
        "CPU p50 / p99 (ms)",
        "batch (rows)",
        "batch (rows/s)",
        "ready in (s)",
        "load avg 1 min",
    ]
    rows = by_label(serving)
    assert list(rows) == [
        "compiled (ONNX Runtime), own runtime",
        "compiled (ONNX Runtime), `mlflow.pyfunc`",
        "compiled (ONNX Runtime), HTTP `mlflow models serve`",
        "sklearn Pipeline, own runtime",
        "sklearn Pipeline, `mlflow.pyfunc`",
        "sklearn Pipeline, HTTP `mlflow models serve`",
    ]
    cpu = "0.090 / 0.200"
    assert rows["compiled (ONNX Runtime), own runtime"] == [
        "0.100", "0.150", "0.250", cpu, "10,000", "250,000", "0.05", "1.00 → 1.25"
    ]  # fmt: skip
    assert rows["compiled (ONNX Runtime), HTTP `mlflow models serve`"] == [
        "4.000", "5.000", "6.000", "—", "1,000", "2,000", "7.50", "1.25 → 1.50"
    ]  # fmt: skip
    assert "1000 single rows per path in 20 repeats" in markdown
    assert "served: onnx (v1); load average 1 min over the part: 1.00 → 1.50." in markdown


def test_graph_table_splits_a_call_into_stages_session_and_feeds() -> None:
    markdown = render(small_results(), "")
    graph = table(markdown, "stage")
    assert graph[0] == ["stage", "op types", "10,000 rows (ms)", "share of the call"]
    assert by_label(graph) == {
        "model": ["Cast, TreeEnsembleRegressor", "30.00", "75.0 %"],
        "features.neighbors": ["Add, Div, Gather +2", "1.00", "2.5 %"],
        "ONNX Runtime outside the nodes": ["", "8.00", "20.0 %"],
        "outside the session: feeds, chunks": ["", "1.00", "2.5 %"],
        "whole call": ["", "40.00", "100.0 %"],
    }
    assert (
        "mean of 5 10,000-row calls. One row, profiler off (median of 100 distinct rows): feeds from pandas 60.0 µs, "
        in (markdown)
    )
    assert "session run 150.0 µs (p99 4,100.0 µs), whole predict 215.5 µs." in markdown


def test_summary_of_a_sklearn_champion_has_no_parity_rows_and_misses_goals() -> None:
    results = small_results()
    serving = results["serving"]
    serving["served"] = "sklearn"
    del serving["variants"]["onnx"]
    serving["parity"] = {"rows": 4128, "tagged_max_rel_error": None, "scores": {"sklearn": {"wmape": 0.2, "rmse": 1.0}}}
    summary = by_label(table(render(results, ""), "measure"))
    assert summary["served, sklearn Pipeline: own runtime, one row, p50"] == ["8.000 ms", "≤ 0.2 ms", "**no**"]
    assert summary["served, sklearn Pipeline: own runtime, 10,000-row batch, 1 thread"][2] == "**no**"
    assert not any(label.startswith(("parity", "test wMAPE", "not served")) for label in summary)


def test_summary_flags_parity_with_nan_and_scores_that_differ() -> None:
    results = small_results()
    results["serving"]["parity"] |= {"nan": 2, "equal_4dp": {"wmape": True, "rmse": False}}
    summary = by_label(table(render(results, ""), "measure"))
    assert summary["parity: max relative error, compiled vs sklearn, 4,128 test rows (version tag 5.8e-08)"][2] == (
        "**no** (NaN)"
    )
    assert summary["test wMAPE, compiled / sklearn"][2] == "yes"
    assert summary["test RMSE, compiled / sklearn"][2] == "**no**"


def test_register_row_falls_back_on_the_champions_register_run() -> None:
    results = small_results()
    del results["cold"]
    assert register_row(results) == [
        "register step (inside the champion's register run; conversion + parity 6.0 s, profiling 9.0 s, "
        "fit, scoring, logging and gate 6.0 s)",
        "21.0 s",
        "≤ 30 s",
        "yes",
    ]
    results["serving"]["register"] |= {"compile_s": None, "run_s": 31.0}
    assert register_row(results) == ["register step (inside the champion's register run)", "31.0 s", "≤ 30 s", "**no**"]
    del results["serving"]
    assert register_row(results) is None


def test_goal_row_is_a_ceiling_in_ms_and_a_floor_in_rows_per_second() -> None:
    assert goal_row("x", 0.2, "runtime_p50_ms", "ms", 3) == ["x", "0.200 ms", "≤ 0.2 ms", "yes"]
    assert goal_row("x", 199_999.0, "runtime_rows_per_s", "rows/s") == [
        "x",
        "199,999 rows/s",
        "≥ 200,000 rows/s",
        "**no**",
    ]


def test_sweep_table_reads_the_curves_at_the_checkpoints() -> None:
    markdown = render(small_results(), "results/")
    assert by_label(table(markdown, "trials")) == {
        "1": ["—", "0.4000"],
        "5": ["0.2000", "0.3000"],
        "6": ["0.2000", "0.3000"],
    }
    assert (
        "ridge, 3-fold CV, no timeout, the grid winner as trial 1; tpe: 12 s, 1 pruned, best at trial 5, " in markdown
    )
    assert "random: 10 s, 0 pruned, best at trial 2. TPE draws its first 2 trials at random" in markdown
    assert "![best CV wMAPE vs trials](results/2026-01-02-sweep.png)" in markdown


def test_render_heads_the_report_with_the_data_and_captions_every_table_with_the_machine() -> None:
    markdown = render(small_results(), "")
    assert markdown.startswith(
        "Benchmark of 2026-01-02 on the full data (20,640 rows), `python -m benchmarks.bench`.\n"
    )
    machine = "Test CPU, 2 cores, 8.0 GB RAM; Python 3.11.7, mlflow 3.0, scikit-learn 1.9, optuna 5.0; git abc1234"
    assert markdown.count(f"Machine: {machine}") == 5  # the summary, steps, serving, graph and sweep tables
    assert markdown.endswith("\n")


def test_render_of_a_quick_partial_run_with_a_failure() -> None:
    results = copy.deepcopy(small_results())
    results["machine"] |= {"quick": True, "git_dirty": True}
    results["data"]["rows"] = 2000
    for part in ("cold", "ratio", "cached", "serving", "sweep"):
        del results[part]
    results["errors"] = {"serving": "no champion\ntraceback ..."}
    markdown = render(results, "")
    assert "on the 2,000-row sample, smoke overrides (goals are for the full data)" in markdown
    assert "git abc1234 (uncommitted changes)" in markdown
    assert [row[0] for row in table(markdown, "measure")[1:]] == [
        "compute floor: same fits, bare script (20 sweep trials, same best CV and test wMAPE as the pipeline)"
    ]
    assert "Per step" not in markdown
    assert "Serving" not in markdown
    assert "Sweep efficiency" not in markdown
    assert markdown.rstrip().endswith("**serving failed:** no champion")


def test_update_readme_fails_without_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(RuntimeError, match="markers"):
        update_readme(readme, "table")
    assert README_START not in readme.read_text()
    assert README_END not in readme.read_text()


def test_summary_judges_the_best_trial_and_an_averaged_registered_model_each_on_its_own_row() -> None:
    results = small_results()
    results["cold"] |= {
        "sweep_best_cv_wmape": 0.1213,
        "sweep_grid_cv_wmape": 0.1223,
        "sweep_cv_wmape": 0.1201,
        "sweep_members": 3.0,
    }
    summary = by_label(table(render(results, ""), "measure"))
    assert summary["sweep: best CV wMAPE (grid winner on the same folds 0.1223)"] == [
        "0.1213",
        "≤ 0.1205, below the grid's",
        "**no**",
    ]
    assert summary["sweep: registered model's CV wMAPE (the best 3 trials averaged)"] == [
        "0.1201",
        "≤ 0.1205, below the grid's",
        "yes",
    ]
    results["cold"]["sweep_members"] = 1.0  # the best trial alone: its row says it all
    assert not any("averaged" in label for label in by_label(table(render(results, ""), "measure")))

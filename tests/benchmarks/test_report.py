"""The bench's Markdown report: every figure of a small results dict lands in the right table cell."""

import copy
from pathlib import Path
from typing import Any

import pytest
from benchmarks.report import (
    README_END,
    README_START,
    checkpoints,
    markdown_table,
    met,
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
        "serving": {
            "model_uri": "models:/m@champion",
            "calls": 1000,
            "in_process": {"p50_ms": 1.5, "p95_ms": 2.25, "p99_ms": 3.125, "batch_rows_per_s": 12345.6, "load_s": 0.8},
            "http": {"p50_ms": 4.0, "p95_ms": 5.0, "p99_ms": 6.0, "batch_rows_per_s": 2000.0, "startup_s": 7.5},
        },
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
    assert summary["pipeline end to end, cold (empty store)"] == ["250.0 s", "≤ 300 s", "yes"]
    floor_label = "compute floor: same fits, bare script (20 sweep trials, same best CV and test wMAPE as the pipeline)"
    assert summary[floor_label] == ["200.0 s", "", ""]
    assert summary["pipeline / floor"] == ["1.250", "≤ 1.10", "**no**"]
    assert summary["fully cached re-run (median of 3)"] == ["9.5 s", "≤ 10 s", "yes"]
    assert summary["single row, in-process `mlflow.pyfunc`, p50 / p95 / p99"][0] == "1.50 / 2.25 / 3.12 ms"
    assert summary["1,000-row batch, in-process `mlflow.pyfunc`"][0] == "12,346 rows/s"
    assert summary["single row, HTTP `mlflow models serve`, p50 / p95 / p99"][0] == "4.00 / 5.00 / 6.00 ms"
    assert summary["1,000-row batch, HTTP `mlflow models serve`"][0] == "2,000 rows/s"
    assert summary["sweep: best CV wMAPE after 6 trials, TPE / random"][0] == "0.2000 / 0.3000"


def test_summary_flags_a_floor_that_differs_and_a_rerun_that_was_not_cached() -> None:
    results = small_results()
    results["floor"]["same_test_wmape_as_pipeline"] = False
    results["cached"] |= {"fully_cached": False, "steps_that_ran": ["sweep", "register"]}
    summary = by_label(table(render(results, ""), "measure"))
    assert any(label.endswith(", **results differ from the pipeline's**)") for label in summary)
    assert summary["re-run, **not fully cached** (sweep, register ran)"] == ["9.5 s", "≤ 10 s", "—"]


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


def test_serving_table_lists_both_paths() -> None:
    serving = table(render(small_results(), ""), "path")
    assert serving[0] == [
        "path",
        "p50 (ms)",
        "p95 (ms)",
        "p99 (ms)",
        "1,000-row batch (rows/s)",
        "ready in (s)",
        "calls",
    ]
    assert by_label(serving) == {
        "in-process `mlflow.pyfunc`": ["1.50", "2.25", "3.12", "12,346", "0.80", "1000"],
        "HTTP `mlflow models serve`": ["4.00", "5.00", "6.00", "2,000", "7.50", "1000"],
    }


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
    assert markdown.count(f"Machine: {machine}") == 4  # the summary, steps, serving and sweep tables
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

"""The machine line every table is captioned with, and the bench's console output."""

import pytest
from benchmarks.machine import machine_line, say

MACHINE = {
    "cpu_model": "Test CPU",
    "cores": 2,
    "memory_gb": 8.0,
    "python": "3.11.7",
    "libraries": {"mlflow": "3.0", "scikit-learn": "1.9", "optuna": "5.0", "pandas": "3.1"},
    "git_sha": "abc1234",
    "git_dirty": False,
}


def test_machine_line_names_cpu_memory_python_libraries_and_commit() -> None:
    assert machine_line(MACHINE) == (
        "Test CPU, 2 cores, 8.0 GB RAM; Python 3.11.7, mlflow 3.0, scikit-learn 1.9, optuna 5.0; git abc1234"
    )
    assert machine_line(MACHINE | {"git_dirty": True}).endswith("git abc1234 (uncommitted changes)")


def test_say_tags_stdout_and_sends_warnings_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    say("--- floor")
    say("floor failed: boom", warn=True)
    say("| a | table |", tag=False)
    out, err = capsys.readouterr()
    assert out == "[bench] --- floor\n| a | table |\n"
    assert err == "[bench] floor failed: boom\n"

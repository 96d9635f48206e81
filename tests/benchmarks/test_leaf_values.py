"""The leaf-value benchmark: both functions timed on the same fit, and the same trees checked."""

import json
from pathlib import Path

import pytest
from sklearn.ensemble._hist_gradient_boosting import gradient_boosting

from benchmarks import leaf_values
from tests.conftest import SAMPLE_OPTIONS


def test_times_both_functions_on_one_fit_and_restores_sklearns(
    sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = gradient_boosting._update_leaves_values
    args = ["--data", str(sample_csv), "--clusters", "5", "--repeats", "2", "--hydra", SAMPLE_OPTIONS]
    assert leaf_values.main(args) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["same_trees"] is True
    assert (figures["repeats"], figures["rounds"]) == (2, 400)
    assert figures["features"] > 5  # the cluster similarities and the other branches
    assert min(figures["sklearn_s"], figures["one_sort_s"]) > 0
    assert gradient_boosting._update_leaves_values is before

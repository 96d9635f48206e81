"""The model card and the version tags: content named from their inputs, missing fields tolerated."""

import re

import pytest

from housing_mlops.registry.card import DESCRIPTION_LIMIT, METRICS, fit_description, model_card, version_tags

BEST = {
    "family": "hgb",
    "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
    "params": {"max_iter": 300, "learning_rate": 0.05, "l2_regularization": 1e-05},
    "cv": {"wmape": 0.12345, "rmse": 41000.0},
    "feature_spec": {"n_clusters": 40, "gamma": 0.123456, "imputer": {"strategy": "knn"}},
    "study": {"name": "sweep-abc", "best_trial": 7, "trials": {"complete": 9, "pruned": 1}},
}
TEST = {
    "wmape": 0.11771,
    "mae": 28000.5,
    "rmse": 39233.2,
    "r2": 0.88,
    "mape": 0.15,
    "median_ape": 0.1,
    "within_10pct": 0.5,
}
LINEAGE = {"pipeline": "p" * 32, "split": "s" * 32, "register": "r" * 32}
DATA = {
    "sha256": "d" * 64,
    "rows": 20640,
    "train_rows": 16512,
    "test_rows": 4128,
    "train_sha256": "t" * 64,
    "test_sha256": "e" * 64,
}
CODE = {"sha": "0123abc", "dirty": "false"}
HARDWARE = {"target": "cpu", "rationale": "tree ensembles branch per row"}
SERVING = {"variant": "onnx", "why": "compiled graph agrees with sklearn and is faster"}
VERDICT = {"promote": True, "reason": "test wMAPE 0.1177 within bounds; no champion yet"}


def card(**changes: dict) -> str:
    inputs = {
        "best": BEST,
        "test": TEST,
        "lineage": LINEAGE,
        "data": DATA,
        "code": CODE,
        "hardware": HARDWARE,
        "serving": SERVING,
        "verdict": VERDICT,
    } | changes
    return model_card(**inputs, trained_at="2026-12-01 10:00 UTC")


def rows(text: str, first_cell: str) -> list[list[str]]:
    """Cells of the Markdown table rows whose first cell is `first_cell`."""
    found = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            found.append(cells)
    return found


def test_card_names_model_data_and_verdict() -> None:
    text = card()
    assert text.startswith("## hgb (sklearn.ensemble.HistGradientBoostingRegressor)\n")
    assert "Trained 2026-12-01 10:00 UTC on 16512 rows" in text
    assert "(4128 rows)" in text
    assert "**Promotion gate:** promote: test wMAPE 0.1177 within bounds; no champion yet" in text
    assert "**Hardware target:** `cpu`: tree ensembles branch per row" in text
    assert "**Served variant:** `onnx`: compiled graph agrees with sklearn and is faster" in text
    assert "K = 40, gamma = 0.1235;\nimputer: knn." in text
    assert "study `sweep-abc`, best trial 7, trials {'complete': 9, 'pruned': 1}" in text
    assert f"raw data sha256 `{'d' * 64}` (20640 rows)" in text
    assert f"train.parquet sha256 `{'t' * 64}`, test.parquet sha256 `{'e' * 64}`" in text
    assert text.rstrip().endswith("Code: git `0123abc`.")


def test_metrics_table_has_cv_and_test_per_metric() -> None:
    text = card()
    assert rows(text, "metric") == [["metric", "CV on train", "test"]]
    assert rows(text, "wmape") == [["wmape", "0.1235", "0.1177"]]
    assert rows(text, "rmse") == [["rmse", "41000.0000", "39233.2000"]]
    assert rows(text, "mae") == [["mae", "nan", "28000.5000"]]  # not in the CV scores
    assert all(len(rows(text, name)) == 1 for name in METRICS)


def test_params_and_lineage_tables_quote_their_values() -> None:
    text = card()
    assert rows(text, "`l2_regularization`") == [["`l2_regularization`", "`1e-05`"]]
    assert rows(text, "`max_iter`") == [["`max_iter`", "`300`"]]
    params = [line for line in text.splitlines() if line.startswith("| `")]
    assert params[:3] == sorted(params[:3])  # sorted by name
    assert rows(text, "split") == [["split", f"`{'s' * 32}`"]]
    assert rows(text, "register") == [["register", f"`{'r' * 32}`"]]


def test_every_table_has_a_separator_under_its_header() -> None:
    lines = card().splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("| ") and i + 1 < len(lines)]
    separators = [i for i, line in enumerate(lines) if re.fullmatch(r"\|(-+\|)+", line)]
    assert len(separators) == 3
    assert all(i - 1 in headers for i in separators)


def test_hold_verdict_and_dirty_tree_are_stated() -> None:
    text = card(verdict={"promote": False, "reason": "worse"}, code={"sha": "abc", "dirty": "true"})
    assert "**Promotion gate:** hold: worse" in text
    assert "Code: git `abc` (dirty working tree)." in text


def test_missing_fields_read_n_a_instead_of_crashing() -> None:
    text = model_card({}, {}, {}, {}, {}, {}, {}, {}, "now")
    assert text.startswith("## n/a (n/a)")
    assert "**Promotion gate:** hold: n/a" in text
    assert "Code: git `n/a`." in text
    assert "**Served variant:** `n/a`: n/a" in text
    assert "K = n/a, gamma = n/a;\nimputer: n/a." in text
    assert rows(text, "wmape") == [["wmape", "nan", "nan"]]


def test_partial_feature_spec_and_study() -> None:
    best = {**BEST, "feature_spec": {"n_clusters": 8}, "study": {"name": "s"}}
    text = card(best=best)
    assert "K = 8, gamma = n/a;\nimputer: n/a." in text
    assert "study `s`, best trial n/a, trials n/a" in text


@pytest.mark.parametrize(("promote", "word"), [(True, "promote"), (False, "hold")])
def test_version_tags(promote: bool, word: str) -> None:
    tags = version_tags(
        BEST,
        {"wmape": 0.117712345, "rmse": 39233.21},
        {"hardware.target": "cpu"},
        {"promote": promote, "reason": "because"},
        "d" * 64,
        CODE,
        "p" * 32,
        "2026-12-01 10:00 UTC",
        auto_promote=True,
    )
    assert tags == {
        "test.wmape": 0.117712,
        "test.rmse": 39233.21,
        "cv.wmape": 0.12345,
        "algorithm": "hgb",
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
        "data.sha256": "d" * 64,
        "git.sha": "0123abc",
        "git.dirty": "false",
        "pipeline_run_id": "p" * 32,
        "trained_at": "2026-12-01 10:00 UTC",
        "hardware.target": "cpu",
        "promotion.verdict": word,
        "promotion.reason": "because",
        "promotion.auto": True,
    }


def test_version_tags_carry_the_gate_s_interval_when_there_was_a_champion() -> None:
    def tags(verdict: dict) -> dict:
        return version_tags(BEST, {}, {}, verdict, None, CODE, "p", "t", auto_promote=True)

    verdict = {"promote": False, "reason": "r", "difference": {"low": -0.00351234, "estimate": -0.0021, "high": 0.0008}}
    found = tags(verdict)
    assert {k: v for k, v in found.items() if k.startswith("promotion.delta")} == {
        "promotion.delta_wmape": -0.0021,
        "promotion.delta_low": -0.003512,
        "promotion.delta_high": 0.0008,
    }
    assert not any(k.startswith("promotion.delta") for k in tags({**verdict, "difference": None}))


def test_a_card_too_long_for_mlflows_description_column_fits_and_points_at_the_full_card() -> None:
    text = card()
    assert fit_description(text, "full card: model_card.md") == text, "a card that fits is unchanged"
    padded = text + "\n".join(f"| {'x' * 20}{' ' * 200}| {i} |" for i in range(40)) + "\n"
    fitted = fit_description(padded, "full card: model_card.md")
    assert len(fitted) <= DESCRIPTION_LIMIT
    assert fitted.splitlines()[0] == text.splitlines()[0]
    assert len(fitted.splitlines()) == len(padded.splitlines()), "only the padding went"
    assert "full card" not in fitted
    long = text + "\n".join(f"line {i} " + "y" * 100 for i in range(100))
    cut = fit_description(long, "full card: model_card.md")
    assert len(cut) <= DESCRIPTION_LIMIT
    assert cut.startswith(text.splitlines()[0])
    assert "line 0 " in cut
    assert cut.endswith("\n\nfull card: model_card.md\n")

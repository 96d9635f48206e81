from pathlib import Path

import pytest

from housing_mlops.config.schema import Config
from housing_mlops.pipeline.context import StepContext
from housing_mlops.pipeline.dag import ORDER, STEPS, closure


def test_closure_adds_upstreams_in_order() -> None:
    assert closure(["split"]) == ["ingest", "split"]
    assert closure(["ingest"]) == ["ingest"]
    assert closure(list(reversed(ORDER))) == list(ORDER)


def test_every_upstream_precedes_its_step() -> None:
    for index, name in enumerate(ORDER):
        assert all(ORDER.index(up) < index for up in STEPS[name].upstream)


def test_a_step_hands_on_only_what_the_dag_declares(cfg: Config, tmp_path: Path) -> None:
    ctx = StepContext("sweep", cfg, {}, tmp_path, tmp_path, {}, None, "run", "0", "key")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"step 'sweep' hands on trials\.parquet, which dag\.STEPS does not declare"):
        ctx.output("trials.parquet", lambda p: p.write_text("x"))
    assert not (tmp_path / "outputs").exists()  # refused before anything was written
    assert STEPS["sweep"].optional == ("oof_predictions.npy",)
    assert [name for name in ORDER if STEPS[name].builds_models] == ["select", "sweep"]

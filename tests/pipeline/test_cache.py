"""The cache key changes exactly when config, upstream data or code change."""

from pathlib import Path

from housing_mlops.config.loading import load_config
from housing_mlops.pipeline.cache import cache_key, code_fingerprint, step_config
from housing_mlops.pipeline.dag import STEPS
from tests.conftest import ROOT


def plain(*overrides: str) -> dict:
    return load_config(ROOT / "config", list(overrides))[1]


def key(step: str, config: dict, upstream=None, code: str = "c") -> str:
    return cache_key(step, step_config(config, STEPS[step], "file:abc"), upstream or {}, code)


def test_key_is_stable_and_sensitive() -> None:
    base = plain()
    up = {"ingest": {"raw.parquet": "d1"}}
    assert key("split", base, up) == key("split", plain(), up)
    assert key("split", base, up) != key("split", plain("split.test_size=0.3"), up)
    assert key("split", base, up) != key("split", base, {"ingest": {"raw.parquet": "d2"}})
    assert key("split", base, up) != key("split", base, up, code="other")
    assert key("split", base, up) != key("ingest", base, up)
    # what is served is part of the registered model: a serving change registers again
    assert key("register", base, up) != key("register", plain("serving.chunk_rows=512"), up)
    assert key("sweep", base, up) == key("sweep", plain("serving.chunk_rows=512"), up)


def test_unrelated_config_does_not_change_a_step_key() -> None:
    up = {"ingest": {"raw.parquet": "d1"}}
    assert key("ingest", plain()) == key("ingest", plain("split.test_size=0.3"))
    # where the data lives does not matter downstream: the raw digest does
    moved = plain("data.source=/elsewhere/housing.csv", "data.download.retries=0")
    assert key("split", plain(), up) == key("split", moved, up)
    assert key("split", plain(), up) == key("split", plain("pipeline.force=[split]"), up)


def test_ingest_key_sees_the_source_identity() -> None:
    config = plain()
    a = cache_key("ingest", step_config(config, STEPS["ingest"], "file:aaa"), {}, "c")
    b = cache_key("ingest", step_config(config, STEPS["ingest"], "file:bbb"), {}, "c")
    assert a != b


def test_code_fingerprint_follows_file_bytes(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("x = 1\n")
    before = code_fingerprint([module], tmp_path)
    assert before == code_fingerprint([module], tmp_path)
    module.write_text("x = 2\n")
    assert code_fingerprint([module], tmp_path) != before

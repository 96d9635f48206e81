"""Bad input data fails ingest, and only ingest, with one actionable line.

One good pipeline run (ingest, split) is made first on a module-scoped store. Each bad input
then runs the ingest step once against that store and must: exit non-zero, print one
actionable line naming the file, column or key, mark the ingest run FAILED with that line in
its `housing.error` tag, log no output, and leave the earlier runs and the (empty) model
registry untouched.

Every case runs the step in-process: `python -m steps.ingest` through runpy, its real CLI and
step runner, without a process start. Three cases (a file error, a schema error and a value
outside its domain) also run the real `mlflow run` pipeline, where the pipeline run must fail
too, repeat the step's line naming the failed run, and start no later step. An extra,
undeclared column is the one bad input that only warns (a real pipeline run: the clean table
must hit split's cache); with data.on_invalid=drop, rows outside their domain are dropped and
counted instead of failing.
"""

import dataclasses
import re
import runpy
import shutil
import socket
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Run

from housing_mlops.data.source import sha256_file
from housing_mlops.pipeline import logs
from tests.conftest import SAMPLE_OPTIONS, Store, make_store

STEPS = ("-P", "steps=ingest,split")
FAST_DOWNLOAD = "data.download.retries=1 data.download.backoff_s=0.01"
DIGEST = "housing.digest."


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The store after one good pipeline run, and that run's ingest and split step runs."""

    store: Store
    ingest: Run
    split: Run


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What a case builds its bad input from."""

    sample: pd.DataFrame  # the 2,000-row sample the baseline ingested
    sample_csv: Path  # its file, byte for byte
    directory: Path  # where to write the bad input
    port: int  # a closed port on 127.0.0.1


@dataclasses.dataclass(frozen=True)
class Case:
    """A bad input: how to build it, extra Hydra overrides, and the expected error line.

    `make(inputs)` writes the bad input into `inputs.directory` and returns the data source.
    `pattern` is a regex for the whole error line; `<FILE>` stands for the source's file name,
    `<SOURCE>` for the source itself and `<SHA>` for the sha256 of the file, all escaped.
    """

    id: str
    make: Callable[[Inputs], str]
    pattern: str
    hydra: str = ""
    marks: tuple[pytest.MarkDecorator, ...] = ()


def _csv(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Inputs], str]:
    def make(inputs: Inputs) -> str:
        path = inputs.directory / name
        change(inputs.sample.copy()).to_csv(path, index=False)
        return str(path)

    return make


def _bytes(name: str, content: bytes) -> Callable[[Inputs], str]:
    def make(inputs: Inputs) -> str:
        path = inputs.directory / name
        path.write_bytes(content)
        return str(path)

    return make


def _sample_copy(inputs: Inputs) -> str:
    path = inputs.directory / "housing_sample_copy.csv"
    shutil.copyfile(inputs.sample_csv, path)
    return str(path)


def _missing_file(inputs: Inputs) -> str:
    return str((inputs.directory / "no_such_housing.csv").resolve())


def _closed_port_url(inputs: Inputs) -> str:
    return f"http://127.0.0.1:{inputs.port}/housing.csv"


def _tgz_without_csv(inputs: Inputs) -> str:
    directory = inputs.directory
    (directory / "README.txt").write_text("no table in here\n")
    inputs.sample.to_json(directory / "housing.json")
    path = directory / "housing_no_csv.tgz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(directory / "README.txt", arcname="housing/README.txt")
        tar.add(directory / "housing.json", arcname="housing/housing.json")
    return str(path)


def _set(column: str, rows: list[int], value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        if isinstance(value, str) and df[column].dtype != object:
            df[column] = df[column].astype(object)
        df.loc[rows, column] = value
        return df

    return change


ZERO_SHA = "data.sha256=" + "0" * 64
CHECKSUM = (
    r"checksum mismatch for <FILE>: sha256 <SHA>, expected 0{64} "
    r"\(data\.sha256; set data\.sha256=null to accept a different file\)"
)
CATEGORIES = r"\['<1H OCEAN', 'INLAND', 'ISLAND', 'NEAR BAY', 'NEAR OCEAN'\]"

CASES = [
    Case(
        "missing_file",
        _missing_file,
        r"data file not found: <SOURCE> \(set data\.source or HOUSING_DATA_SOURCE\)",
    ),
    Case(
        "unreachable_url",
        _closed_port_url,
        r"cannot download <SOURCE> after 2 attempts: .*Connection refused.* "
        r"\(check the URL and network, or point HOUSING_DATA_SOURCE at a local file\)",
        hydra=FAST_DOWNLOAD,
    ),
    Case(
        # The baseline's own bytes under a wrong pin: the ingest cache key holds data.sha256,
        # so the cached baseline ingest is not reused and the pin is checked.
        "checksum_mismatch",
        _sample_copy,
        CHECKSUM,
        hydra=ZERO_SHA,
    ),
    Case("empty_file", _bytes("housing_empty.csv", b""), r"<FILE> is empty: no header and no rows"),
    Case(
        "not_a_csv",
        _bytes("housing_binary.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64),
        r"<FILE> is not a readable CSV: 'utf-8' codec can't decode byte 0x89 in position 0: .*",
    ),
    Case(
        "tgz_without_csv",
        _tgz_without_csv,
        r"archive <FILE> must hold exactly one CSV, found \[\]",
    ),
    Case(
        "missing_column",
        _csv("housing_no_income.csv", lambda df: df.drop(columns="median_income")),
        r"<FILE>: missing column\(s\) \['median_income'\] declared in config data\.columns",
    ),
    Case(
        "wrong_dtype",
        _csv("housing_text_age.csv", _set("housing_median_age", [3, 7], "abc")),
        r"<FILE>: column 'housing_median_age': 2 value\(s\) not of type float "
        r"\(e\.g\. 'abc' at row 3, 'abc' at row 7\)",
    ),
    Case(
        "out_of_range",
        _csv("housing_big.csv", _set("total_rooms", list(range(10)), 99999.0)),
        r"<FILE>: column 'total_rooms': 10 of 2000 values \(0\.50%\) outside \[1, 50000\], "
        r"more than data\.max_out_of_range_share=0\.10% \(e\.g\. 99999\.0 at row 0, .*\)",
    ),
    Case(
        "unknown_category",
        _csv("housing_mars.csv", _set("ocean_proximity", [5, 6], "MARS")),
        rf"<FILE>: column 'ocean_proximity': 2 value\(s\) not in "
        rf"data\.columns\.ocean_proximity\.categories {CATEGORIES} "
        rf"\(e\.g\. 'MARS' at row 5, 'MARS' at row 6\)",
    ),
    Case(
        "out_of_domain",
        _csv("housing_no_households.csv", _set("households", [17, 40, 41, 300], -3.0)),
        r"<FILE>: column 'households' row 17 value -3 is outside its domain \[1, inf\) "
        r"\(data\.columns\.households\.domain\); 4 row\(s\) violate it",
    ),
    Case(
        "missing_target",
        _csv("housing_no_price.csv", _set("median_house_value", [1, 2, 4], np.nan)),
        r"<FILE>: column 'median_house_value': 3 missing value\(s\); "
        r"column is not nullable in config \(e\.g\. nan at row 1, nan at row 2, nan at row 4\)",
    ),
    Case(
        "too_few_rows",
        _csv("housing_small.csv", lambda df: df),
        r"<FILE>: 2000 rows, fewer than data\.min_rows=5000",
        hydra="data.min_rows=5000",
    ),
]


def run_step_module(step: str, store: Store, source: str, hydra: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """`python -m steps.<step> --hydra-options ...` in this process, against `store`; its exit code."""
    for name, value in store.env.items():
        if name.startswith(("MLFLOW_", "HOUSING_", "WANDB_")):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOUSING_DATA_SOURCE", source)
    options = f"{SAMPLE_OPTIONS} {hydra}".strip()
    monkeypatch.setattr(sys, "argv", [f"steps/{step}.py", "--hydra-options", options, "--upstream", ""])
    try:
        runpy.run_module(f"steps.{step}", run_name="__main__", alter_sys=False)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        logs.configure()  # the step configured logging for itself


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> Baseline:
    """ingest then split, in-process, each resolving its input from the cache as a step run
    alone does; the real pipeline (test_extra_column_warns_and_is_dropped) reuses them."""
    store = make_store(tmp_path_factory.mktemp("bad_inputs_store"), sample_csv)
    with pytest.MonkeyPatch.context() as monkeypatch:
        for step in ("ingest", "split"):
            assert run_step_module(step, store, str(sample_csv), "", monkeypatch) == 0, step
    (ingest,), (split,) = store.runs("ingest"), store.runs("split")
    assert ingest.info.status == split.info.status == "FINISHED"
    assert split.data.tags["housing.upstream.ingest"] == ingest.info.run_id
    return Baseline(store, ingest, split)


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> pd.DataFrame:
    return pd.read_csv(sample_csv)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting is refused, and no one else can
    take the port while the test runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def run_with(baseline: Baseline, source: str, hydra: str) -> subprocess.CompletedProcess:
    env = {**baseline.store.env, "HOUSING_DATA_SOURCE": source}
    store = dataclasses.replace(baseline.store, env=env)
    return store.mlflow_run(*STEPS, hydra=hydra, check=False)


def expected_line(pattern: str, source: str) -> re.Pattern[str]:
    path = Path(source)
    sha = sha256_file(path) if path.is_file() else "<no file>"
    name = path.name if "://" not in source else source.rsplit("/", 1)[-1]
    for placeholder, value in (("<FILE>", name), ("<SOURCE>", source), ("<SHA>", sha)):
        pattern = pattern.replace(placeholder, re.escape(value))
    return re.compile(pattern)


def newest_pipeline_run(store: Store) -> Run:
    return next(r for r in store.runs() if r.data.tags.get("housing.pipeline") == "true")


def assert_earlier_runs_untouched(baseline: Baseline, directory: Path) -> None:
    client = baseline.store.client
    for before in (baseline.ingest, baseline.split):
        now = client.get_run(before.info.run_id)
        assert now.info.status == "FINISHED"
        assert now.info.end_time == before.info.end_time
        assert now.data.tags == before.data.tags
        assert now.data.metrics == before.data.metrics
        assert now.data.params == before.data.params
        digests = {k.removeprefix(DIGEST): v for k, v in now.data.tags.items() if k.startswith(DIGEST)}
        assert digests, f"run {now.info.run_id} has no digest tags"
        dest = directory / now.info.run_id
        dest.mkdir(parents=True, exist_ok=True)
        for name, digest in digests.items():
            path = client.download_artifacts(now.info.run_id, name, str(dest))
            assert sha256_file(Path(path)) == digest, f"{name} of run {now.info.run_id} changed"
    assert client.search_registered_models() == []


def assert_failed_ingest(
    store: Store, ingests_before: set[str], case: Case, source: str, stderr: str, splits_before: int
) -> Run:
    ingests = store.runs("ingest")
    assert len(ingests) == len(ingests_before) + 1, f"not one new ingest run:\n{stderr}"
    failed = ingests[0]
    assert failed.info.run_id not in ingests_before
    assert failed.info.status == "FAILED"
    message = failed.data.tags.get("housing.error")
    assert message, f"no housing.error tag on run {failed.info.run_id}:\n{stderr[-3000:]}"
    assert "\n" not in message, f"error is not one line: {message!r}"
    assert expected_line(case.pattern, source).fullmatch(message), message
    # the step prints the line once
    assert stderr.splitlines().count(f"error: [ingest] {message}") == 1, stderr[-3000:]
    outputs = [k for k in failed.data.tags if k.startswith(DIGEST)]
    assert not outputs, f"a failed ingest logs no outputs, found {outputs}"
    assert len(store.runs("split")) == splits_before
    return failed


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_fails_ingest_with_one_actionable_line(
    case: Case,
    baseline: Baseline,
    sample: pd.DataFrame,
    sample_csv: Path,
    closed_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = baseline.store
    source = case.make(Inputs(sample, sample_csv, tmp_path, closed_port))
    ingests_before = {r.info.run_id for r in store.runs("ingest")}
    splits_before = len(store.runs("split"))

    capsys.readouterr()
    code = run_step_module("ingest", store, source, case.hydra, monkeypatch)
    err = capsys.readouterr().err

    assert code != 0
    assert_failed_ingest(store, ingests_before, case, source, err, splits_before)
    assert_earlier_runs_untouched(baseline, tmp_path / "artifacts")


PIPELINE_CASES = [c for c in CASES if c.id in ("missing_file", "unknown_category", "out_of_domain")]


@pytest.mark.e2e
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in PIPELINE_CASES])
def test_bad_input_fails_the_real_pipeline_at_ingest(
    case: Case,
    baseline: Baseline,
    sample: pd.DataFrame,
    sample_csv: Path,
    closed_port: int,
    tmp_path: Path,
) -> None:
    store = baseline.store
    source = case.make(Inputs(sample, sample_csv, tmp_path, closed_port))
    ingests_before = {r.info.run_id for r in store.runs("ingest")}
    splits_before = len(store.runs("split"))

    done = run_with(baseline, source, case.hydra)

    assert done.returncode != 0, done.stdout[-2000:]
    failed = assert_failed_ingest(store, ingests_before, case, source, done.stderr, splits_before)
    message = failed.data.tags["housing.error"]
    # the pipeline repeats the step's line, naming the failed run
    assert f"error: step 'ingest' failed (run {failed.info.run_id}): {message}" in done.stderr.splitlines()
    # no later step ran, and the pipeline run records the failure
    assert "[split] running" not in done.stdout
    pipeline = newest_pipeline_run(store)
    assert failed.data.tags["mlflow.parentRunId"] == pipeline.info.run_id
    assert pipeline.info.status == "FAILED"
    assert "housing.step.split" not in pipeline.data.tags

    assert_earlier_runs_untouched(baseline, tmp_path / "artifacts")


@pytest.mark.e2e
def test_extra_column_warns_and_is_dropped(baseline: Baseline, sample: pd.DataFrame, tmp_path: Path) -> None:
    store = baseline.store
    path = tmp_path / "housing_colour.csv"
    extra = sample.copy()
    extra.insert(3, "colour", "red")
    extra.to_csv(path, index=False)
    ingests_before = {r.info.run_id for r in store.runs("ingest")}

    done = run_with(baseline, str(path), "")

    assert done.returncode == 0, done.stderr[-3000:]
    warning = f"warning: {path.name}: ignoring column(s) ['colour'] not declared in config data.columns"
    assert warning in done.stderr.splitlines(), done.stderr[-3000:]
    ingest = store.runs("ingest")[0]
    assert ingest.info.run_id not in ingests_before, "a new file is a new ingest run"
    assert ingest.info.status == "FINISHED"
    assert "housing.error" not in ingest.data.tags
    raw = store.client.download_artifacts(ingest.info.run_id, "raw.parquet", str(tmp_path))
    columns = list(pd.read_parquet(raw).columns)
    assert "colour" not in columns
    assert columns == list(sample.columns)
    pipeline = newest_pipeline_run(store)
    assert pipeline.info.status == "FINISHED"
    assert pipeline.data.tags["housing.step.ingest.run_id"] == ingest.info.run_id
    split = store.client.get_run(pipeline.data.tags["housing.step.split.run_id"])
    assert split.info.status == "FINISHED"
    # without the extra column the table is the baseline's, so split is reused from the cache
    raw_digest = f"{DIGEST}raw.parquet"
    assert ingest.data.tags[raw_digest] == baseline.ingest.data.tags[raw_digest]
    assert pipeline.data.tags["housing.step.split"] == "cached"
    assert split.info.run_id == baseline.split.info.run_id

    assert_earlier_runs_untouched(baseline, tmp_path / "artifacts")


def test_drop_mode_drops_counts_and_logs_the_rows_outside_their_domain(
    baseline: Baseline,
    sample: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = baseline.store
    source = _csv("housing_dirty.csv", _set("households", [17, 40], -3.0))(Inputs(sample, Path(), tmp_path, 0))
    capsys.readouterr()
    code = run_step_module("ingest", store, source, "data.on_invalid=drop", monkeypatch)
    out = capsys.readouterr().out

    assert code == 0
    line = (
        "[ingest] dropped 2 row(s) outside their domain: column 'households' row 17 value -3 is outside "
        "its domain [1, inf) (data.columns.households.domain)"
    )
    assert line in out.splitlines(), out[-3000:]
    ingest = store.runs("ingest")[0]
    assert ingest.info.status == "FINISHED"
    metrics = ingest.data.metrics
    assert (metrics["rows_dropped_domain"], metrics["rows_dropped_domain.households"]) == (2, 2)
    assert metrics["rows"] == len(sample) - 2
    raw = store.client.download_artifacts(ingest.info.run_id, "raw.parquet", str(tmp_path))
    assert not {17, 40} & set(pd.read_parquet(raw).index)
    assert baseline.ingest.data.metrics["rows_dropped_domain"] == 0

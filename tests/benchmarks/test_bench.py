"""`make bench`: the compute floor runs end to end on the sample, and a quick run leaves the
README alone while a full run rewrites only its Performance section."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from benchmarks.bench import compare_with_floor, invocation, parse_args, readme_left_alone, same, write
from benchmarks.report import README_END, README_START, update_readme
from benchmarks.settings import PARTS, Settings

from housing_mlops.pipeline.locks import process_alive, process_identity
from tests.conftest import ROOT


def test_update_readme_replaces_only_the_marked_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n## Performance\n{README_START}\nold table\n{README_END}\n\n## Tests\nkept\n")
    update_readme(readme, "| new | table |\n")
    assert readme.read_text() == (
        f"# title\n\n## Performance\n{README_START}\n| new | table |\n{README_END}\n\n## Tests\nkept\n"
    )


def settings(tmp_path: Path, quick: bool, parts: tuple[str, ...] = PARTS) -> Settings:
    machine = {"cpu_model": "CPU", "cores": 2, "memory_gb": 8.0, "python": "3.11", "git_sha": "abc", "git_dirty": False}
    machine |= {"libraries": {"mlflow": "3", "scikit-learn": "1", "optuna": "5"}, "quick": quick}
    return Settings(
        quick=quick,
        parts=parts,
        data=tmp_path / "housing.csv",
        hydra="",
        out=tmp_path / "results",
        work=tmp_path,
        store=tmp_path / "store",
        command="python -m benchmarks.bench",
        machine=machine,
    )


def results_of(s: Settings) -> dict[str, Any]:
    floor = {"wall_s": 100.0, "seconds": {}, "sweep": {"trials_finished": 4}}
    results = {"date": "2026-01-02", "command": s.command, "machine": s.machine, "data": {"rows": 2000}}
    return results | {"floor": floor, "code_changed_during_run": False}


def test_parse_args_orders_the_parts_and_rejects_unknown_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args([]).parts == PARTS
    assert parse_args(["--only", "serving, floor"]).parts == ("floor", "serving")
    with pytest.raises(SystemExit):
        parse_args(["--only", "floor,warm"])
    assert "unknown part(s) ['warm']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--store", "/tmp/store", "--only", "cold"])
    assert "cannot be combined with the cold part" in capsys.readouterr().err


def test_invocation_quotes_the_command_as_the_user_typed_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAKELEVEL", raising=False)
    assert invocation([]) == "python -m benchmarks.bench"
    assert invocation(["--quick", "--hydra", "a=1 b=2"]) == "python -m benchmarks.bench --quick --hydra 'a=1 b=2'"
    monkeypatch.setenv("MAKELEVEL", "1")
    assert invocation([]) == "make bench"
    assert invocation(["--quick"]) == "make bench BENCH_ARGS=--quick"


def test_same_compares_to_1e_9_and_knows_no_figure() -> None:
    assert same(0.12, 0.12 + 1e-12) is True
    assert same(0.12, 0.1201) is False
    assert same(None, 0.12) is None


def test_compare_with_floor_sets_the_ratio_and_the_same_work_signs() -> None:
    results: dict[str, Any] = {
        "cold": {"wall_s": 330.0, "sweep_best_cv_wmape": 0.12, "test_wmape": 0.13},
        "floor": {"wall_s": 300.0, "sweep": {"best_cv_wmape": 0.12}, "test": {"wmape": 0.14}},
    }
    compare_with_floor(results)
    assert results["ratio"] == 1.1
    assert results["floor"]["same_best_as_pipeline"] is True
    assert results["floor"]["same_test_wmape_as_pipeline"] is False


def test_readme_is_set_only_by_a_complete_clean_full_run(tmp_path: Path) -> None:
    full = settings(tmp_path, quick=False)
    assert readme_left_alone(full, {"code_changed_during_run": False}) is None
    assert readme_left_alone(settings(tmp_path, quick=True), {"code_changed_during_run": False}) == "quick run"
    changed = readme_left_alone(full, {"code_changed_during_run": True})
    assert changed == "a part failed or the code changed during the run"
    assert readme_left_alone(full, {"errors": {"sweep": "x"}, "code_changed_during_run": False}) is not None
    partial = settings(tmp_path, quick=False, parts=("cold", "floor"))
    assert (
        readme_left_alone(partial, {"code_changed_during_run": False}) == "partial run (needs cold, floor and cached)"
    )


def test_write_puts_json_and_markdown_in_out_and_the_table_in_the_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n{README_START}\nold\n{README_END}\n")
    s = settings(tmp_path, quick=False, parts=("cold", "floor", "cached"))
    write(s, results_of(s), readme)
    assert json.loads((s.out / "2026-01-02.json").read_text())["floor"]["wall_s"] == 100.0
    markdown = (s.out / "2026-01-02.md").read_text()
    assert "| compute floor: same fits, bare script (4 sweep trials)" in markdown
    text = readme.read_text()
    assert "old" not in text
    assert "compute floor: same fits" in text
    assert text.startswith("# title\n")


def test_write_of_a_quick_run_leaves_the_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_START}\nold\n{README_END}\n")
    s = settings(tmp_path, quick=True)
    write(s, results_of(s), readme)
    assert (s.out / "2026-01-02.md").is_file()
    assert readme.read_text() == f"{README_START}\nold\n{README_END}\n"


@pytest.mark.e2e  # starts processes
def test_a_terminated_bench_takes_its_childs_whole_process_group_down(tmp_path: Path) -> None:
    # like `mlflow run` and its step processes: the grandchild outlives a kill of the child alone
    pid_file = tmp_path / "grandchild.pid"
    child = f"sleep 300 & echo $! > {pid_file}; wait"
    script = (
        "from pathlib import Path; from benchmarks.processes import run_logged, unwind_on_sigterm; "
        "unwind_on_sigterm(); "
        f"run_logged(['sh', '-c', {child!r}], Path({str(tmp_path / 'log')!r}), Path('.'), None)"
    )
    bench = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the child never started"
        assert bench.poll() is None, "the child exited early"
        time.sleep(0.05)
    grandchild = process_identity(int(pid_file.read_text()))  # pid-reuse safe, as the orchestrator's check
    assert process_alive(grandchild)
    bench.send_signal(signal.SIGTERM)
    assert bench.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while process_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_alive(grandchild) is False


@pytest.mark.e2e
@pytest.mark.slow  # the whole compute floor on the sample
def test_quick_floor_writes_results_and_leaves_the_readme(sample_csv: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_START}\nuntouched\n{README_END}\n")
    out = tmp_path / "results"
    command = [sys.executable, "-m", "benchmarks.bench", "--quick", "--only", "floor", "--data", str(sample_csv)]
    # linear families only: the sweep's trials take milliseconds, the test checks the plumbing
    command += ["--hydra", "models.candidates=[ridge,lasso]", "--out", str(out), "--readme", str(readme)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (result_file,) = out.glob("*.json")
    result = json.loads(result_file.read_text())
    assert result["machine"]["quick"] is True
    assert result["machine"]["cores"] >= 1
    floor = result["floor"]
    assert floor["mlflow_imported"] is False  # the floor is bare: no tracking stack loaded
    assert floor["sweep"]["trials_finished"] == 4  # sweep.n_trials of the smoke overrides
    assert set(floor["seconds"]) == {"ingest", "split", "impute", "features", "select", "sweep", "register"}
    assert floor["selection"]["family"] in ("ridge", "lasso")
    assert "compute floor" in result_file.with_suffix(".md").read_text()
    assert "untouched" in readme.read_text()

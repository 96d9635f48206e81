"""`make bench`: the compute floor runs end to end on the sample, and a quick run leaves the
README alone while a full run rewrites only its Performance section."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchmarks.bench import README_END, README_START, update_readme

from housing_mlops.pipeline.tracking import process_alive, process_identity
from tests.conftest import ROOT


def test_update_readme_replaces_only_the_marked_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n## Performance\n{README_START}\nold table\n{README_END}\n\n## Tests\nkept\n")
    update_readme(readme, "| new | table |\n")
    assert readme.read_text() == (
        f"# title\n\n## Performance\n{README_START}\n| new | table |\n{README_END}\n\n## Tests\nkept\n"
    )


@pytest.mark.e2e  # starts processes
def test_a_terminated_bench_takes_its_childs_whole_process_group_down(tmp_path: Path) -> None:
    # like `mlflow run` and its step processes: the grandchild outlives a kill of the child alone
    pid_file = tmp_path / "grandchild.pid"
    child = f"sleep 300 & echo $! > {pid_file}; wait"
    script = (
        "from pathlib import Path; from benchmarks.bench import run_logged, unwind_on_sigterm; unwind_on_sigterm(); "
        f"run_logged(['sh', '-c', {child!r}], Path({str(tmp_path / 'log')!r}), Path('.'), None)"
    )
    bench = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline and bench.poll() is None, "the child never started"
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
    assert result["machine"]["quick"] is True and result["machine"]["cores"] >= 1
    floor = result["floor"]
    assert floor["mlflow_imported"] is False  # the floor is bare: no tracking stack loaded
    assert floor["sweep"]["trials_finished"] == 4  # sweep.n_trials of the smoke overrides
    assert set(floor["seconds"]) == {"ingest", "split", "impute", "features", "select", "sweep", "register"}
    assert floor["selection"]["family"] in ("ridge", "lasso")
    assert "compute floor" in result_file.with_suffix(".md").read_text()
    assert "untouched" in readme.read_text()

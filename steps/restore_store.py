"""Entry point of `make restore-store`: the retrain workflow's SQLite store, restored or new.

python -m steps.restore_store --store mlflow-store [--previous DIR] [--source "retraining run N"]
python -m steps.restore_store --find   (prints run_id=<id> or run_id=, for $GITHUB_OUTPUT; gh CLI, GH_TOKEN)

Prints one line for $GITHUB_STEP_SUMMARY; with a tracking URI other than SQLite (the secret is set)
there is nothing to restore and it says so.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from housing_mlops.config.loading import load_config
from housing_mlops.errors import HousingError
from housing_mlops.pipeline.ci_store import newest_store_artifact, restore_store

ROOT = Path(__file__).resolve().parents[1]


def gh_json(*args: str) -> list[dict]:
    """The JSON a `gh` command prints (a list, or the `artifacts` list of an API page)."""
    done = subprocess.run(["gh", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise HousingError(
            f"gh {' '.join(args)} failed: {done.stderr.strip()[-300:]}; check GH_TOKEN and `actions: read`"
        )
    data = json.loads(done.stdout)
    return data["artifacts"] if isinstance(data, dict) else data


def find_previous() -> str:
    """run_id=<id> of the newest successful retraining that uploaded its store, or run_id= when none."""
    runs: list[int] = []
    for workflow in ("retrain.yml", "monitor.yml"):
        listed = gh_json(
            "run", "list", "--workflow", workflow, "--status", "success", "--limit", "30", "--json", "databaseId"
        )
        runs += [int(run["databaseId"]) for run in listed]
    artifacts = gh_json("api", "repos/{owner}/{repo}/actions/artifacts?per_page=100")
    run = newest_store_artifact(runs, artifacts)
    return f"run_id={'' if run is None else run}"


def main(argv: list[str] | None = None) -> int:
    """Restore the store; print the summary line; a broken store is one line on stderr and exit code 1."""
    parser = argparse.ArgumentParser(prog="steps/restore_store.py")
    parser.add_argument("--find", action="store_true", help="print run_id= of the newest store artifact and stop")
    parser.add_argument("--store", type=Path, default=Path("mlflow-store"), help="the folder of mlflow.db")
    parser.add_argument("--previous", default="", help="the downloaded store of an earlier retraining, if any")
    parser.add_argument("--source", default="", help="where --previous came from, for the summary")
    args = parser.parse_args(argv)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    try:
        if args.find:
            sys.stdout.write(find_previous() + "\n")
        elif uri and not uri.startswith("sqlite:"):
            sys.stdout.write("registry: the tracking server of MLFLOW_TRACKING_URI, nothing to restore\n")
        else:
            cfg, _ = load_config(ROOT / "config", [])
            previous = Path(args.previous) if args.previous else None
            sys.stdout.write(restore_store(args.store, previous, cfg.registry.model_name, args.source) + "\n")
    except HousingError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`: how fast the pipeline is, and how close to its compute floor.

Parts (all by default; `--only cold,busy,floor,cached,serving,monitor,sweep` picks some):
  cold     `mlflow run . --env-manager local` (as `make pipeline`) on an empty tracking store;
           per-step wall times from the pipeline run's pipeline.json and the step runs
  busy     the cold run again on a second empty store beside two CPU-burning processes: the same
           registered model (digest, trials, best CV, test metrics) whatever the load
  floor    the same fits by a bare script (benchmarks/floor.py): no MLflow, Hydra app or subprocesses
  cached   the same command again on the same store, every step a cache hit (median of repeats)
  serving  both serving variants of the champion on one thread: own runtime, `mlflow.pyfunc`, HTTP;
           the compiled graph per stage; parity on the sealed test set; the register step's cost
  monitor  the monitor's thresholds on the champion's sealed test set: resamples say ok, shifts drift
           (benchmarks/monitoring.py)
  sweep    best CV wMAPE against trial count for TPE and random sampling (the costly part)

Writes <out>/<date>.json, <date>.md (and <date>-sweep.png), and puts the table in the README's
Performance section. `--quick` runs everything on a 2,000-row sample with the smoke overrides,
writes to benchmarks/results/quick/ and never touches the README.

    python -m benchmarks.bench [--quick] [--only PARTS] [--out DIR] [--store DIR] [--keep]
"""

import argparse
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.machine import figure, machine_info, machine_line, say
from benchmarks.monitoring import monitoring
from benchmarks.pipelines import busy, cached, cold, run_floor, store_trials
from benchmarks.processes import unwind_on_sigterm
from benchmarks.report import GOALS, render, update_readme
from benchmarks.serving import serving
from benchmarks.settings import PARTS, QUICK_ROWS, ROOT, Settings
from benchmarks.sweep_efficiency import sweep_efficiency


def default_data() -> Path:
    """HOUSING_DATA_SOURCE, else data/housing.csv, else the shared copy beside the repo."""
    given = os.environ.get("HOUSING_DATA_SOURCE")
    for candidate in (given, ROOT / "data" / "housing.csv", ROOT.parent / "shared" / "data" / "housing.csv"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise SystemExit("error: no housing.csv: set HOUSING_DATA_SOURCE or run `make data`")


def invocation(argv: list[str]) -> str:
    """The command line the results quote: `make bench ...` under make, else `python -m benchmarks.bench ...`."""
    args = shlex.join(argv)
    if os.environ.get("MAKELEVEL"):
        return f"make bench BENCH_ARGS={shlex.quote(args)}" if args else "make bench"
    return f"python -m benchmarks.bench {args}".strip()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The CLI; `args.parts` holds the chosen parts in their running order."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,}-row sample, smoke overrides, few calls")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts among {','.join(PARTS)}")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results[/quick])")
    parser.add_argument("--data", type=Path, default=None, help="housing.csv (default HOUSING_DATA_SOURCE)")
    parser.add_argument("--hydra", default="", help="extra Hydra overrides for the pipeline and the floor")
    parser.add_argument("--store", type=Path, default=None, help="reuse the store of an earlier --keep run (no cold)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (store, logs) and print its path")
    parser.add_argument(
        "--readme", type=Path, default=ROOT / "README.md", help="README whose Performance section is set"
    )
    args = parser.parse_args(argv)
    parts = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--only: unknown part(s) {unknown}; expected among {','.join(PARTS)}")
    if args.store and "cold" in parts:
        parser.error("--store reuses a store, so it cannot be combined with the cold part")
    args.parts = tuple(p for p in PARTS if p in parts)
    return args


def settings_from(args: argparse.Namespace, argv: list[str], work: Path) -> Settings:
    """The run's settings; in quick mode writes the 2,000-row sample into `work` and adds the smoke overrides."""
    data = (args.data or default_data()).resolve()
    hydra = args.hydra
    if args.quick:
        sample = work / "housing_sample.csv"
        full = pd.read_csv(data)
        full.sample(min(QUICK_ROWS, len(full)), random_state=0).to_csv(sample, index=False)  # as `make smoke`
        # the smoke profile (config/profile/smoke.yaml), as `make smoke`: its short TPE start-up
        # lets a few trials already tell TPE from random sampling
        data, hydra = sample, f"profile=smoke {hydra}".strip()
    settings = Settings(
        quick=args.quick,
        parts=args.parts,
        data=data,
        hydra=hydra,
        out=args.out or ROOT / "benchmarks" / "results" / ("quick" if args.quick else ""),
        work=work,
        store=(args.store or work / "store").resolve(),
        command=invocation(argv),
        machine=machine_info(args.quick),
    )
    if args.quick:
        settings.latency_calls, settings.batch_repeats, settings.sweep_trials = 100, 3, 6
    return settings


def measure(settings: Settings) -> dict[str, Any]:
    """Run every chosen part, keeping the figures of the others when one fails."""
    date = datetime.now().strftime("%Y-%m-%d")
    results: dict[str, Any] = {"date": date, "command": settings.command, "machine": settings.machine}
    results["data"] = {"path": str(settings.data), "rows": sum(1 for _ in settings.data.open()) - 1}
    results["hydra_overrides"] = settings.hydra
    settings.out.mkdir(parents=True, exist_ok=True)
    code = code_digest()
    for part in settings.parts:
        say(f"--- {part}")
        try:
            results[part] = run_part(part, settings, results)
        except Exception as exc:  # one failing part must not lose the figures of the others
            results.setdefault("errors", {})[part] = str(exc)
            say(f"{part} failed: {exc}", warn=True)
    results["code_changed_during_run"] = code_digest() != code
    if "cold" in results and "floor" in results:
        compare_with_floor(results)
        figure(settings, "pipeline / floor", f"{results['ratio']:.3f}")
    results["goals"] = GOALS
    return results


def code_digest() -> str:
    """What the step cache keys hash, roughly: edits made while the bench runs make its figures moot."""
    digest = hashlib.sha256()
    files = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "steps").glob("*.py"))]
    for path in [*files, *sorted((ROOT / "config").rglob("*.yaml")), ROOT / "MLproject"]:
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def run_part(part: str, settings: Settings, results: dict[str, Any]) -> dict[str, Any]:
    """The figures of one part; `results` holds those of the parts run before it."""
    if part == "cold":
        return cold(settings)
    if part == "busy":
        return busy(settings)
    if part == "floor":
        # the pipeline's finished trial count, so a sweep cut short by its timeout compares like for like
        trials = results.get("cold", {}).get("sweep_trials_finished") or store_trials(settings)
        return run_floor(settings, trials)
    if part == "cached":
        return cached(settings)
    if part == "serving":
        return serving(settings)
    if part == "monitor":
        return monitoring(settings)
    plot = f"{results['date']}-sweep.png"
    return sweep_efficiency(settings, results.get("floor"), settings.out / plot) | {"plot": plot}


def same(a: float | None, b: float | None) -> bool | None:
    """Did the floor's sweep reach the pipeline's best value (the sign it did the same trials)?"""
    return None if a is None or b is None else bool(abs(a - b) < 1e-9)


def compare_with_floor(results: dict[str, Any]) -> None:
    """Set the pipeline / floor ratio, and whether the floor reached the pipeline's best and test wMAPE."""
    cold, floor = results["cold"], results["floor"]
    results["ratio"] = round(cold["wall_s"] / floor["wall_s"], 3)
    # the sign the floor did the same work: same trials, same final model
    floor["same_best_as_pipeline"] = same(floor["sweep"]["best_cv_wmape"], cold["sweep_best_cv_wmape"])
    floor["same_test_wmape_as_pipeline"] = same(floor["test"]["wmape"], cold["test_wmape"])


def readme_left_alone(settings: Settings, results: dict[str, Any]) -> str | None:
    """Why the README keeps its Performance section after this run, or None when the run may set it."""
    if settings.quick:
        return "quick run"
    if results.get("errors") or results["code_changed_during_run"]:
        return "a part failed or the code changed during the run"
    if not {"cold", "floor", "cached"} <= set(settings.parts):
        return "partial run (needs cold, floor and cached)"
    return None


def write(settings: Settings, results: dict[str, Any], readme: Path) -> None:
    """<out>/<date>.json and .md, and the README's Performance section when the run is complete and clean."""
    settings.out.mkdir(parents=True, exist_ok=True)
    date = results["date"]
    (settings.out / f"{date}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (settings.out / f"{date}.md").write_text(render(results, ""))
    say(f"wrote {settings.out / f'{date}.json'} and {date}.md")
    reason = readme_left_alone(settings, results)
    if reason:
        say(f"{reason}: README left alone")
    else:
        image_dir = os.path.relpath(settings.out, readme.parent) + "/"
        update_readme(readme, render(results, image_dir))
        say(f"updated the Performance section of {readme}")


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.bench`: 0, or 1 when a part failed."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps the log readable
    unwind_on_sigterm()
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="housing-bench-"))
    try:
        settings = settings_from(args, argv, work)
        say(f"machine: {machine_line(settings.machine)}; parts: {','.join(settings.parts)}")
        results = measure(settings)
        write(settings, results, args.readme)
        say(render(results, ""), tag=False)
        if results["code_changed_during_run"]:
            say("warning: src/, steps/, config/ or MLproject changed during the run", warn=True)
    finally:
        if args.keep:
            say(f"kept {work} (store: {work / 'store'})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())

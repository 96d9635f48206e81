"""Entry point `main`: compose the config, validate it, then run the pipeline."""

import argparse
import logging
import sys
from pathlib import Path

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.errors import HousingError
from housing_mlops.pipeline import logs
from housing_mlops.pipeline.orchestrator import run_pipeline

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline (or `--steps` and their upstreams); return the exit code."""
    parser = argparse.ArgumentParser(prog="steps/main.py")
    parser.add_argument("--steps", default="", help="comma-separated steps (default: pipeline.steps)")
    parser.add_argument("--hydra-options", default="", help="Hydra overrides in one string")
    args = parser.parse_args(argv)
    logs.configure()
    hydra_options = args.hydra_options
    if args.steps:
        hydra_options = f"{hydra_options} pipeline.steps=[{args.steps}]".strip()
    try:
        # the zoo's classes are checked before the first model step that runs (run_pipeline):
        # a fully cached re-run never imports scikit-learn
        cfg, plain = load_config(ROOT / "config", parse_overrides(hydra_options), estimators=False)
        records = run_pipeline(cfg, plain, hydra_options, ROOT)
    except HousingError as exc:
        log.error(str(exc))
        return 1
    ran = [r.step for r in records if r.status == "ran"]
    log.info(f"pipeline done: ran {ran or 'nothing'}, reused {[r.step for r in records if r.status == 'cached']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

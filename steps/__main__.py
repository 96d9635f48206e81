"""`python -m steps <name> [args]`: the pipeline steps' MLflow entry points.

Runs `python -m steps.<name> [args]`, in the pipeline's step server when it has one (see
`housing_mlops.pipeline.step_server`), so that the step does not pay its imports again.
"""

import sys

from housing_mlops.pipeline.step_server import launch

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.stderr.write("usage: python -m steps <step> [--hydra-options ...] [--upstream ...]\n")
        sys.exit(2)
    sys.exit(launch(f"steps.{sys.argv[1]}", sys.argv[2:]))

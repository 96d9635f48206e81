"""What a step body sees: its config, its MLflow run, versioned inputs and outputs."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from housing_mlops.config.schema import Config
from housing_mlops.data.source import sha256_file
from housing_mlops.errors import SealedTestSetError, UpstreamError
from housing_mlops.pipeline.dag import STEPS
from housing_mlops.pipeline.tracking import digests
from housing_mlops.tags import DIGEST_TAG

log = logging.getLogger(__name__)

SEALED = {"test.parquet": "register"}  # artifact -> the only pipeline step allowed to open it


@dataclass
class StepContext:
    """One step run: its config, upstream runs, MLflow run and a scratch folder for files."""

    name: str
    cfg: Config
    plain: dict[str, Any]
    root: Path
    workdir: Path
    upstream: dict[str, Run]
    client: MlflowClient
    run_id: str
    experiment_id: str
    key: str
    warnings: list[str] = field(default_factory=list)

    def input(self, step: str, artifact: str) -> Path:
        """Download `artifact` from the upstream `step` run and check it against its digest."""
        if SEALED.get(artifact, self.name) != self.name:
            raise SealedTestSetError(
                f"step '{self.name}' tried to open {artifact}: the test set is sealed until "
                f"'{SEALED[artifact]}'; fit and select with cross-validation on train.parquet"
            )
        run = self.upstream[step]
        expected = digests(run).get(artifact)
        dest = self.workdir / "inputs" / step
        dest.mkdir(parents=True, exist_ok=True)
        path = Path(self.client.download_artifacts(run.info.run_id, artifact, str(dest)))
        if expected is None or sha256_file(path) != expected:
            raise UpstreamError(
                f"{artifact} of {step} run {run.info.run_id} does not match its sha256 tag; "
                f"re-run with pipeline.force=[{step}]"
            )
        return path

    def optional_input(self, step: str, artifact: str) -> Path | None:
        """`input`, or None when the upstream run did not hand `artifact` on (one of its optional outputs)."""
        return self.input(step, artifact) if artifact in digests(self.upstream[step]) else None

    def output(self, artifact: str, write: Callable[[Path], object]) -> str:
        """Write an artifact handed downstream (declared in dag.STEPS), log it and tag its sha256."""
        spec = STEPS[self.name]
        if artifact not in spec.outputs + spec.optional:
            # the cache and downstream steps know a step's hand-overs from the DAG only
            raise ValueError(f"step '{self.name}' hands on {artifact}, which dag.STEPS does not declare")
        path = self.workdir / "outputs" / artifact
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        digest = sha256_file(path)
        mlflow.log_artifact(str(path))
        mlflow.set_tag(f"{DIGEST_TAG}{artifact}", digest)
        return digest

    def warn(self, message: str) -> None:
        """Log a warning on stderr and keep it for the step's report."""
        log.warning(message)
        self.warnings.append(message)

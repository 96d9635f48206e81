"""Step cache: a step re-runs only when its config, inputs or code change.

`cache_key` and its parts are pure; `step_key` assembles them for a step of this project and
`find_cached` looks the key up among the finished runs of the tracking store.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

import housing_mlops
from housing_mlops.data import source
from housing_mlops.pipeline.dag import STEPS, StepSpec
from housing_mlops.pipeline.tracking import digests
from housing_mlops.tags import KEY_TAG, STEP_TAG

UNCACHEABLE = "uncacheable"
# Libraries whose upgrade can change a step's output.
_LIBRARIES = ("housing-mlops", "scikit-learn", "pandas", "numpy", "pyarrow", "optuna", "mlflow")
# Data keys that say where the data is and how to fetch it: ingest keys on the content
# instead (plus the pinned sha256 it must verify); later steps key on the raw data's digest.
_LOCATION_KEYS = ("source", "sha256", "download")


def code_fingerprint(files: Iterable[Path], root: Path) -> str:
    """sha256 over the given source files (path + bytes) and the installed library versions."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    for name in _LIBRARIES:
        digest.update(f"{name}=={metadata.version(name)}".encode())
    return digest.hexdigest()


def step_config(plain: Mapping[str, Any], spec: StepSpec, source_id: str | None) -> dict[str, Any]:
    """The config sections that can change the step's output.

    The ingest step sees where the data comes from as `source_id` (its content identity);
    other steps see none of it, so moving the same file does not invalidate them.
    """
    sections = {name: plain[name] for name in spec.config}
    if "data" in sections:
        data = {k: v for k, v in sections["data"].items() if k not in _LOCATION_KEYS}
        if not spec.upstream:
            data |= {"source_id": source_id, "sha256": sections["data"]["sha256"]}
        sections["data"] = data
    return sections


def cache_key(
    step: str,
    config: Mapping[str, Any],
    upstream: Mapping[str, Mapping[str, str]],
    code: str,
) -> str:
    """Hash of the step name, its config, its upstream outputs' digests and its code."""
    payload = {"step": step, "config": config, "upstream": upstream, "code": code}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def step_key(plain: Mapping[str, Any], step: str, upstream: Mapping[str, Run], root: Path) -> str:
    """Cache key of `step` given its resolved config and the upstream runs it would read."""
    spec = STEPS[step]
    source_id = None
    if not spec.upstream:
        data = plain["data"]
        source_id = source.fingerprint(data["source"], data["sha256"])
        if source_id is None:
            return UNCACHEABLE
    package = Path(housing_mlops.__file__).parent
    files = [*package.rglob("*.py"), root / "steps" / f"{step}.py", root / "MLproject"]
    return cache_key(
        step,
        step_config(plain, spec, source_id),
        {name: digests(upstream[name]) for name in spec.upstream},
        code_fingerprint(files, root),
    )


def find_cached(client: MlflowClient, experiment_id: str, step: str, key: str) -> Run | None:
    """The newest FINISHED run of `step` with this cache key whose outputs are all digested."""
    if key == UNCACHEABLE:
        return None
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{KEY_TAG}` = '{key}' and tags.`{STEP_TAG}` = '{step}' and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    outputs = set(STEPS[step].outputs)
    return next((run for run in runs if outputs <= digests(run).keys()), None)

"""Every MLflow tag name the project writes, in one place: runs, registry versions, mirrors.

Pure constants, importable from any layer; a tag is read back by the cache, the orchestrator,
the registry and the tests, so a name spelled twice would drift.
"""

TAG = "housing"

# step runs (pipeline layer)
STEP_TAG = f"{TAG}.step"
KEY_TAG = f"{TAG}.cache_key"
ERROR_TAG = f"{TAG}.error"
DIGEST_TAG = f"{TAG}.digest."  # + artifact name: its sha256
UPSTREAM_TAG = f"{TAG}.upstream."  # + step name: the upstream run id
PIPELINE_TAG = f"{TAG}.pipeline"
PROCESS_TAG = f"{TAG}.process"  # which process on which machine drives a pipeline run
PIPELINE_RUN_TAG = f"{TAG}.pipeline_run_id"  # on the launcher run: the pipeline run it started
STEP_STATUS_TAG = f"{TAG}.step."  # + step name (+ ".run_id") on the pipeline run

# ingest
DATA_SHA_TAG = f"{TAG}.data.sha256"
DATA_SOURCE_TAG = f"{TAG}.data.source"

# select and sweep nested runs
CANDIDATE_TAG = f"{TAG}.candidate"
CANDIDATE_STATUS_TAG = f"{TAG}.candidate.status"
TRIAL_TAG = f"{TAG}.trial"
TRIAL_STATE_TAG = f"{TAG}.trial.state"
TRIAL_PRUNED_TAG = f"{TAG}.trial.pruned"  # where a pruned trial stopped, e.g. "at max_iter=50"
TRIAL_REPORTED_METRIC = "reported_wmape"  # a trial run's metric: each value the pruner saw, at its step

# register run
MODEL_VERSION_TAG = f"{TAG}.model_version"
PROMOTED_TAG = f"{TAG}.promoted"
HARDWARE_TARGET_TAG = f"{TAG}.hardware_target"
REFERENCE_SOURCE_TAG = f"{TAG}.reference.predictions"  # the sweep's trial N, or folds refitted

# registry model versions
REGISTRATION_TAG = f"{TAG}.registration"

# monitor runs (and the `mlflow run -e monitor` launcher run, which points at its check run)
MONITOR_VERDICT_TAG = f"{TAG}.monitor.verdict"
MONITOR_VERSION_TAG = f"{TAG}.monitor.champion_version"
MONITOR_MODEL_TAG = f"{TAG}.monitor.model"
MONITOR_BATCH_TAG = f"{TAG}.monitor.batch"
MONITOR_RUN_TAG = f"{TAG}.monitor.run_id"

# W&B mirror
WANDB_RUN_TAG = f"{TAG}.wandb.run"  # on the MLflow step run: the W&B run path
WANDB_DIR_TAG = f"{TAG}.wandb.dir"  # offline: the run folder to `wandb sync`
WANDB_URL_TAG = f"{TAG}.wandb.url"  # online: the run page

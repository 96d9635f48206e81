# The single task entry. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3.11
BIN := $(CURDIR)/$(VENV)/bin
# `mlflow run --env-manager local` runs `python` from PATH: make it the project's venv.
export PATH := $(BIN):$(PATH)
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
export WANDB_MODE ?= disabled
# Extra Hydra overrides for `make pipeline`, e.g. make pipeline HYDRA="split.test_size=0.25"
HYDRA ?=
STEPS ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install pipeline test lint ui

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create .venv and install the project (done on first use by every target)

pipeline: $(VENV)/.installed ## run the whole pipeline: mlflow run . --env-manager local
	$(BIN)/mlflow run . --env-manager local -P steps="$(STEPS)" -P hydra_options="$(HYDRA)"

test: $(VENV)/.installed ## run the test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed ## ruff check + format check
	$(BIN)/ruff check src steps tests
	$(BIN)/ruff format --check src steps tests

ui: $(VENV)/.installed ## MLflow UI on http://127.0.0.1:5000
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri "$(MLFLOW_TRACKING_URI)" --host 127.0.0.1 --port 5000

# The two commands a newcomer needs: `make run` and `make test`. Both install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Prefect on one machine: a private home in the checkout, no telemetry, time for a first database migration.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= true
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90

AZUREML_VENV ?= .venv-azureml

AZURITE := infra/azurite/node_modules/.bin/azurite-blob

# The tests need Chromium, Node/npm, PostgreSQL and R from the system: say in one line what is missing, before any work.
ifneq ($(filter test test-fast,$(MAKECMDGOALS)),)
MISSING := $(shell bash deployments/prerequisites.sh)
ifneq ($(MISSING),)
$(error $(MISSING))
endif
endif

.PHONY: install azureml-venv azurite run test test-fast bench azure-smoke lint format clean

install: $(VENV)/.installed  ## create .venv and install the project with pinned versions

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $@

# Azure ML's inference server conflicts with the main environment (it pins pydantic and opentelemetry),
# so it gets its own, with the model libraries pinned to the versions a model trained here records.
azureml-venv: $(AZUREML_VENV)/.installed  ## Azure ML's inference server beside the same model libraries

$(AZUREML_VENV)/.installed: $(VENV)/.installed
	$(PYTHON) -m venv $(AZUREML_VENV)
	$(AZUREML_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c 'from model.environment import capture; print("\n".join(f"{n}=={v}" for n, v in capture()["libraries"].items()))' > $(AZUREML_VENV)/pins.txt
	$(AZUREML_VENV)/bin/python -m pip install --quiet azureml-inference-server-http==1.5.1 --requirement $(AZUREML_VENV)/pins.txt
	touch $@

azurite: $(AZURITE)  ## Azurite (the Azure Storage emulator) from npm, pinned by infra/azurite/package-lock.json

$(AZURITE): infra/azurite/package-lock.json
	cd infra/azurite && npm ci --no-audit --no-fund
	touch $@

run: install  ## the pipeline end to end on the local backend: train, register, package, deploy, smoke test
	$(BIN)/mlops run

# Test files run in parallel, each whole on one worker, longest first (tests/durations.json; README: Tests).
TEST_WORKERS ?= 3
XDIST = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: install azureml-venv azurite  ## the whole test suite
	$(BIN)/python -m pytest $(XDIST)

test-fast: install azureml-venv azurite  ## the fast tier: no Prefect server, emulator or platform (guarded), in under 2 minutes
	$(BIN)/python -m pytest --tier fast $(XDIST)

bench: install azureml-venv  ## the benchmarks, quickly (one repetition each): each goal met or NOT met, a history row per results file
	@command -v wrk >/dev/null || { echo "make bench: wrk is missing (apt-get install wrk)"; exit 1; }
	$(BIN)/python benchmarks/pipeline.py --reps 1 > /dev/null
	$(BIN)/python benchmarks/batch.py --reps 1 > /dev/null
	$(BIN)/python benchmarks/batch_nodes.py --reps 1 > /dev/null
	$(BIN)/python benchmarks/online.py --reps 1 --duration 3 > /dev/null
	@echo "goals (benchmarks/results/*.md, with each run's row in their history):"
	@grep -h -E "^- (met|NOT met)" benchmarks/results/pipeline.md benchmarks/results/batch.md benchmarks/results/batch_nodes.md benchmarks/results/online.md

# ONLINE=1 adds an online deployment, billed while it exists (deleted after).
azure-smoke: install  ## train, register, download, batch-score (ONLINE=1: and serve) one smoke version in your Azure ML workspace (README: Azure ML)
	MLOPS_BACKEND=azureml $(BIN)/python -m deployments.azure_smoke $(if $(filter 1 yes true,$(ONLINE)),--online)

lint: install  ## formatting, lint and types
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove the local workspace and Prefect home (keeps .venv)
	rm -rf .mlops .prefect

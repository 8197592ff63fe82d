# Peppercorn: every target is a thin wrapper over `python -m pipeline <command> ...`
# (pipeline/cli.py), so each step also runs without make.  `make setup` is implied by all.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
PARITY_STAMP := $(VENV)/.parity-installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
CONFIG ?= configs/default.yaml
HOST ?=
PORT ?=
DT ?=
MODEL ?=
PYTEST_ARGS ?=
# make test's pytest worker processes (pytest-xdist; each runs whole test modules, with its own
# local SparkSession); TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
PLATFORM_ARGS ?=

.PHONY: setup etl generate train serve batch daily stream tracking-ui test-nightly bench bench-engine \
        bench-etl bench-train bench-report bench-tracking-ui bench-serve bench-serve-readyz bench-soak bench-distributed bench-platform test test-fast \
        test-parity test-gpu fuzz lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Generates the synthetic raw logs when missing or stale, then runs ETL and features.
etl: setup
	$(PY) -m pipeline etl --config $(CONFIG)

generate: setup
	$(PY) -m pipeline generate --config $(CONFIG)

train: setup
	$(PY) -m pipeline train --config $(CONFIG) $(if $(MODEL),--model $(MODEL))

serve: setup
	$(PY) -m pipeline serve --config $(CONFIG) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

batch: setup
	$(PY) -m pipeline batch --config $(CONFIG) $(if $(DT),--dt $(DT))

daily: setup
	$(PY) -m pipeline daily --config $(CONFIG) $(if $(DT),--dt $(DT))

# The raw event log into the online store: every file not yet read (features/stream.py; run it
# without --once for a batch every --trigger-s seconds until SIGTERM or Ctrl-C).
stream: setup
	$(PY) -m features.stream --config $(CONFIG) --once

# MLflow's UI over this config's tracking store (tracking.uri, default <data root>/mlflow.db):
# every run's parameters, curves and artifacts, and the model registry's aliases.
tracking-ui: setup
	$(PY) -m peppercorn.tracking.ui --config $(CONFIG) $(if $(PORT),--port $(PORT))

bench: bench-engine bench-etl bench-train bench-serve bench-serve-readyz bench-soak bench-distributed

bench-engine: setup
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.engine

bench-etl: setup
	$(PY) -m bench.etl

bench-train: setup
	$(PY) -m bench.train

# The quality tables (README, bench/results/quality_runs.md) from the tracked runs.
bench-report: setup
	$(PY) -m bench.report

# The tracking UI in headless Chromium: screenshots under bench/results/ (needs Debian's
# chromium; installs the bench extra for Playwright).
bench-tracking-ui: setup
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.tracking_ui

# The model server (one stage), then issue #16's two-stage figures: the ANN index, the chain's
# quality, /recommend at 1M users x 100k rooms, and batch top-K through the chain at that size.
bench-serve: setup
	$(PY) -m bench.serve
	$(PY) -m bench.ann
	$(PY) -m bench.chain_quality
	$(PY) -m bench.serve_two_stage
	$(PY) -m bench.batch_two_stage
	$(PY) -m bench.events

# /readyz latency while 4 clients send full-catalogue /recommend (bench/results/serve_readyz.md).
bench-serve-readyz: setup
	$(PY) -m bench.serve_readyz

# 10 minutes of mixed traffic and junk at 200 req/s with a hot swap every minute and corrupt
# versions dropped in: errors, latency, RSS and descriptors (bench/results/soak.md).
bench-soak: setup
	$(PY) -m bench.soak

bench-distributed: setup
	$(PY) -m bench.distributed

# Generate, ETL, features and one epoch + evaluation + export at 10M and 50M events on
# configs/platform.yaml (bench/results/platform.md). About an hour on 2 cores, so `bench`
# leaves it out; set PLATFORM_ARGS (e.g. --events 10000000 --keep) to change the run.
bench-platform: setup
	$(PY) -m bench.platform $(PLATFORM_ARGS)

# tests/parity (the engine against real TensorFlow) needs the parity extra: make test-parity.
test: setup
	$(PY) -m pytest -m "not nightly" --ignore=tests/parity -n $(TEST_WORKERS) --dist loadfile \
	    $(PYTEST_ARGS)

# The gates too long for every CI run: the MovieLens 100K quality yardstick (about 4 minutes)
# and distributed training's ML-100K hit rate against one process (about 2.5 minutes).
test-nightly: setup
	$(PY) -m pytest -m nightly --ignore=tests/parity $(PYTEST_ARGS)

# The suite without the tests marked slow (end to end, MovieLens quality, Spark clusters).
test-fast: setup
	$(PY) -m pytest -m "not slow and not nightly" --ignore=tests/parity -n $(TEST_WORKERS) \
	    --dist loadfile $(PYTEST_ARGS)

# TF-1 programs run on the engine and on TensorFlow 2.21 (compat.v1), compared number for
# number (tests/parity, under 90 s); installs the parity extra (tensorflow-cpu) once.
test-parity: setup $(PARITY_STAMP)
	$(PY) -m pytest tests/parity $(PYTEST_ARGS)

$(PARITY_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,parity]'
	@rm -f $(VENV)/.parity-installed-*
	@touch $@

# Exploratory API fuzzing: random examples, many of them (the suite runs a fixed 20).
fuzz: setup
	PEPPERCORN_FUZZ_EXAMPLES=$(or $(EXAMPLES),500) $(PY) -m pytest tests/serving/test_fuzz.py

# On a GPU machine: the suite on CuPy, then a CPU-vs-GPU engine benchmark.
test-gpu: setup
	bash bench/gpu_check.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) data spark-warehouse metastore_db derby.log .pytest_cache .ruff_cache
	find models -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

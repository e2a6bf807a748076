# contrail — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.contrail-installed
UV_VERSION := 0.13.9
# embedded (SQLite, LocalExecutor) or scaleout (PostgreSQL, Celery + Redis, two workers)
PROFILE ?= $(or $(CONTRAIL_PROFILE),embedded)
export CONTRAIL_PROFILE := $(PROFILE)

.PHONY: help venv demo test test-fast test-quality-all up down status bootstrap bench lock clean clean-state

help:
	@echo "make demo    - install, start the local stack, run a few days of 2013 through Airflow, stop"
	@echo "make test    - install and run the test suite (unit, Spark, GX, MLflow, end-to-end)"
	@echo "make up      - start the local stack in the foreground (Ctrl-C or 'make down' stops it);"
	@echo "               PROFILE=scaleout for PostgreSQL + Celery (make demo/status/down take it too)"
	@echo "make down    - stop the local stack (state stays in .contrail/)"
	@echo "make status  - profile, components, restarts, memory, URLs and login"
	@echo "make bench   - run the benchmarks under bench/"

venv: $(STAMP)

# Locked, offline-reproducible install: uv resolves nothing here, it installs requirements.lock.
$(STAMP): requirements.lock setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q -p $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q -p $(BIN)/python --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/contrail demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

test-quality-all: $(STAMP)
	CONTRAIL_QUALITY_ALL_DAYS=1 $(BIN)/python -m pytest tests/unit/test_quality_real_days.py

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not e2e"

up: $(STAMP)
	$(BIN)/contrail stack up

down: $(STAMP)
	$(BIN)/contrail stack down

status: $(STAMP)
	$(BIN)/contrail stack status

bootstrap: $(STAMP)
	$(BIN)/contrail bootstrap

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Re-resolve the lock after editing requirements.in (needs the package index).
lock:
	$(BIN)/uv pip compile -q -p 3.11 requirements.in -o requirements.lock

clean-state:
	$(BIN)/contrail stack down
	$(BIN)/contrail stack reset

clean: clean-state
	rm -rf $(VENV) build *.egg-info

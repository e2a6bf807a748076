# contrail — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.contrail-installed
UV_VERSION := 0.13.9
# The feature job's EMR runtime (EMR 7.x: Spark 3.5 on Python 3.9), in a venv of its own.
# PYENV_VERSION lets a pyenv shim of python3.9 run when 3.9 is installed but not the global.
PYTHON_EMR ?= python3.9
VENV_EMR   ?= .venv-emr
EMR_LOCK   := spark_jobs/requirements-emr.lock
EMR_STAMP  := $(VENV_EMR)/.contrail-installed
# embedded (SQLite, LocalExecutor) or scaleout (PostgreSQL, Celery + Redis, two workers)
PROFILE ?= $(or $(CONTRAIL_PROFILE),embedded)
export CONTRAIL_PROFILE := $(PROFILE)

.PHONY: help venv venv-emr lock-emr browser demo test test-fast test-quality-all up down status bootstrap bench lock dist clean clean-state

help:
	@echo "make demo    - install, start the local stack, run a few days of 2013 through Airflow, stop"
	@echo "make test    - install and run the test suite (unit, Spark, GX, MLflow, end-to-end)"
	@echo "make venv-emr - the Spark job's EMR runtime (Python 3.9 + PySpark 3.5) in $(VENV_EMR)/"
	@echo "make up      - start the local stack in the foreground (Ctrl-C or 'make down' stops it);"
	@echo "               PROFILE=scaleout for PostgreSQL + Celery (make demo/status/down take it too)"
	@echo "make down    - stop the local stack (state stays in .contrail/)"
	@echo "make status  - profile, components, restarts, memory, URLs and login"
	@echo "make bench   - run the benchmarks under bench/"
	@echo "make dist    - build dist/mwaa/: the DAGs zip, plugins.zip and requirements.txt MWAA takes"

venv: $(STAMP)

# Locked, offline-reproducible install: uv resolves nothing here, it installs requirements.lock.
$(STAMP): requirements.lock setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q -p $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q -p $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv-emr: $(EMR_STAMP)

# No Python 3.9, no EMR runtime test: fail here, naming what to install, rather than skip.
$(EMR_STAMP): $(EMR_LOCK) | $(STAMP)
	@PYENV_VERSION=3.9 $(PYTHON_EMR) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 9))' 2>/dev/null || { \
	  echo "make venv-emr: Python 3.9 not found as '$(PYTHON_EMR)'. EMR 7.x runs the Spark job on Python 3.9,"; \
	  echo "and the test suite runs it there too. Install Python 3.9 (e.g. 'pyenv install 3.9' or your"; \
	  echo "distribution's python3.9 package), or pass PYTHON_EMR=/path/to/python3.9."; exit 1; }
	test -x $(VENV_EMR)/bin/python || PYENV_VERSION=3.9 $(PYTHON_EMR) -m venv $(VENV_EMR)
	$(BIN)/uv pip install -q -p $(VENV_EMR)/bin/python -r $(EMR_LOCK)
	touch $(EMR_STAMP)

demo: $(STAMP)
	$(BIN)/contrail demo

# The browser tests drive Debian's Chromium through Playwright; no browser is downloaded
# from a vendor. Installed once (needs root or sudo), skipped when already on PATH.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "make browser: installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

test: $(STAMP) $(EMR_STAMP) browser
	$(BIN)/python -m pytest tests

test-quality-all: $(STAMP)
	CONTRAIL_QUALITY_ALL_DAYS=1 $(BIN)/python -m pytest --timeout=3600 tests/unit/test_quality_real_days.py

test-fast: $(STAMP) $(EMR_STAMP)
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

# The files an MWAA environment takes (see README "Running on AWS"); deterministic zips.
dist: $(STAMP)
	rm -rf dist/mwaa
	$(BIN)/python -m contrail.stack.dist dist/mwaa

# Re-resolve the lock after editing requirements.in (needs the package index).
lock:
	$(BIN)/uv pip compile -q -p 3.11 requirements.in -o requirements.lock

lock-emr:
	$(BIN)/uv pip compile -q --python-version 3.9 spark_jobs/requirements-emr.in -o $(EMR_LOCK)

clean-state:
	$(BIN)/contrail stack down
	$(BIN)/contrail stack reset

clean: clean-state
	rm -rf $(VENV) $(VENV_EMR) build dist *.egg-info

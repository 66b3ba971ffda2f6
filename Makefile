# Two commands on a fresh machine: `make demo` and `make test`.
# Needs only Python and pip: uv is installed into .tools/ when it is not on PATH, and
# every environment comes from the committed uv.lock (`uv sync --frozen`). Any CPython
# from 3.11 to 3.14 will do (pyproject's requires-python); when the machine has none of
# them, uv downloads a managed one. UV_PYTHON_DOWNLOADS=never forbids that.
#
# PY picks the version: `make test-fast PY=3.13` runs in its own environment, .venv-3.13,
# beside the default .venv (whatever Python uv chose first, kept until it is removed).

SHELL := /bin/bash
PYTHON ?= python3
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PY ?=
VENV := .venv$(if $(PY),-$(PY))
ifneq ($(PY),)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# uv finds pythonX.Y on PATH and its own downloads; pyenv's versions only when
# PYENV_VERSION names them, so an installed pyenv version is handed over by its path.
PYENV_PYTHON := $(lastword $(wildcard $(shell pyenv root 2>/dev/null)/versions/$(PY).*/bin/python$(PY)))
export UV_PYTHON := $(or $(PYENV_PYTHON),$(PY))
endif
RUN := $(UV) run --frozen --no-sync

.PHONY: install demo demo-no-serve demo-small test test-fast redis-server wrk bench mutation lint typecheck quality-bar docs-layers settings-doc screenshots image compose-config observability-tools clean help

help:
	@echo "make demo   run both case studies end to end, then serve the API on :8000"
	@echo "make test   run the test suite (unit, data, model, end-to-end)"
	@echo "make test-fast   the suite less its slow, end-to-end and services tests (a few minutes)"
	@echo "make demo-small  both case studies on small data in a fresh home, no server"
	@echo "            PY=3.13 on any target: that Python, in its own environment .venv-3.13"
	@echo "            UV_PYTHON_DOWNLOADS=never: use only the Pythons on the machine"
	@echo "make bench  the benchmarks (the figures of docs/benchmarks.md)"
	@echo "make mutation   mutmut over the promotion gates, predictors, churn transforms, split"
	@echo "make lint   ruff, mypy and the import layers (lint-imports)"
	@echo "make docs-layers   redraw the package diagram of docs/architecture.md from the layers"
	@echo "make settings-doc  regenerate docs/settings.md from the settings class"
	@echo "make screenshots   retake the README's pictures (docs/images/) from the demo's home"
	@echo "make quality-bar   train churn on small data; fail if the model misses its bar"
	@echo "make image  build the project image (infra/Dockerfile)"
	@echo "make observability-tools   apt-get Prometheus, promtool and Alertmanager (the tests use them)"

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

# --compile-bytecode: the .pyc files are written once here. Without them every process
# compiles what it imports, and where PYTHONDONTWRITEBYTECODE is set (CI images often set
# it) it does so again each time: importing MLflow, Feast, Evidently, Prefect and XGBoost
# took 19-23 s a process that way here, against 13-15 s compiled.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

install: $(VENV)/.synced

demo: install
	$(RUN) mlops demo

demo-no-serve: install
	$(RUN) mlops demo --no-serve

# A small run of both case studies in a fresh home: CI's check of each Python. A check
# that everything runs, not of the models: the fraud search stops after a few trials.
SMALL_HOME ?= var/demo-small$(if $(PY),-$(PY))
SMALL_SIZES ?= --customers 1000 --fraud-customers 200 --fraud-terminals 400
SMALL_TRIALS ?= 4
SMALL_ARGS = --no-serve $(SMALL_SIZES)

demo-small: install
	rm -rf $(SMALL_HOME)
	MLOPS_HOME=$(SMALL_HOME) MLOPS_FRAUD_SEARCH_TRIALS=$(SMALL_TRIALS) $(RUN) mlops demo $(SMALL_ARGS)

test: install
	$(RUN) pytest

# Every package's tests less the training runs, the end-to-end flows and the services:
# what CI runs again on each other Python.
FAST_MARKERS ?= not slow and not e2e and not services

test-fast: install
	$(RUN) pytest -m "$(FAST_MARKERS)"

# The stream fault test starts and kills a Redis of its own (tests/helpers/redis_server.py):
# Debian's redis-server, installed when missing without starting its service (CI runs it).
redis-server:
	@command -v redis-server >/dev/null || $(SUDO) sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; apt-get update -qq; apt-get install -y -qq redis-server; status=$$?; rm -f /usr/sbin/policy-rc.d; exit $$status'

# wrk drives the serving benchmark (and its test); installed from Debian when missing.
wrk:
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }

bench: install wrk
	$(RUN) mlops bench pipeline fraud
	$(RUN) mlops bench pipeline fraud --scale 1 --in-process
	MLOPS_DASK_MEMORY_LIMIT=6GB $(RUN) mlops bench pipeline fraud --scale 1
	MLOPS_DASK_MEMORY_LIMIT=6GB $(RUN) mlops bench pipeline fraud --scale 10
	$(RUN) mlops bench pipeline churn
	$(RUN) mlops bench serving
	$(RUN) mlops bench batch
	$(RUN) mlops bench monitoring

# Mutation testing ([tool.mutmut] in pyproject.toml: the modules and their fast tests).
# mutmut runs beside the locked environment (`uv run --with`), never added to uv.lock.
# Results stay in mutants/ between runs; `mutmut results` lists the survivors,
# `mutmut show NAME` one mutant's diff.
MUTMUT ?= mutmut==3.8.1

mutation: install
	$(RUN) --with '$(MUTMUT)' mutmut run --max-children 2
	$(RUN) --with '$(MUTMUT)' mutmut results

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports

# The package diagram of docs/architecture.md, drawn from the import-linter layers of
# pyproject.toml (tests/test_layout.py fails when the page holds another drawing).
docs-layers: install
	$(RUN) python -m tests.layout --write

# docs/settings.md, generated from mlops/settings.py (tests/mlops/test_settings_reference.py
# fails when the page is not what the generator gives).
settings-doc: install
	$(RUN) mlops config --markdown > docs/settings.md

# The README's pictures: the pages of a home where the demo ran (`make demo-no-serve`),
# taken by headless Chromium while the API, MLflow and the Evidently UI run on free ports.
SHOTS_HOME ?= var

screenshots: install
	$(RUN) mlops screenshots --home $(SHOTS_HOME) --out docs/images

# CI's model check: a fresh home, a small simulated run, then the bar the model must
# clear on its time-ordered test window (5,000 customers give ROC-AUC ~0.85).
BAR_HOME ?= var/quality-bar
BAR_CUSTOMERS ?= 2000
BAR_CHURN ?= --min roc_auc=0.80 --max brier=0.20

quality-bar: install
	rm -rf $(BAR_HOME)
	MLOPS_HOME=$(BAR_HOME) $(RUN) mlops pipeline churn --customers $(BAR_CUSTOMERS) --json
	MLOPS_HOME=$(BAR_HOME) $(RUN) mlops quality-bar churn $(BAR_CHURN) --json

IMAGE ?= mlops-platform:local

# BuildKit: the Dockerfile caches uv's downloads with RUN --mount.
image:
	DOCKER_BUILDKIT=1 docker build -f infra/Dockerfile -t $(IMAGE) .

# promtool (the alert rules' tests) and the native stack's Prometheus and Alertmanager,
# from the distribution's packages; nothing when they are installed already.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
observability-tools:
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager; }

# The values of .env.example fill the ${VAR:?} the compose file requires.
compose-config:
	docker compose --env-file .env.example config -q

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

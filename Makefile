# Everything a developer or CI needs; `make run` and `make test` set up a fresh machine themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := devstack/node_modules/.installed

.PHONY: help deps run test unit integration e2e lint format events demo openapi clean

help:
	@echo "make run          start the local stack (DynamoDB Local, API on 127.0.0.1:\$${PORT:-3000})"
	@echo "make test         lint, type-check and run every test (unit, integration on moto, e2e on DynamoDB Local)"
	@echo "make events       list the events stored by a running local stack"
	@echo "make demo         send a realistic mix of traffic to a running local stack"
	@echo "make lint         ruff and mypy only"
	@echo "make openapi      regenerate the OpenAPI document served at /openapi.json"
	@echo "make format       apply ruff's formatting and safe fixes"

$(PY_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (make PYTHON=python3.12 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(NODE_STAMP): devstack/package.json devstack/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed to install DynamoDB Local (Node.js 18+)"; exit 1; }
	npm ci --prefix devstack --no-audit --no-fund --loglevel=error
	@touch $@

deps: $(PY_STAMP) $(NODE_STAMP)
	@command -v java >/dev/null || echo "WARNING: no java on PATH: the local stack falls back to moto's DynamoDB server"

run: deps
	$(BIN)/tracking-local run

test: deps lint
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		echo "NOTE: no Chromium on PATH: the dashboard's browser test will be SKIPPED (apt-get install chromium)"
	$(BIN)/pytest

unit: $(PY_STAMP)
	$(BIN)/pytest tests/unit

integration: $(PY_STAMP)
	$(BIN)/pytest tests/integration

e2e: deps
	$(BIN)/pytest tests/e2e

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@for handler in functions/*/app.py; do $(BIN)/mypy "$$handler" || exit 1; done

format: $(PY_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

events: $(PY_STAMP)
	$(BIN)/tracking-local events

demo: $(PY_STAMP)
	$(BIN)/tracking-local demo

openapi: $(PY_STAMP)
	$(BIN)/python -m devstack.openapi

clean:
	rm -rf $(VENV) devstack/node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache

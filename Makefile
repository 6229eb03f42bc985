# Local development of datajoint-link: `make help` lists the targets.
# The servers (Kafka, two MariaDB) run as plain processes managed by infra/*.sh;
# their settings live in infra/defaults.sh and can be overridden from the
# environment, e.g. `LINK_KAFKA_PORT=19092 make up`.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin
# Runs a command with the exports of infra/env.sh (broker, servers, accounts).
WITH_ENV = eval "$$(infra/env.sh)" &&

.PHONY: help venv lock up down status env clean-state test demo schemas services \
	asyncapi-spec services-stop format

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{ printf "  %-14s %s\n", $$1, $$2 }'

# The stamp is rebuilt whenever pyproject.toml or constraints.txt changes, so new
# dependencies are installed by the next `make test`. constraints.txt pins every
# package to the versions last tested together: a new release on PyPI cannot
# change what CI installs.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY)/python || python3 -m venv $(VENV)
	$(PY)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# Resolves pyproject.toml's dependencies afresh, in a scratch environment, and
# writes what was installed to constraints.txt.
lock: ## Re-resolve the dependencies and rewrite constraints.txt
	rm -rf .cache/lock-venv
	python3 -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install -q -e '.[dev]'
	{ head -n 2 constraints.txt; .cache/lock-venv/bin/pip freeze --exclude-editable; } \
		> constraints.new
	mv constraints.new constraints.txt
	rm -rf .cache/lock-venv

pyproject.toml:
	@echo "pyproject.toml is missing: the package is not written yet" >&2; exit 1

venv: $(VENV)/.installed ## Create .venv and install the package with its dev extra

up: ## Start Kafka and both MariaDB servers (those not yet running)
	infra/stack.sh up

down: ## Stop the services, both MariaDB servers and Kafka (data is kept)
	infra/stack.sh down

status: ## Show each server and service: running or stopped, pid, port
	@infra/stack.sh status || true

env: ## Print exports for the local servers: eval "$(make -s env)"
	@infra/env.sh

clean-state: ## Stop everything and delete .local (server data); keep .cache
	infra/stack.sh clean

# The official AsyncAPI 3.0 JSON Schema, from the @asyncapi/specs npm package,
# against which tests/unit/test_asyncapi.py validates schemas/asyncapi.json.
ASYNCAPI_SPECS := 6.11.1
ASYNCAPI_SCHEMA := .cache/asyncapi/package/schemas/3.0.0.json
$(ASYNCAPI_SCHEMA):
	mkdir -p .cache/asyncapi
	cd .cache/asyncapi && npm pack --silent @asyncapi/specs@$(ASYNCAPI_SPECS) \
		&& tar xzf asyncapi-specs-$(ASYNCAPI_SPECS).tgz

asyncapi-spec: $(ASYNCAPI_SCHEMA) ## Fetch the official AsyncAPI 3.0 schema (npm)

test: venv up $(ASYNCAPI_SCHEMA) ## Format check, lint, type check and tests against the servers
	$(WITH_ENV) $(PY)/ruff format --check .
	$(WITH_ENV) $(PY)/ruff check .
	$(WITH_ENV) $(PY)/mypy
	$(WITH_ENV) $(PY)/pytest

demo: venv up services ## Start servers and services, then run the demo (python -m demo)
	$(WITH_ENV) $(PY)/python -m demo

schemas: venv ## Export the message schemas (python -m link.schemas_export)
	$(PY)/python -m link.schemas_export

services: venv up ## Start the three services in the background (logs: .local/logs)
	infra/services.sh start

services-stop: ## Stop the background services
	infra/services.sh stop

format: venv ## Format the code and apply lint fixes
	$(PY)/ruff format .
	$(PY)/ruff check --fix .

.PHONY: bench
bench: venv up ## Benchmark pulls: old tool, embedded, Kafka, raw copy (python -m bench)
	$(WITH_ENV) $(PY)/python -m bench $(BENCH_ARGS)

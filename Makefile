# Every target installs what it needs first, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins many libraries of its own, so it lives in a venv of its own, out
# of the dev extra: only `make security` (and so `make check`) needs it, never
# `make test` or CI.
CHECKOV_VERSION := 3.3.30
TOOLS := .tools/venv
CHECKOV_STAMP := $(TOOLS)/.checkov-$(CHECKOV_VERSION)
TRANSLATED := .aws-sam/translated-template.json

.PHONY: install run test lint format typecheck validate security build build-local deploy check bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hookline needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# The whole pipeline on this machine: http://127.0.0.1:3000, PostgreSQL from
# DATABASE_URL or embedded under .hookline/, functions from a current
# `make build-local` output, else from the source tree. One stack per data
# folder: a second one needs its own, e.g.
# `make run ARGS="--port 3001 --data-dir .hookline/second"`. The commands its ready
# line suggests (.venv/bin/hookline ...) run as printed from this directory.
run: install
	$(BIN)/hookline local $(ARGS)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Each function's app.py is checked on its own: they are all modules named `app`.
typecheck: install
	$(BIN)/mypy shared/hookline tests bench docs/examples/python
	@for f in functions/*/app.py; do echo "mypy $$f"; $(BIN)/mypy $$f || exit 1; done

validate: install
	$(BIN)/python -m hookline.sam validate

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check 'checkov==$(CHECKOV_VERSION)'
	@touch $@

# checkov on what CloudFormation deploys: template.yaml after the SAM transform.
# Options in .checkov.yaml; suppressions, each with its reason, in template.yaml.
security: install $(CHECKOV_STAMP)
	$(BIN)/python -m hookline.sam translate -o $(TRANSLATED)
	$(TOOLS)/bin/checkov --config-file .checkov.yaml

build: install
	$(BIN)/python -m hookline.sam build

# Built for this machine's architecture, so `make run` can run the build output.
build-local: install
	$(BIN)/python -m hookline.sam build --architecture host

# `sam build` then `sam deploy` with samconfig.toml's [$(ENV)] environment, --guided
# when the stack does not exist yet (docs/deploy.md). `make deploy ENV=prod`.
ENV ?= default
deploy: install
	$(BIN)/python -m hookline.deploy --config-env $(ENV)

check: lint typecheck validate security test

# Every speed goal beside its floor or peer, measured in one run: one table
# (docs/performance.md).
bench: install
	$(BIN)/python bench/run.py

# 10,000 deliveries of every provider over HTTP into `hookline local` while
# PostgreSQL, the consumer, SQS, DynamoDB and the provider APIs fail in turn; the
# database is then compared with an oracle. Report and chart in docs/soak/.
# `make soak ARGS="--deliveries 2000 --faults postgres"` for a shorter one.
soak: install
	$(BIN)/python -m tests.soak $(ARGS)

clean:
	rm -rf $(VENV) .tools .aws-sam .pytest_cache .mypy_cache .ruff_cache
	@echo "kept .hookline/ (the local stack's database); remove it by hand to start afresh"

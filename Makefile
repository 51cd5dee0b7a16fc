# `make run` and `make test` work on a fresh machine with only Python 3.11+:
# each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck pytest contract clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the server on the embedded SQLite default (./var/), http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/nestauth serve

## The whole suite: lint, types, then every test (PostgreSQL too if NESTAUTH_TEST_DATABASE_URL is set)
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check nestauth tests
	$(BIN)/ruff format --check nestauth tests

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

## Only the schemathesis runs
contract: $(STAMP)
	$(BIN)/pytest tests/contract

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

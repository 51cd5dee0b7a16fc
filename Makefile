# `make run` and `make test` work on a fresh machine with only Python 3.11+:
# each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck pytest contract contract-cli contract-cli-sqlite \
	contract-cli-postgresql bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the server on the embedded SQLite default (./var/), http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/nestauth serve

## The whole suite: lint, types, every test, the schemathesis CLI against a live server
## (each on PostgreSQL too when NESTAUTH_TEST_DATABASE_URL is set)
test: lint typecheck pytest contract-cli

lint: $(STAMP)
	$(BIN)/ruff check nestauth tests scripts bench
	$(BIN)/ruff format --check nestauth tests scripts bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

## Only the schemathesis runs
contract: $(STAMP)
	$(BIN)/pytest tests/contract

## The CLI runs on both databases side by side; -O keeps each run's output in one piece
contract-cli: $(STAMP)
	$(MAKE) --no-print-directory -j2 -O contract-cli-sqlite \
	  $(if $(NESTAUTH_TEST_DATABASE_URL),contract-cli-postgresql)

contract-cli-sqlite: $(STAMP)
	$(BIN)/python scripts/contract_cli.py

contract-cli-postgresql: $(STAMP)
	NESTAUTH_CONTRACT_DATABASE_URL="$$NESTAUTH_TEST_DATABASE_URL" $(BIN)/python scripts/contract_cli.py

## The benchmark (bench/README.md): nestauth and the floor under wrk, table and JSON in
## bench/results/. Needs wrk (Debian: apt-get install wrk). BENCH_ARGS="--postgresql URL" etc.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## The harness end to end in about a minute (CI runs it so it cannot rot); figures not judged
bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Caducée — the two commands: `make run` (demo) and `make test` (whole suite).
PYTHON ?= python3
# Test processes (pytest-xdist): most tests wait on sockets, TLS and fsync, so more workers than
# cores keep both busy; each worker has its own throwaway PostgreSQL cluster.
TEST_WORKERS ?= 4
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit bench clean

$(BIN)/python:
	bash scripts/system-deps run
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

## Install Caducée and serve a demo practice from ./var/demo (created if absent).
run: $(VENV)/.installed
	$(BIN)/caducee demo --data var/demo

## Install the development tools and run the whole suite (lint, types, tests on SQLite and PostgreSQL).
test: $(VENV)/.installed-dev
	bash scripts/system-deps test
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(VENV)/.installed-dev
	$(BIN)/pytest -x -q

## Benchmarks print figures; they never decide pass or fail.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.store_bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# The two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-dev lint typecheck unit chaos bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Set up, migrate the SQLite database under ./var, load the shipped surveys and serve on 127.0.0.1:8080.
run: install
	$(BIN)/brukardialog serve

## Lint, type-check and run every test (PostgreSQL too when BRUKARDIALOG_TEST_DATABASE_URL is set).
test: install-dev lint typecheck unit

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

# pytest exits 5 when it collects no tests; make treats that as a failure, as it should.
unit: install-dev
	$(BIN)/pytest -m "not chaos"

## The fault suite: real service processes killed with kill -9, provider outages and 429 storms,
## two processes on PostgreSQL (when BRUKARDIALOG_TEST_DATABASE_URL is set).
chaos: install-dev
	$(BIN)/pytest -m chaos tests/chaos -rA

bench: install-dev
	$(BIN)/python bench/inbound.py
	$(BIN)/python bench/telegram.py
	$(BIN)/python bench/results.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

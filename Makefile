# The two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-dev lint typecheck unit chaos bench clean browser-deps screenshots

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
test: install-dev browser-deps lint typecheck unit

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

# pytest exits 5 when it collects no tests; make treats that as a failure, as it should.
unit: install-dev browser-deps
	$(BIN)/pytest -m "not chaos"

# The staff web app's browser tests: Debian's Chromium and its driver (apt-get, when missing) and
# axe-core from npm into the git-ignored .browser/ folder. Nothing downloads a browser of its own.
AXE := .browser/node_modules/axe-core/axe.min.js

browser-deps: $(AXE)
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing chromium and chromium-driver"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	fi

$(AXE):
	mkdir -p .browser
	npm install --no-save --no-audit --no-fund --prefix .browser axe-core@4

## PNGs of every staff page at 390 px and 1280 px, in docs/screenshots/.
screenshots: install-dev browser-deps
	$(BIN)/python -m tests.web.staff.screenshots docs/screenshots

## The fault suite: real service processes killed with kill -9, provider outages and 429 storms,
## two processes on PostgreSQL (when BRUKARDIALOG_TEST_DATABASE_URL is set).
chaos: install-dev
	$(BIN)/pytest -m chaos tests/chaos -rA

bench: install-dev
	$(BIN)/python bench/inbound.py
	$(BIN)/python bench/results.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .browser

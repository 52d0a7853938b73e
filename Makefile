# The two commands: `make serve` runs the hub, `make test` checks everything CI checks.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DATA_DIR ?= trainhub-data
PYTEST_ARGS ?=
export TRAINHUB_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: serve test lint check bench compat-venv ml-venvs export-venv chromium demo clean

# the export extra too: `trainhub server` then starts a worker, and exports work out of the box
$(VENV)/.server: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[export]'
	touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.server

$(VENV)/.demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[demo]'
	touch $@

demo: $(VENV)/.demo
	$(VENV)/bin/trainhub demo --keep

serve: $(VENV)/.server
	$(VENV)/bin/trainhub server --data-dir $(DATA_DIR)

compat-venv:
	scripts/compat-venv.sh

ml-venvs: compat-venv
	scripts/ml-venvs.sh

export-venv: compat-venv
	scripts/export-venv.sh

chromium:
	scripts/install-chromium.sh

check: $(VENV)/.dev
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy

test: $(VENV)/.dev compat-venv ml-venvs export-venv chromium check
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff format src tests bench scripts
	$(VENV)/bin/ruff check --fix src tests bench scripts

bench: $(VENV)/.dev
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

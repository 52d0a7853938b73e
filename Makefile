# The two commands: `make serve` runs the hub, `make test` checks everything CI checks.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DATA_DIR ?= trainhub-data
PYTEST_ARGS ?=
# Three workers on two cores: much of the suite waits on servers, subprocesses and clocks (tests
# marked `serial` run alone, see tests/conftest.py). Each module stays on one worker, so its
# module-scoped servers and trainings are made once; modules go out in the order
# tests/conftest.py sorts them (serial ones first, long folders before short ones).
PYTEST_PARALLEL ?= -n 3 --dist loadscope --no-loadscope-reorder
export TRAINHUB_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: serve test test-quick lint check bench venvs chromium demo clean

# the export extra too: `trainhub server` then starts a worker, and exports work out of the box
$(VENV)/.server: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[export]'
	touch $@

# .venv as a layer on the torch base venv (scripts/venvs.sh; DEVELOPERS.md, "The venvs").
$(VENV)/.dev: pyproject.toml scripts/venvs.sh
	DEV_VENV=$(VENV) BASE_PYTHON=$(PYTHON) scripts/venvs.sh dev
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

venvs: $(VENV)/.dev
	DEV_VENV=$(VENV) BASE_PYTHON=$(PYTHON) scripts/venvs.sh

chromium:
	scripts/install-chromium.sh

check: $(VENV)/.dev
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy

# PYTHONDONTWRITEBYTECODE emptied: the suite starts a few hundred Python processes on this
# checkout (servers, CLIs, workers), and each would compile the modules it imports again
test: venvs chromium check
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pytest $(PYTEST_PARALLEL) --durations=25 $(PYTEST_ARGS)

# the in-process tiers only (unit, integration, security): the loop while editing; `make test`
# before pushing runs everything CI runs
test-quick: $(VENV)/.dev
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pytest $(PYTEST_PARALLEL) \
		tests/unit tests/integration tests/security $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff format src tests bench scripts
	$(VENV)/bin/ruff check --fix src tests bench scripts

bench: $(VENV)/.dev chromium
	scripts/install-bench-tools.sh
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

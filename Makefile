# Set-up and the two jobs of the README. Every target creates .venv and installs from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# one BLAS/OpenMP thread per pytest worker: two workers fill two cores without oversubscription
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PYTEST_WORKERS ?= 2

.PHONY: demo test test-quick lint format clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-main: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[plots,digits]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-main

## the main job: train an SE network on scikit-learn's digits (offline), evaluate it, plot its curves
demo: $(VENV)/.installed-main
	$(VENV)/bin/senet train --recipe digits --out runs/digits
	$(VENV)/bin/senet eval runs/digits

## lint, format check and the whole test suite
test: $(VENV)/.installed-dev lint
	$(TEST_ENV) $(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15

## the quick subset (about a minute): everything not marked slow
test-quick: $(VENV)/.installed-dev
	$(TEST_ENV) $(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow"

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

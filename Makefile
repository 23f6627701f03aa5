# The README's commands. Each one installs what it needs into .venv first.
#   make demo   install, then run the end-to-end demo
#   make test   install, then lint and run the whole test suite
#   make bench  install, then run the benchmarks

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml backends/lightning/pyproject.toml backends/keras/pyproject.toml backends/lightgbm/pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[test,datasets,bench,sql,spark,mlflow]" -e backends/lightning -e "backends/keras[jax]" -e backends/lightgbm
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/binomlab demo

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache .import_linter_cache .hypothesis

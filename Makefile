# The two commands a newcomer needs:
#   make run    set up a virtualenv, migrate, and run Dropyard on the embedded default
#   make test   set up everything the tests need, lint, type-check and run the tests
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DATA   ?= ./var

.PHONY: run test setup setup-dev system-deps services lint typecheck pytest clean

$(BIN)/dropyard: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/dropyard

setup: $(BIN)/dropyard

run: setup
	$(BIN)/dropyard --data-dir $(DATA) migrate
	$(BIN)/dropyard --data-dir $(DATA) serve

system-deps:
	bash scripts/system-deps.sh

services:
	bash scripts/services.sh

lint: setup
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -n auto --dist loadgroup -q

test: system-deps services setup lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output

# The two quickstart commands: `make demo` and `make test`. Both set everything up first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint format bench

setup:
	bash scripts/setup.sh

demo: setup
	$(BIN)/edgekit demo

test: setup
	bash scripts/test.sh

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports --no-cache --no-logo && $(BIN)/mypy

format:
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python -m pytest benchmarks --benchmark-only

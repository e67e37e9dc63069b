#!/usr/bin/env bash
# Lint, the import contracts, the types, then the whole test suite (slow and broker tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache --no-logo
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=600 tests "$@"

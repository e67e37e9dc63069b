#!/usr/bin/env bash
# Lint, then the whole test suite (slow and broker tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=600 tests "$@"

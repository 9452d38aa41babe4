#!/bin/sh
# Set up, then run every check CI runs: lint, formatting, strict types, the test suite.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest

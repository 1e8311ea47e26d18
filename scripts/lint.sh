#!/usr/bin/env bash
# Static checks: ruff (style, docstrings, complexity: C901/PLR0915), the import-linter
# architecture contracts in pyproject.toml (layers, no cycles), and mypy on src/.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
echo "== ruff"
.venv/bin/ruff check src tests bench scripts || status=1
echo "== import-linter (architecture contracts)"
.venv/bin/lint-imports || status=1
echo "== mypy"
.venv/bin/mypy || status=1
exit "$status"

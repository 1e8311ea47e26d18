#!/usr/bin/env bash
# Run the static checks and the test suite (installs into ./.venv first if needed). Extra
# arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow tests, or
# `bash scripts/test.sh -m "not slow and not processes"` to skip the multi-process ones locally.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-deps.sh
export HF_HUB_OFFLINE=1
set +e
bash scripts/lint.sh
lint=$?
echo "== docs (generated references up to date; mkdocs build --strict, offline)"
.venv/bin/python scripts/docgen.py --check && NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet \
  --site-dir "$(mktemp -d)"
docs=$?
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
if [ "$lint" -ne 0 ] || [ "$docs" -ne 0 ]; then
  echo "error: static checks or the docs build failed (see above)" >&2
  [ "$code" -eq 0 ] && code=1
fi
exit "$code"

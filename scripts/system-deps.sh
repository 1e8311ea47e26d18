#!/usr/bin/env bash
# System packages the tests need beyond Python: Debian's chromium (real-browser page tests).
# Installs with apt-get when it is missing and we may; otherwise says why those tests will skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "installing chromium (headless browser for the page tests) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: chromium is not installed and cannot be installed here (needs root and apt-get);" \
       "the browser tests will be skipped" >&2
fi

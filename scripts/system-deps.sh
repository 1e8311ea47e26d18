#!/usr/bin/env bash
# System packages the tests need beyond Python: Debian's chromium (real-browser page tests),
# postgresql (the monitor's PostgreSQL store, run as a throwaway cluster on a free loopback port)
# and a Java runtime (the Spark batch-scoring test, on a local Spark session).
# Installs with apt-get what is missing when we may; otherwise says which tests will skip.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "installing ${missing[*]} (for the browser, PostgreSQL and Spark tests) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian's postgresql package starts a cluster service; the tests start their own.
  if command -v service >/dev/null 2>&1; then service postgresql stop >/dev/null 2>&1 || true; fi
else
  echo "note: ${missing[*]} not installed and cannot be installed here (needs root and apt-get);" \
       "the tests that need them will be skipped" >&2
fi

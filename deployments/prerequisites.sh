#!/usr/bin/env bash
# The system packages `make test` needs, checked before anything is installed or run.
# Prints nothing when all are there; else one line naming what is missing and the command that installs it.
# (Override the places looked at with CHROMIUM=path and MLOPS_POSTGRES_BIN=folder.)
set -u
missing=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ -n "${MLOPS_POSTGRES_BIN:-}" ]; then
  [ -x "$MLOPS_POSTGRES_BIN/initdb" ] && [ -x "$MLOPS_POSTGRES_BIN/postgres" ] || missing+=(postgresql)
else
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing system packages for the tests: ${missing[*]}; install them with: apt-get install -y ${missing[*]}"
fi

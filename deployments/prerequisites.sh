#!/usr/bin/env bash
# The system packages `make test` needs, checked before anything is installed or run.
# Prints nothing when all are there; else one line naming what is missing and the command that installs it.
# (Override the places looked at with CHROMIUM=path, MLOPS_POSTGRES_BIN=folder, RSCRIPT=program, WRK=program, LIBGOMP=path.)
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
command -v "${RSCRIPT:-Rscript}" >/dev/null 2>&1 || missing+=(r-base-core)   # the R training example's test
command -v "${WRK:-wrk}" >/dev/null 2>&1 || missing+=(wrk)   # the endpoint's flood test (and benchmarks/online.py)
if [ -n "${LIBGOMP:-}" ]; then   # LightGBM (the classification sample) links OpenMP's runtime
  [ -e "$LIBGOMP" ] || missing+=(libgomp1)
else
  { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q 'libgomp\.so\.1' || missing+=(libgomp1)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing system packages for the tests: ${missing[*]}; install them with: apt-get install -y ${missing[*]}"
fi

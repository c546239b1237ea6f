#!/usr/bin/env bash
# The CI entry point of GitHub Actions and Azure Pipelines: deploy the flows, run one, follow its outcome.
#
#   deployments/ci.sh deploy                      create the work pool if needed; deploy every prefect.yaml deployment
#   deployments/ci.sh run NAME [ARGS ...]         run deployment NAME (e.g. train-register/nightly) and wait;
#                                                 ARGS go to `prefect deployment run` (e.g. --param alpha=0.5)
#
# The exit code follows the flow run: 0 when it ends Completed, 1 when it ends Failed, Crashed or Cancelled
# (or the wait times out), 2 for a usage error. Needs PREFECT_API_URL (and PREFECT_API_KEY for Prefect
# Cloud). With CI_START_WORKER=1 a process worker serves the pool while the script runs, for servers
# with no long-lived worker. CI_TIMEOUT bounds the wait (seconds, default 3600).
set -euo pipefail
cd "$(dirname "$0")/.."

PREFECT="${PREFECT:-.venv/bin/prefect}"
POOL="$(sed -n '/work_pools:/,/work_queue_name/s/^ *name: *//p' prefect.yaml | head -n 1)"

usage() { sed -n '2,13p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
[ -n "${PREFECT_API_URL:-}" ] || { echo "ci.sh: set PREFECT_API_URL (and PREFECT_API_KEY for Prefect Cloud)" >&2; exit 2; }

case "$1" in
  deploy)
    "$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1 || "$PREFECT" work-pool create "$POOL" --type process
    "$PREFECT" --no-prompt deploy --all
    ;;
  run)
    [ $# -ge 2 ] || usage
    name="$2"; shift 2
    if [ "${CI_START_WORKER:-0}" = "1" ]; then
      "$PREFECT" worker start --pool "$POOL" > "${CI_WORKER_LOG:-/dev/null}" 2>&1 &
      worker=$!
      trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null || true' EXIT
    fi
    "$PREFECT" deployment run "$name" "$@" --watch --watch-timeout "${CI_TIMEOUT:-3600}"
    ;;
  *)
    usage
    ;;
esac

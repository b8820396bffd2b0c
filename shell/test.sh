#!/usr/bin/env bash
# The test command: set up everything from nothing (environments, embedded
# model), then run the unit tests and the end-to-end tests.
#   bash shell/test.sh            # all tests (e2e included)
#   bash shell/test.sh --fast     # unit tests only (needs only the harness env)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
if [ "${1:-}" = "--fast" ]; then
  shift
  ensure_setup harness
  exec "$HARNESS_PY" -m pytest -q "$@"
fi
bash "$ROOT/shell/setup.sh" all browser
exec "$HARNESS_PY" -m pytest -q -m "e2e or not e2e" -p no:cacheprovider --durations=10 "$@"

#!/usr/bin/env bash
# Static checks: ruff (rules E, F, I, B; settings in pyproject.toml) over the
# whole checkout, notebook included. CI runs it before the tests.
#   bash shell/lint.sh [ruff arguments, e.g. --fix]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_setup harness
cd "$ROOT"
exec "$HARNESS_PY" -m ruff check . "$@"

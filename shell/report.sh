#!/usr/bin/env bash
# One self-contained HTML report for an experiment (CIs, paired tests, fitted curves, cost).
#   bash shell/report.sh [experiments/x.yaml] [--target 0.85]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_setup harness
exec "$HARNESS_PY" -m lorasweep report "$@"

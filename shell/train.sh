#!/usr/bin/env bash
# Train every unfinished (model x size x seed) run of an experiment.
#   nohup bash shell/train.sh [experiments/x.yaml] [--dry-run] [--set key=value] > train.log 2>&1 &
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_setup harness train model
exec "$HARNESS_PY" -m lorasweep train "$@"

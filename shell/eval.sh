#!/usr/bin/env bash
# Serve each base model with all its adapters (vLLM), score every run, collect results.
#   bash shell/eval.sh [experiments/x.yaml] [--set key=value]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_setup harness serve model
exec "$HARNESS_PY" -m lorasweep eval "$@"

#!/usr/bin/env bash
# Run a benchmark script with lorasweep's harness environment (set up first).
#   bash benchmarks/run.sh eval_throughput.py [--reps 3 ...]
#   bash benchmarks/run.sh train_overhead.py [--reps 3 ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../shell/common.sh"
ensure_setup harness train serve model
script=$1; shift
exec "$HARNESS_PY" "$ROOT/benchmarks/$script" "$@"

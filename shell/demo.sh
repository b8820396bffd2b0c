#!/usr/bin/env bash
# The main job: set up, train, serve + score, run the notebook and write the
# report for an experiment (default: the embedded two-model demo).
#   bash shell/demo.sh [experiments/x.yaml]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$ROOT/shell/setup.sh"
start=$(date +%s)
bash "$ROOT/shell/train.sh" "$@"
bash "$ROOT/shell/eval.sh" "$@"
bash "$ROOT/shell/notebook.sh" "$@"
bash "$ROOT/shell/report.sh" "$@"
echo "demo finished in $(( ($(date +%s) - start) / 60 )) min (after setup)"

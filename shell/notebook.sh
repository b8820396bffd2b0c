#!/usr/bin/env bash
# Execute analysis.ipynb headless for an experiment (figures saved as PNG).
#   bash shell/notebook.sh [experiments/x.yaml]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_setup harness
exec "$HARNESS_PY" -m lorasweep notebook "$@"

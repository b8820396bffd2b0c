#!/usr/bin/env bash
# Open analysis.ipynb in JupyterLab with the harness environment.
#   LORASWEEP_EXPERIMENT=experiments/x.yaml bash shell/lab.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_setup harness
cd "$ROOT"
exec "$LORASWEEP_HOME/envs/harness/bin/jupyter" lab analysis.ipynb "$@"

# Sourced by the other scripts: find the harness Python, set up what is missing.
# The cache home's default is src/lorasweep/infra/tools.py's (any Python can ask it).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${LORASWEEP_PYTHON:-$(command -v python3.11 || command -v python3)}   # builds the environments
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
LORASWEEP_HOME=${LORASWEEP_HOME:-$("$PY" -m lorasweep.infra.tools home)}
LORASWEEP_ROOT=${LORASWEEP_ROOT:-$ROOT}
export LORASWEEP_HOME LORASWEEP_ROOT
HARNESS_PY=$LORASWEEP_HOME/envs/harness/bin/python

# ensure_setup TARGET...: bring those environments up to date (setup.sh only
# rebuilds what is missing or whose pinned requirements changed: seconds otherwise).
ensure_setup() {
  bash "$ROOT/shell/setup.sh" "$@" 2>&1 | grep -v "environment ready" >&2 || true
  for t in "$@"; do
    if [ "$t" != model ] && [ "$t" != browser ] && [ ! -f "$LORASWEEP_HOME/envs/$t/.lorasweep-stamp" ]; then
      echo "setup of the $t environment failed; see the messages above" >&2; exit 1
    fi
  done
}

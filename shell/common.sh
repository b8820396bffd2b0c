# Sourced by the other scripts: find the harness Python, set up what is missing.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LORASWEEP_HOME=${LORASWEEP_HOME:-$HOME/.cache/lorasweep}
export LORASWEEP_HOME LORASWEEP_ROOT=$ROOT
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
HARNESS_PY=$LORASWEEP_HOME/envs/harness/bin/python

# ensure_setup TARGET...: run setup.sh for targets whose stamp is missing.
ensure_setup() {
  local need=()
  for t in "$@"; do
    case $t in
      model) [ -f "$LORASWEEP_HOME/models/gemma-3-270m/lorasweep-build.json" ] || need+=(model) ;;
      *) [ -f "$LORASWEEP_HOME/envs/$t/.lorasweep-stamp" ] || need+=("$t") ;;
    esac
  done
  if [ ${#need[@]} -gt 0 ]; then bash "$ROOT/shell/setup.sh" "${need[@]}"; fi
}

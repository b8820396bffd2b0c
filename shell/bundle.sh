#!/usr/bin/env bash
# Makes an offline install bundle for a GPU server with no internet, on a
# machine that reaches PyPI; then, on the server, `bash shell/setup.sh --bundle DIR`.
#
#   bash shell/bundle.sh OUT [--have have.txt] [--leave-out NAME...] [--piece-mb 60]
#                            [--python-version 3.12] [--serve gpu|cpu] [--no-models]
#
# OUT/             the wheels of the three environments for the target, their locks,
#                  the embedded models' files (src/lorasweep/infra/bundle.py says how)
# OUT.pieces/      the same packed into lorasweep-bundle.tar.000, .001, ... of at most
#                  --piece-mb MB each, with SHA256SUMS; carry these to the server
#
# --have: the server's `python3 -m pip freeze` (of LORASWEEP_PYTHON there): packages it
# already has in a fitting version stay out of the bundle and the environments use its copy.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ $# -ge 1 ] && [ "${1#-}" = "$1" ] || { sed -n 2,14p "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
out=$(realpath -m "$1"); shift
piece_mb=60
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --piece-mb) piece_mb=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
"$PY" -m lorasweep.infra.bundle make "$out" "${args[@]}"
pieces=$out.pieces
rm -rf "$pieces"; mkdir -p "$pieces"
# 1 MB = 10^6 bytes; the wheels are compressed already, so the tar is not
( cd "$out" && tar -cf - . ) | split -b $((piece_mb * 1000000)) -d -a 3 - "$pieces/lorasweep-bundle.tar."
( cd "$pieces" && sha256sum lorasweep-bundle.tar.* > SHA256SUMS )
n=$(ls "$pieces"/lorasweep-bundle.tar.* | wc -l)
printf '%s [bundle] %s pieces of at most %s MB in %s (%s in all)\n' "$(date +%H:%M:%S)" "$n" "$piece_mb" \
  "$pieces" "$(du -sh "$pieces" | cut -f1)" >&2
echo "$pieces"

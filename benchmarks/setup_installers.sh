#!/usr/bin/env bash
# The three environments (harness, train, serve; no models) created from nothing
# by setup.sh with each installer, one after the other on the same machine:
#   pip             LORASWEEP_INSTALLER=pip (pip's own download cache as it is)
#   uv, cold cache  uv with an empty cache of its own (every wheel downloaded)
#   uv, warm cache  uv again, its cache from the run before (a machine that set up once)
#   bash benchmarks/setup_installers.sh [--bundle PIECES] [work folder]
# Each run gets its own empty LORASWEEP_HOME under the work folder (default
# /tmp/lorasweep-setup-bench; removed afterwards); seconds per environment come
# from setup.sh's "ready ... in N s" lines. Writes
# benchmarks/results/setup_installers[_bundle].json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bundle=() suffix=
if [ "${1:-}" = --bundle ]; then bundle=(--bundle "$2"); suffix=_bundle; shift 2; fi
work=${1:-/tmp/lorasweep-setup-bench}
rm -rf "$work"; mkdir -p "$work"
out=$ROOT/benchmarks/results/setup_installers$suffix.json
export UV_CACHE_DIR=$work/uv-cache

one() {   # one NAME INSTALLER: the three environments into a new home, timed
  local name=$1 installer=$2 home=$work/home-$1 t0
  t0=$(date +%s.%N)
  LORASWEEP_HOME=$home LORASWEEP_INSTALLER=$installer \
    bash "$ROOT/shell/setup.sh" "${bundle[@]}" harness train serve 2> "$work/$name.log"
  python3 - "$name" "$installer" "$t0" "$(date +%s.%N)" "$work/$name.log" "$home" >> "$work/runs.jsonl" <<'EOF'
import json, re, subprocess, sys
name, installer, t0, t1, log, home = sys.argv[1:]
text = open(log).read()
envs = {m[0]: int(m[1]) for m in re.findall(r"(\w+) environment ready \(.*?\) in (\d+) s", text)}
size = subprocess.run(["du", "-sb", home + "/envs"], capture_output=True, text=True).stdout.split()[0]
print(json.dumps({"run": name, "installer": installer, "wall_s": round(float(t1) - float(t0), 1),
                  "env_s": envs, "envs_bytes": int(size), "used": "with uv" if " with uv" in text else "with pip"}))
EOF
  tail -1 "$work/runs.jsonl"
  rm -rf "$home"
}

one pip pip
one uv-cold uv
one uv-warm uv
python3 - "$work/runs.jsonl" "$out" <<'EOF'
import json, os, platform, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
json.dump({"machine": f"{cpu}, {os.cpu_count()} cores", "python": platform.python_version(), "runs": runs},
          open(sys.argv[2], "w"), indent=2)
print(sys.argv[2])
EOF
rm -rf "$work"

#!/usr/bin/env bash
# The whole GPU path on a machine with no internet, as a user takes it:
# install from the offline bundle, then the demo with lorasweep's own scripts,
# then the scoring benchmark on the demo's adapters.
#   bash benchmarks/gpu_demo.sh <bundle pieces folder> <log folder> [--set KEY=VALUE ...]
# Each step's log goes to <log folder>/<step>.log and its seconds to times.txt;
# a failing step stops the rest. docs/gpu.md shows what it measured.
#   STEPS          the steps, in order (default: setup train eval report bench)
#   RUNS_PER_GPU   runs trained at once on the GPU (train.runs_per_gpu; default 8:
#                  the demo's models use a few GiB each)
#   BENCH_ARGS     eval_throughput.py's arguments (default: --reps 1)
#   EXP            the experiment (default experiments/demo.yaml)
# Step fullbase: the experiment's finished adapters scored again as experiment
# <name>_fullbase with eval.quantized_base false (QLoRA adapters on the
# full-precision base, beside their scores on the quantized one).
# Steps rescore, rescore2: the scores deleted and eval.sh run again on the same
# machine (a server start with warm compiler caches), with RESCORE_ARGS (and
# RESCORE2_ARGS) added, e.g. "--set eval.extra_server_args=[--enforce-eager]".
# Step importtime: where the serving environment's Python start goes
# (python -X importtime of vLLM's API server module).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pieces=$1; logs=$2; shift 2
mkdir -p "$logs"
cd "$ROOT"
# What comes back from the machine: logs, run folders without weights, results.
collect() {
  tar -czf "$logs/results.tgz.part" --exclude='*.safetensors' --exclude='checkpoint-*' --exclude='*.bin' \
    --exclude='tokenizer.json' -C "$ROOT" "experiments/$exp_name" \
    $(cd "$ROOT" && ls -d "experiments/${exp_name}_fullbase" 2>/dev/null) benchmarks/results docs/benchmarks.md \
    -C "$logs" --exclude=results.tgz --exclude=results.tgz.part . 2>/dev/null
  mv "$logs/results.tgz.part" "$logs/results.tgz"
}
step() {  # name, command...
  local name=$1 t0; shift; t0=$(date +%s)
  echo "$(date +%H:%M:%S) $name: $*" >> "$logs/times.txt"
  "$@" > "$logs/$name.log" 2>&1
  local rc=$?
  echo "$(date +%H:%M:%S) $name: $(( $(date +%s) - t0 )) s, exit $rc" >> "$logs/times.txt"
  collect
  [ $rc -eq 0 ] || { echo "$name failed; see $logs/$name.log" >> "$logs/times.txt"; exit $rc; }
}
exp=${EXP:-experiments/demo.yaml}
exp_name=$(basename "$exp" .yaml)
fullbase() {   # a copy of the trained runs, scoring files left behind, scored on the full-precision base
  rm -rf "experiments/${exp_name}_fullbase"
  cp -r "experiments/$exp_name" "experiments/${exp_name}_fullbase"
  find "experiments/${exp_name}_fullbase" \( -name 'metrics.*.json' -o -name 'result.*.pkl' -o -name 'predictions.*' \
    -o -name 'answers.*' -o -name 'results.*' -o -name '.*.lock' \) -delete
  bash shell/eval.sh "$exp" --set "name=${exp_name}_fullbase" --set eval.quantized_base=false "$@"
}
unscore() {   # every scoring file of the experiment deleted: the next eval.sh scores it all again
  find "experiments/$exp_name" \( -name 'metrics.*.json' -o -name 'result.*.pkl' -o -name 'predictions.*' \
    -o -name 'answers.*' -o -name 'results.*' -o -name '.*.lock' -o -name 'selection*.json' \) -delete
}
rescore() {   # extra args for eval.sh, as one word split on spaces
  local extra; read -r -a extra <<< "$1"; shift
  unscore && bash shell/eval.sh "$exp" "$@" "${extra[@]}"
}
importtime() {   # twice: the second start finds the byte-code the first wrote (if any was missing)
  local py=${LORASWEEP_HOME:-$HOME/.cache/lorasweep}/envs/serve/bin/python t0
  for k in 1 2; do
    t0=$(date +%s%N)
    "$py" -X importtime -c "import vllm.entrypoints.openai.api_server" 2> "$logs/importtime$k.txt"
    echo "import $k: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  done
  sort -t'|' -k2 -n -r "$logs/importtime1.txt" | head -30
}
nvidia-smi -L > "$logs/gpus.txt"
read -r -a bench_args <<< "${BENCH_ARGS:---reps 1}"
for s in ${STEPS:-setup train eval report bench}; do
  case $s in
    setup) step setup bash shell/setup.sh --bundle "$pieces" all ;;
    train) step train bash shell/train.sh "$exp" "$@" --set "train.runs_per_gpu=${RUNS_PER_GPU:-8}" ;;
    eval) step eval bash shell/eval.sh "$exp" "$@" ;;
    fullbase) step fullbase fullbase "$@" ;;
    rescore) step rescore rescore "${RESCORE_ARGS:-}" "$@" ;;
    rescore2) step rescore2 rescore "${RESCORE2_ARGS:-}" "$@" ;;
    importtime) step importtime importtime ;;
    report) step report bash shell/report.sh "$exp" "$@" ;;
    bench) step bench bash benchmarks/run.sh eval_throughput.py "${bench_args[@]}" "$@" ;;
    *) echo "gpu_demo.sh: unknown step '$s'" >&2; exit 2 ;;
  esac
done
echo "$(date +%H:%M:%S) all done" >> "$logs/times.txt"

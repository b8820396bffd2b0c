#!/usr/bin/env bash
# Two Ray nodes on one two-GPU host, wired as two machines would be: a head and
# a worker started as separate `ray start` processes, each offering one GPU
# (its own CUDA_VISIBLE_DEVICES). The demo with two seeds is trained through
# them while the worker node is killed mid-run (its jobs must finish on the
# head), trained again with the local executor, and both are scored: through
# Ray (one base model per node) and locally. The summary compares the two.
#   bash benchmarks/ray_gpu_nodes.sh <bundle pieces folder> <log folder>
#   STEPS       default: setup train_local train_ray eval_ray eval_local summary
#   NODE_GPUS   the head's and the worker's GPU (default "0 1"); "cpu cpu" runs
#               the same steps on a machine without GPUs (one job per node)
#   EXP         the experiment (default experiments/demo.yaml); SEEDS (default [1,2]);
#   RUNS_PER_GPU  runs trained at once on each GPU (default 4)
# Each step's log is <log folder>/<step>.log, its seconds in times.txt; the
# summary is benchmarks/results/ray_gpu_nodes.json (docs/gpu.md shows it).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pieces=$1; logs=$(mkdir -p "$2" && cd "$2" && pwd)
cd "$ROOT"
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled   # a cluster on this host's loopback
exp=${EXP:-experiments/demo.yaml}
read -r head_gpu worker_gpu <<< "${NODE_GPUS:-0 1}"
# 4 runs at once per GPU: the 16 runs take two waves on each node, so the worker
# finishes runs before it is killed in its second wave
common=(--set "seeds=${SEEDS:-[1,2]}" --set "train.runs_per_gpu=${RUNS_PER_GPU:-4}")
ray_exec=(--set executor=ray --set executor.address=127.0.0.1:6379)
home=${LORASWEEP_HOME:-$HOME/.cache/lorasweep}
py=$home/envs/harness/bin/python
helper() { PYTHONPATH="$ROOT/src" "$py" benchmarks/ray_gpu_nodes.py "$@"; }

node() {   # head|worker, gpu: one `ray start`, its GPU alone visible to it
  local role=$1 gpu=$2 args
  args=(--node-ip-address=127.0.0.1 --disable-usage-stats "--resources={\"node_$role\": 1}")
  if [ "$gpu" = cpu ]; then args+=(--num-gpus=0 --num-cpus=1); else args+=(--num-gpus=1); fi
  if [ "$role" = head ]; then
    args+=(--head --port=6379 --include-dashboard=false --temp-dir=/tmp/lsray)
  else
    args+=(--address=127.0.0.1:6379)
  fi
  CUDA_VISIBLE_DEVICES=$([ "$gpu" = cpu ] && echo "" || echo "$gpu") "$home/envs/harness/bin/ray" start "${args[@]}"
}
cluster() {   # step: a fresh head and worker; nodes.<step>.json says which raylet and Ray node is which
  "$home/envs/harness/bin/ray" stop --force >/dev/null 2>&1
  helper raylets > "$logs/raylets.before"
  node head "$head_gpu" || return 1
  helper raylets > "$logs/raylets.head"
  node worker "$worker_gpu" || return 1
  helper nodes "$logs" "$head_gpu" "$worker_gpu" "$1"
}
train_ray() {   # the worker node dies once it finished a run and another of its runs logged steps
  cluster train_ray || return 1
  helper kill-worker "$logs" "$(helper runs-dir "$exp")" > "$logs/killer.log" 2>&1 &
  local killer=$!
  bash shell/train.sh "$exp" --set name=demo_ray "${common[@]}" "${ray_exec[@]}"
  local rc=$?
  kill "$killer" 2>/dev/null; wait "$killer"   # (it stops by itself once it has killed the node)
  return $rc
}
eval_ray() { cluster eval_ray && bash shell/eval.sh "$exp" --set name=demo_ray "${common[@]}" "${ray_exec[@]}"; }
collect() {
  tar -czf "$logs/results.tgz.part" --exclude='*.safetensors' --exclude='checkpoint-*' --exclude='*.bin' \
    --exclude='tokenizer.json' --exclude='predictions.*' --exclude='answers.*' --exclude='result.*.pkl' \
    $(ls -d experiments/demo_ray experiments/demo_local 2>/dev/null) benchmarks/results \
    -C "$logs" --exclude='results.tgz*' . 2>/dev/null
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
for s in ${STEPS:-setup train_local train_ray eval_ray eval_local summary}; do
  case $s in
    setup) step setup bash shell/setup.sh --bundle "$pieces" all ;;
    train_local) step train_local bash shell/train.sh "$exp" --set name=demo_local "${common[@]}" ;;
    train_ray) step train_ray train_ray ;;
    eval_ray) step eval_ray eval_ray ;;
    eval_local) step eval_local bash shell/eval.sh "$exp" --set name=demo_local "${common[@]}" ;;
    summary) step summary helper summary "$logs" "$exp" "${SEEDS:-[1,2]}" ;;
    *) echo "ray_gpu_nodes.sh: unknown step '$s'" >&2; exit 2 ;;
  esac
done
"$home/envs/harness/bin/ray" stop --force >/dev/null 2>&1
echo "$(date +%H:%M:%S) all done" >> "$logs/times.txt"

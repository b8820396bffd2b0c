#!/usr/bin/env bash
# Prove lorasweep's GPU training path on a machine with NVIDIA GPUs and no
# network: LLaMA-Factory LoRA on a tiny Gemma 3 through `lorasweep train`,
# a grid of 4 runs first on one GPU (sequential), then one run per GPU, and
# (GRIDS="... ray", with ray importable) one run per GPU as Ray tasks.
#   [GRIDS="sequential parallel ray"] bash benchmarks/gpu_grid.sh <tokenizer-dir> <out-dir>
# Needs llamafactory + lorasweep's Python dependencies importable (PYTHONPATH).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOK=$1; OUT=$2
WORK=$(mktemp -d)
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" DISABLE_VERSION_CHECK=1 PYTHONUNBUFFERED=1
printf '#!/bin/sh\nexec python3 -m llamafactory.cli "$@"\n' > "$WORK/llamafactory-cli"; chmod +x "$WORK/llamafactory-cli"
python3 "$ROOT/benchmarks/make_tiny_gemma.py" "$TOK" "$WORK/tiny-gemma" | tee "$OUT/model.txt"
nvidia-smi -L | tee "$OUT/gpus.txt"
ngpu=$(nvidia-smi -L | grep -c GPU)
run_grid() {  # name, CUDA_VISIBLE_DEVICES, executor
  local root=$WORK/$1; mkdir -p "$root/experiments"
  cat > "$root/experiments/gpu.yaml" <<YAML
name: gpu
task:
  type: relation_classification
  labels: [夫妻, 父母, 兄弟姐妹, 师生, 同学, 好友, 上下级, 合作, 祖孙, 不确定]
  prompt: "判断句中两人的关系，从以下标签中选一个：{labels}\n句子：{text}\n人物：{entity1}、{entity2}\n关系："
data: {source: "generate:people_relations", generate_size: 2400, test_size: 100}
models: [{name: tiny-gemma, path: $WORK/tiny-gemma, template: gemma}]
train_sizes: [500, 1000, 1500, 2000]
seeds: [1]
train:
  llamafactory_cli: $WORK/llamafactory-cli
  args: {num_train_epochs: 2, bf16: true, per_device_train_batch_size: 16, cutoff_len: 128, logging_steps: 20}
executor: ${3:-local}
YAML
  local t0; t0=$(date +%s.%N)
  LORASWEEP_ROOT=$root CUDA_VISIBLE_DEVICES=$2 python3 -m lorasweep train "$root/experiments/gpu.yaml" 2>&1 | tee "$OUT/train_$1.log" | grep -E "train:|done in|FAILED|summary" || true
  local t1; t1=$(date +%s.%N)
  python3 - "$root" "$1" "$2" "$t0" "$t1" <<'PY' | tee -a "$OUT/results.jsonl"
import json, pathlib, sys
root, name, gpus, t0, t1 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
runs = [json.loads(p.read_text()) for p in sorted(pathlib.Path(root).glob("experiments/gpu/runs/*/*/*/train_result.json"))]
print(json.dumps({"grid": name, "CUDA_VISIBLE_DEVICES": gpus, "runs": len(runs), "wall_s": round(t1 - t0, 1),
                  "per_run": [{k: r[k] for k in ("run_id", "train_wall_s", "train_samples_per_s", "train_loss", "gpus")} for r in runs]}))
PY
  cp "$root/experiments/gpu/runs/tiny-gemma/n500/seed1/train.log" "$OUT/lf_$1_n500.log" 2>/dev/null || true
}
all=$(seq -s, 0 $((ngpu - 1)))
for grid in ${GRIDS:-sequential parallel}; do
  case $grid in
    sequential) run_grid sequential 0 ;;
    parallel) [ "$ngpu" -ge 2 ] && run_grid parallel "$all" ;;
    ray) run_grid ray "$all" ray ;;
  esac
done

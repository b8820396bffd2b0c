"""Training speed: a bare `llamafactory-cli train` on a run's resolved YAML
against lorasweep's way of training the same YAML (envscripts/fast_loss.py:
the output layer only where the loss needs it), with the demo's settings
(Gemma 3 270M, the demo task and prompt, batch 8, cutoff 160, LoRA rank 8 on
all linear layers), interleaved, after an untimed warm-up of each.

    bash benchmarks/run.sh train_speed.py                  # 64 examples x 1 epoch, 3 reps
    bash benchmarks/run.sh train_speed.py --option-reps 1  # + the next levers, each on top of lorasweep's way
    python benchmarks/train_speed.py --set KEY=VALUE ...   # e.g. on a GPU: another model path, bf16, a bigger size

Samples/s are the trainer's own (`train_samples_per_second`: the training
loop, model loading excluded); medians over the repetitions. The losses of
every logged step are compared between the two ways of each repetition
(`max_rel_loss_diff`). Writes benchmarks/results/train_speed.json and appends
a section to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

log = logging.getLogger("train_speed")

# Levers tried on top of lorasweep's way: LLaMA-Factory keys -> values. (No
# gradient checkpointing, measured here at 1.35x, is part of lorasweep's way on
# a CPU since: there it measures nothing new; on a GPU it is the lever.)
OPTIONS = {
    "length-grouped batches": {"train_sampling_strategy": "group_by_length"},
    "bf16 compute": {"bf16": True, "use_cpu": True},   # (use_cpu: LLaMA-Factory refuses bf16 on a CPU otherwise)
    "no gradient checkpointing": {"disable_gradient_checkpointing": True},
}


def demo_run(root: Path, size: int, set_args: list[str]):
    """The demo experiment cut to one run of `size` examples, 1 epoch, a loss logged every step."""
    from lorasweep.config import load_config
    from lorasweep.data.splits import prepare_data
    from lorasweep.plan import train_runs

    demo = yaml.safe_load((ROOT / "experiments" / "demo.yaml").read_text(encoding="utf-8"))
    demo.update({"name": "speed", "train_sizes": [size], "seeds": [1]})
    demo["data"].update({"generate_size": max(400, size + 200), "test_size": 50})
    demo["train"]["args"].update({"num_train_epochs": 1, "logging_steps": 1})
    demo["eval"] = {"baselines": []}
    (root / "experiments").mkdir(parents=True, exist_ok=True)
    path = root / "experiments" / "speed.yaml"
    path.write_text(yaml.safe_dump(demo, allow_unicode=True), encoding="utf-8")
    os.environ["LORASWEEP_ROOT"] = str(root)
    cfg = load_config(path, set_args=set_args)
    prepare_data(cfg)
    return cfg, train_runs(cfg)[0]


def train(argv_head: list[str], train_yaml: Path, out: Path, extra: dict | None = None) -> dict:
    """One training of `train_yaml` (plus `extra` keys) into `out`; its timings and per-step losses."""
    from lorasweep.infra.tools import child_env

    args = yaml.safe_load(train_yaml.read_text(encoding="utf-8"))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    args["output_dir"] = str(out / "adapter")
    args.update(extra or {})
    path = out / "train.yaml"
    path.write_text(yaml.safe_dump(args, allow_unicode=True), encoding="utf-8")
    t0 = time.time()
    with open(out / "train.log", "w") as fh:
        rc = subprocess.run([*argv_head, "train", str(path)], env=child_env(), cwd=out, stdout=fh,
                            stderr=subprocess.STDOUT).returncode
    wall = time.time() - t0
    if rc != 0:
        raise RuntimeError(f"training failed ({rc}); see {out / 'train.log'}")
    res = json.loads((out / "adapter" / "train_results.json").read_text())
    steps = [json.loads(line) for line in (out / "adapter" / "trainer_log.jsonl").read_text().splitlines()]
    marker = "lorasweep: fast loss"   # (after tqdm's carriage returns on the same line)
    fast = [marker + line.split(marker, 1)[1] for line in (out / "train.log").read_text(errors="replace").splitlines()
            if marker in line]
    return {"wall_s": round(wall, 2), "train_runtime_s": res.get("train_runtime"),
            "samples_per_s": res.get("train_samples_per_second"), "final_loss": res.get("train_loss"),
            "step_losses": [s["loss"] for s in steps if "loss" in s], "fast_loss_line": fast[0] if fast else None}


def rel_diff(a: list[float], b: list[float]) -> float:
    if len(a) != len(b) or not a:
        raise RuntimeError(f"different numbers of logged steps: {len(a)} vs {len(b)}")
    return max(abs(x - y) / abs(x) for x, y in zip(a, b, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64, help="training examples (1 epoch)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--option-reps", type=int, default=0, help="repetitions of each lever in OPTIONS (0: none)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="experiment overrides, e.g. train.args.bf16=true or train.llamafactory_cli=PATH")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "train_speed.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from eval_throughput import append_section, machine

    from lorasweep.infra import tools
    from lorasweep.train.train import resolved_train_yaml, trainer_argv

    root = Path(tempfile.mkdtemp(prefix="lorasweep-speed-"))
    cfg, run = demo_run(root, args.size, args.set)
    run.folder().mkdir(parents=True, exist_ok=True)
    run.train_yaml.write_text(yaml.safe_dump(resolved_train_yaml(cfg, run), allow_unicode=True), encoding="utf-8")
    ways = {"bare": tools.llamafactory_cli(cfg), "lorasweep": trainer_argv(cfg, run)[:-2]}
    if ways["lorasweep"] == ways["bare"]:
        raise SystemExit("lorasweep's way is llamafactory-cli here (no training python or train.fast_loss off)")
    log.info("warm-up: one untimed training each way (file caches, LLaMA-Factory's dataset cache)")
    for name, head in ways.items():
        train(head, run.train_yaml, root / "warmup" / name)
    reps = []
    for i in range(args.reps):
        order = list(ways) if i % 2 == 0 else list(reversed(ways))   # alternate which goes first
        rep = {name: train(ways[name], run.train_yaml, root / f"rep{i}" / name) for name in order}
        rep["rel_loss_diff"] = rel_diff(rep["bare"]["step_losses"], rep["lorasweep"]["step_losses"])
        log.info("rep %d: bare %.3f samples/s, lorasweep %.3f samples/s, max relative loss difference %.2e",
                 i + 1, rep["bare"]["samples_per_s"], rep["lorasweep"]["samples_per_s"], rep["rel_loss_diff"])
        reps.append(rep)
    bare = statistics.median(r["bare"]["samples_per_s"] for r in reps)
    ours = statistics.median(r["lorasweep"]["samples_per_s"] for r in reps)
    options = {}
    for name, extra in OPTIONS.items():
        if tools.has_nvidia_gpu():
            extra = {k: v for k, v in extra.items() if k != "use_cpu"}
        try:
            runs = [train(ways["lorasweep"], run.train_yaml, root / "option" / name.replace(" ", "_"), extra)
                    for _ in range(args.option_reps)]
        except RuntimeError as e:   # a lever this machine cannot pull: say so, keep the rest
            options[name] = {"keys": extra, "error": str(e)}
            log.warning("option %s: %s", name, e)
            continue
        if runs:
            sps = statistics.median(r["samples_per_s"] for r in runs)
            options[name] = {"keys": extra, "samples_per_s": sps, "vs_lorasweep": sps / ours,
                             "final_loss": statistics.median(r["final_loss"] for r in runs), "runs": runs}
            log.info("option %s: %.3f samples/s (%.2fx lorasweep's way)", name, sps, sps / ours)
    report = {
        "bare_samples_per_s": round(bare, 4),
        "lorasweep_samples_per_s": round(ours, 4),
        "speedup": round(ours / bare, 3),
        "max_rel_loss_diff": max(r["rel_loss_diff"] for r in reps),
        "bare_wall_s_median": statistics.median(r["bare"]["wall_s"] for r in reps),
        "lorasweep_wall_s_median": statistics.median(r["lorasweep"]["wall_s"] for r in reps),
        "fast_loss_line": reps[0]["lorasweep"]["fast_loss_line"],
        "settings": {"size": args.size, "epochs": 1, "reps": args.reps, "warmup": 1, "set": args.set,
                     "train_args": cfg.train.resolved_args()},
        "per_rep": reps, "options": options, "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    where = report["machine"].get("gpu_name") or f"{report['machine']['cores']} cores, {report['machine']['cpu']}"
    lines = [f"\n## Training speed ({report['measured_at']}, {where})\n",
             f"`bash benchmarks/run.sh train_speed.py --size {args.size} --reps {args.reps} "
             f"--option-reps {args.option_reps}"
             + "".join(f" --set '{x}'" for x in args.set) + "`: "
             f"the demo's settings, {args.size} examples x 1 epoch, {args.reps} repetitions after a warm-up, "
             "medians of the trainer's samples/s.\n",
             "| way | samples/s (median) | per repetition | wall s (median, with model loading) |",
             "| --- | --- | --- | --- |"]
    for name in ways:
        per = ", ".join(f"{r[name]['samples_per_s']:.3f}" for r in reps)
        wall = statistics.median(r[name]["wall_s"] for r in reps)
        lines.append(f"| {name} | {report[f'{name}_samples_per_s']:.3f} | {per} | {wall:.1f} |")
    target = " (target on the 2-core CPU machine: >= 2.5x)" if not report["machine"].get("gpu_name") else ""
    lines.append(f"\n- speed-up: **{report['speedup']:.2f}x**{target}; largest relative difference "
                 f"of a logged step's loss between the two ways: {report['max_rel_loss_diff']:.1e}")
    for name, o in options.items():
        if "error" in o:
            lines.append(f"- lever '{name}' ({o['keys']}): did not run: {o['error']}")
            continue
        lines.append(f"- lever '{name}' ({o['keys']}) on top of lorasweep's way: {o['samples_per_s']:.3f} samples/s "
                     f"({o['vs_lorasweep']:.2f}x), final loss {o['final_loss']:.4f} "
                     f"(lorasweep's way: {statistics.median(r['lorasweep']['final_loss'] for r in reps):.4f})")
    append_section(Path(args.doc), lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What lorasweep costs on top of LLaMA-Factory when training: the same small
LoRA run (embedded model, demo task) through `bash shell/train.sh` and through
a bare `llamafactory-cli train` call on the identical resolved YAML,
interleaved, `--reps` times. Optionally also measures training options on the
bare call (dataloader workers, sequence packing) against the default, with
their final loss so a changed result shows.

    bash benchmarks/run.sh train_overhead.py                 # 128 examples, 3 reps

Writes benchmarks/results/train_overhead.json (overhead_fraction = (train.sh
- bare) / train.sh wall time, medians) and appends to docs/benchmarks.md.
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

log = logging.getLogger("train_overhead")

OPTIONS = {
    "dataloader_num_workers=2": {"dataloader_num_workers": 2},
    "packing=true": {"packing": True},
}


def experiment(root: Path, size: int) -> Path:
    demo = yaml.safe_load((ROOT / "experiments" / "demo.yaml").read_text(encoding="utf-8"))
    demo.update({"name": "overhead", "train_sizes": [size], "seeds": [1]})
    demo["data"].update({"generate_size": max(400, size + 200), "test_size": 50})
    demo["train"]["args"]["num_train_epochs"] = 1
    demo["train"]["fast_loss"] = False   # the harness's own cost: both ways run llamafactory-cli as it is
    demo["eval"] = {"baselines": []}
    (root / "experiments").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    path = root / "experiments" / "overhead.yaml"
    path.write_text(yaml.safe_dump(demo, allow_unicode=True), encoding="utf-8")
    return path


def via_train_sh(exp: Path, root: Path, run_dir: Path) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {**os.environ, "LORASWEEP_ROOT": str(root)}
    t0 = time.time()
    p = subprocess.run(["bash", str(ROOT / "shell" / "train.sh"), str(exp)], env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError(f"train.sh failed ({p.returncode}):\n{p.stderr[-3000:]}")
    res = json.loads((run_dir / "train_result.json").read_text())
    # outside_trainer_s: train.sh's time around the llamafactory-cli process it starts
    return {"wall_s": wall, "trainer_wall_s": res["train_wall_s"], "outside_trainer_s": wall - res["train_wall_s"],
            "train_runtime_s": res["train_runtime_s"], "samples_per_s": res["train_samples_per_s"],
            "loss": res["train_loss"]}


def bare(cli: str, train_yaml: Path, out: Path, extra: dict | None = None) -> dict:
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
        rc = subprocess.run([cli, "train", str(path)], env=child_env(), cwd=out, stdout=fh,
                            stderr=subprocess.STDOUT).returncode
    wall = time.time() - t0
    if rc != 0:
        raise RuntimeError(f"llamafactory-cli failed ({rc}); see {out / 'train.log'}")
    res = json.loads((out / "adapter" / "train_results.json").read_text())
    return {"wall_s": wall, "train_runtime_s": res.get("train_runtime"),
            "samples_per_s": res.get("train_samples_per_second"), "loss": res.get("train_loss")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128, help="training examples (1 epoch)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--option-reps", type=int, default=1, help="repetitions of each training option (0: none)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed train.sh runs first (data generation, file caches), not counted")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "train_overhead.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from eval_throughput import machine

    from lorasweep.config import load_config
    from lorasweep.infra.tools import llamafactory_cli
    from lorasweep.plan import train_runs

    root = Path(tempfile.mkdtemp(prefix="lorasweep-overhead-"))
    exp = experiment(root, args.size)
    os.environ["LORASWEEP_ROOT"] = str(root)
    cfg = load_config(exp)
    run_dir = train_runs(cfg)[0].folder()
    cli = llamafactory_cli(cfg)[0]
    for i in range(args.warmup):
        w = via_train_sh(exp, root, run_dir)
        log.info("warm-up %d: train.sh %.1f s (not counted)", i + 1, w["wall_s"])
    rows = []
    for rep in range(1, args.reps + 1):
        # alternate which goes first, so neither always meets warmer caches
        if rep % 2:
            a = via_train_sh(exp, root, run_dir)
            b = bare(cli, run_dir / "train.yaml", root / "bare")
        else:
            b = bare(cli, run_dir / "train.yaml", root / "bare")
            a = via_train_sh(exp, root, run_dir)
        log.info("rep %d: train.sh %.1f s (%.2f samples/s, loss %.4f)", rep, a["wall_s"], a["samples_per_s"], a["loss"])
        log.info("rep %d: bare llamafactory-cli %.1f s (%.2f samples/s, loss %.4f)", rep, b["wall_s"],
                 b["samples_per_s"], b["loss"])
        rows.append({"train_sh": a, "bare": b, "overhead_fraction": (a["wall_s"] - b["wall_s"]) / a["wall_s"]})
    options = {}
    for name, extra in OPTIONS.items():
        for _ in range(args.option_reps):
            r = bare(cli, run_dir / "train.yaml", root / "option", extra)
            options.setdefault(name, []).append(r)
            log.info("option %s: %.1f s (%.2f samples/s, loss %.4f)", name, r["wall_s"], r["samples_per_s"] or 0,
                     r["loss"] or float("nan"))
    shutil.rmtree(root, ignore_errors=True)
    med = lambda key, field: statistics.median(r[key][field] for r in rows)  # noqa: E731
    t_sh, t_bare = med("train_sh", "wall_s"), med("bare", "wall_s")
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
        "command": "bash benchmarks/run.sh train_overhead.py " + " ".join(sys.argv[1:]),
        "examples": args.size, "epochs": 1, "repetitions": args.reps, "warmup": args.warmup,
        "train_sh_s": round(t_sh, 1), "bare_s": round(t_bare, 1),
        "train_sh_samples_per_s": round(med("train_sh", "samples_per_s"), 3),
        "bare_samples_per_s": round(med("bare", "samples_per_s"), 3),
        "overhead_fraction": round((t_sh - t_bare) / t_sh, 4),
        "outside_trainer_s": round(med("train_sh", "outside_trainer_s"), 2),
        "per_rep": rows,
        "same_loss": all(abs(r["train_sh"]["loss"] - r["bare"]["loss"]) < 1e-6 for r in rows),
        "options": {k: {"wall_s": round(statistics.median(x["wall_s"] for x in v), 1),
                        "samples_per_s": statistics.median((x["samples_per_s"] or 0) for x in v),
                        "loss": v[0]["loss"]} for k, v in options.items()},
    }
    write(report, Path(args.json), Path(args.doc))
    return 0


def write(report: dict, json_path: Path, doc: Path) -> None:
    from eval_throughput import append_section

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    base_loss = statistics.median(r["bare"]["loss"] for r in report["per_rep"])
    lines = [f"\n## Training overhead, {report['date']}\n",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, "
             f"{'NVIDIA GPU' if m['gpu'] else 'no GPU'}.  ",
             f"One LoRA run of the embedded model on {report['examples']} demo examples, 1 epoch; medians of "
             f"{report['repetitions']} repetitions, interleaved (which goes first alternates), after "
             f"{report['warmup']} untimed warm-up run(s) of train.sh.\n",
             f"    {report['command']}\n",
             "| way | median wall time | samples/s (LLaMA-Factory) | all repetitions (s) |", "|---|---|---|---|",
             f"| `bash shell/train.sh` | {report['train_sh_s']:.1f} s | {report['train_sh_samples_per_s']:.3f} | "
             + ", ".join(f"{r['train_sh']['wall_s']:.1f}" for r in report["per_rep"]) + " |",
             f"| bare `llamafactory-cli train` (same YAML) | {report['bare_s']:.1f} s | "
             f"{report['bare_samples_per_s']:.3f} | "
             + ", ".join(f"{r['bare']['wall_s']:.1f}" for r in report["per_rep"])
             + " |", "",
             f"- harness overhead: **{100 * report['overhead_fraction']:.1f}%** of train.sh's wall time "
             "(target <= 3%); "
             f"same final loss both ways: {report['same_loss']}",
             f"- time train.sh spends outside the llamafactory-cli process (setup check, harness start, preflight, "
             f"data, result files): {report['outside_trainer_s']:.1f} s (median)"]
    if report["options"]:
        lines += ["", "Training options on the bare call (default: dataloader_num_workers=0, no packing; final "
                      f"loss {base_loss:.4f}):", "",
                  "| option | wall time | samples/s | final loss |", "|---|---|---|---|"]
        for k, v in report["options"].items():
            lines.append(f"| {k} | {v['wall_s']:.1f} s | {v['samples_per_s']:.3f} | {v['loss']:.4f} |")
    append_section(doc, lines)


if __name__ == "__main__":
    sys.exit(main())

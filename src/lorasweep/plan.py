"""The grid: one RunSpec per model x prompt x variant x train size x seed, plus one
zero-shot run per model and prompt (train size 0), plus the classical
baselines. Ids and folders follow from the coordinates alone (runspec.py).
"""
from __future__ import annotations

from .config import ExperimentConfig
from .runspec import BASELINE_MODELS, RunSpec
from .train.budget import budget, kept_epochs


def train_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Training runs, smallest sizes first so early results arrive early."""
    return [RunSpec(cfg.name, m.name, size, seed, prompt, variant)
            for size in cfg.train_sizes for m in cfg.models for prompt in cfg.task.prompt_names()
            for variant in cfg.variant_names() for seed in cfg.seeds]


def checkpoint_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """The adapters kept after train.save_epochs of each training run: points of its epoch curve."""
    return [r.checkpoint(e) for r in train_runs(cfg) for e in kept_epochs(cfg, r)]


def base_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    if not cfg.eval.include_base:
        return []
    return [RunSpec(cfg.name, m.name, 0, None, prompt) for m in cfg.models for prompt in cfg.task.prompt_names()]


def eval_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Everything a server scores: the zero-shot base runs (if enabled), all training runs and their kept
    checkpoints."""
    return base_runs(cfg) + train_runs(cfg) + checkpoint_runs(cfg)


def baseline_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Classical classifiers trained on the same subsets (fitted and scored by eval, in seconds)."""
    return [RunSpec(cfg.name, BASELINE_MODELS[b], size, seed)
            for b in cfg.eval.baselines for size in cfg.train_sizes for seed in cfg.seeds]


def validation_text(cfg: ExperimentConfig) -> str:
    """What data.val_size and eval.select do, in one line (plan and check say it)."""
    v = cfg.data.val_size
    if cfg.eval.select == "val":
        return (f"validation: {v} examples held out (data.val_size), apart from the test set and every training "
                f"subset; eval.select: val: each trained run reports the test score of its checkpoint (kept after "
                f"epochs {cfg.train.save_epochs}, or final) best on them, so a point at n uses n + {v} labels")
    return (f"validation: {v} examples held out (data.val_size) and not used (eval.select: last: each run reports "
            "its final adapter)")


def plan_text(cfg: ExperimentConfig) -> str:
    """What `lorasweep plan` / `train.sh --dry-run` print: one line per run with its state."""
    runs = train_runs(cfg)
    prompts = cfg.task.prompt_names()
    axis = f" x {len(prompts)} prompt(s)" if prompts != [None] else ""
    if cfg.variants:
        axis += f" x {len(cfg.variants)} variant(s)"
    lines = [f"experiment {cfg.name}: {len(cfg.models)} model(s){axis} x {len(cfg.train_sizes)} size(s) "
             f"x {len(cfg.seeds)} seed(s) = {len(runs)} training run(s)"]
    states = [r.state() for r in runs]
    for r, state in zip(runs, states, strict=False):
        lines.append(f"  {r.run_id:40s} {state:9s} {budget(cfg, r).text():24s} {r.folder()}")
    todo = sum(s != "trained" for s in states)
    from .train.executor import where_jobs_run

    try:
        where = where_jobs_run(cfg, cfg.train.gpus_per_run, "train.gpus_per_run", cfg.train.runs_per_gpu)
    except ValueError as e:      # more GPUs per run than are visible
        where = f"cannot start: {e}"
    lines.append(f"  {todo} to train, {len(runs) - todo} already trained; executor: {cfg.executor.kind}, {where}")
    if cfg.eval.include_base:
        lines.append(f"  + {len(base_runs(cfg))} zero-shot base run(s) scored by eval")
    if cfg.train.save_epochs:
        lines.append(f"  + {len(checkpoint_runs(cfg))} checkpoint(s) kept after epochs {cfg.train.save_epochs} and "
                     "scored by eval (the epoch curve)")
    if cfg.data.val_size:
        lines.append(f"  {validation_text(cfg)}")
    if cfg.eval.baselines:
        lines.append(f"  + {len(baseline_runs(cfg))} baseline run(s) ({', '.join(cfg.eval.baselines)}) fitted by eval")
    lines.append(f"  decoding: {', '.join(cfg.eval.decodings)}")
    lines.append(f"  budget: {cfg.budget_text()}")
    for name, keys in cfg.variants.items():
        shown = ", ".join(f"{k}={v}" for k, v in keys.items()) or "the settings as they are"
        lines.append(f"  variant {name}: {shown}")
    return "\n".join(lines)

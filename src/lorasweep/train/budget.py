"""How long a run trains: train.budget turned into each run's epochs and
optimizer steps, and the run's LLaMA-Factory keys with the budget applied.
A model may have its own (models[].budget), else train.budget holds.

With the same epochs for every size a small training set gets few optimizer
steps (the demo's 50 examples, batch 8: 7 steps an epoch) where a large one
gets many (500: 63): the left end of a learning curve then measures
under-training. `min_steps` raises the epochs of the small sets until every
run takes at least N steps; `steps` gives every size the same N steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import ExperimentConfig, train_arg
from ..runspec import RunSpec


@dataclass(frozen=True)
class Budget:
    """How long a run trains, as the trainer will count it."""
    epochs: float
    steps: int             # optimizer steps in all
    steps_per_epoch: int

    def text(self) -> str:
        return f"{self.epochs:g} ep x {self.steps_per_epoch} = {self.steps} steps"


def steps_per_epoch(size: int, args: dict, gpus: int) -> int:
    """Optimizer steps in one pass over `size` examples: batches of
    per_device_train_batch_size on each of `gpus` data-parallel GPUs, then
    gradient_accumulation_steps batches per step (the trainer rounds both up).
    E.g. 50 examples, batch 8, 1 GPU, accumulation 1: ceil(50 / 8) = 7 steps."""
    batches = math.ceil(size / (int(train_arg(args, "per_device_train_batch_size")) * max(1, gpus)))
    return max(1, math.ceil(batches / int(train_arg(args, "gradient_accumulation_steps"))))


def budget(cfg: ExperimentConfig, run: RunSpec, args: dict | None = None) -> Budget:
    """The run's epochs and steps under train.budget (args: the run's keys before the budget)."""
    args = cfg.train_args(run.model, run.variant) if args is None else args
    try:
        spe = steps_per_epoch(run.size, args, cfg.train.gpus_per_run)
        epochs = float(train_arg(args, "num_train_epochs"))
    except (TypeError, ValueError):    # a batch size or epochs of the wrong type: check reports it
        return Budget(0.0, 0, 0)
    b = cfg.budget(run.model)
    if b.kind == "steps":
        return Budget(round(b.steps / spe, 4), b.steps, spe)
    if b.kind == "min_steps" and epochs * spe < b.steps:
        epochs = float(math.ceil(b.steps / spe))   # whole epochs: every example seen as often
    return Budget(epochs, math.ceil(epochs * spe), spe)


def kept_epochs(cfg: ExperimentConfig, run: RunSpec) -> list[int]:
    """The train.save_epochs a run reaches before its last epoch (its final adapter is the last).
    None for a full/freeze-tuned run: each would be another copy of the whole model."""
    if cfg.trains_whole_model(run.model, run.variant):
        return []
    b = budget(cfg, run)
    return [e for e in cfg.train.save_epochs if e * b.steps_per_epoch < b.steps]


def run_keys(cfg: ExperimentConfig, run: RunSpec) -> dict:
    """The run's LLaMA-Factory keys (defaults < train.args < models[].train_args < the variant)
    with the budget applied: num_train_epochs, or max_steps for a budget of steps."""
    args = dict(cfg.train_args(run.model, run.variant))
    b = budget(cfg, run, args)
    if cfg.train.save_epochs and not cfg.trains_whole_model(run.model, run.variant):
        # an adapter after every epoch, weights only (no optimizer state); train keeps the ones asked for
        args.update(save_strategy="epoch", save_only_model=True)
    kind = cfg.budget(run.model).kind
    if kind == "steps":
        args["max_steps"] = b.steps
    elif kind == "min_steps" and b.steps and b.epochs != float(train_arg(args, "num_train_epochs")):
        # raised; a run already over the minimum keeps its keys as they are (b.steps is 0 when the
        # epochs or batch size are of the wrong type: the keys stay as written for check to report)
        args["num_train_epochs"] = b.epochs
    return args

"""The grid: one RunSpec per model x train size x seed, plus one zero-shot run
per model (train size 0). Ids and folders follow from the coordinates alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import ExperimentConfig
from .paths import experiment_dir
from .splits import dataset_name


@dataclass(frozen=True)
class RunSpec:
    experiment: str
    model: str
    size: int            # 0 = the base model, zero-shot
    seed: int | None     # None for zero-shot runs

    @property
    def is_base(self) -> bool:
        return self.size == 0

    @property
    def run_id(self) -> str:
        tail = "base" if self.is_base else f"seed{self.seed}"
        return f"{self.model}__n{self.size}__{tail}"

    @property
    def dataset(self) -> str:
        assert not self.is_base
        return dataset_name(self.experiment, self.size, self.seed)

    def folder(self, root: Path | None = None) -> Path:
        base = root or experiment_dir(self.experiment)
        tail = "base" if self.is_base else f"seed{self.seed}"
        return base / "runs" / self.model / f"n{self.size}" / tail


def train_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Training runs, smallest sizes first so early results arrive early."""
    return [RunSpec(cfg.name, m.name, size, seed)
            for size in cfg.train_sizes for m in cfg.models for seed in cfg.seeds]


def eval_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Everything scored: the zero-shot base runs (if enabled) and all training runs."""
    base = [RunSpec(cfg.name, m.name, 0, None) for m in cfg.models] if cfg.eval.include_base else []
    return base + train_runs(cfg)


BASELINE_MODELS = {"tfidf": "baseline-tfidf-logreg"}


def baseline_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Classical classifiers trained on the same subsets (scored by eval, in seconds)."""
    return [RunSpec(cfg.name, BASELINE_MODELS[b], size, seed)
            for b in cfg.eval.baselines for size in cfg.train_sizes for seed in cfg.seeds]


def describe(cfg: ExperimentConfig) -> str:
    runs = train_runs(cfg)
    lines = [f"experiment {cfg.name}: {len(cfg.models)} model(s) x {len(cfg.train_sizes)} size(s) "
             f"x {len(cfg.seeds)} seed(s) = {len(runs)} training run(s)"]
    for r in runs:
        lines.append(f"  {r.run_id:40s} {r.folder()}")
    if cfg.eval.include_base:
        lines.append(f"  + {len(cfg.models)} zero-shot base run(s) scored by eval")
    if cfg.eval.baselines:
        lines.append(f"  + {len(baseline_runs(cfg))} baseline run(s) ({', '.join(cfg.eval.baselines)}) fitted by eval")
    return "\n".join(lines)

"""The grid: one RunSpec per model x prompt x train size x seed, plus one
zero-shot run per model and prompt (train size 0), plus the classical
baselines. Ids and folders follow from the coordinates alone.

With a single unnamed prompt the prompt level is left out of ids and folders:
runs/<model>/n<size>/seed<seed>. With named prompts it sits after the model:
runs/<model>/<prompt>/n<size>/seed<seed>.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import ExperimentConfig
from .paths import experiment_dir
from .splits import dataset_name

BASELINE_MODELS = {"tfidf": "baseline-tfidf-logreg", "embedding": "baseline-minilm-logreg"}


@dataclass(frozen=True)
class RunSpec:
    experiment: str
    model: str
    size: int                  # 0 = the base model, zero-shot
    seed: int | None           # None for zero-shot runs
    prompt: str | None = None  # None: the task's single unnamed prompt

    @property
    def is_base(self) -> bool:
        return self.size == 0

    @property
    def is_baseline(self) -> bool:
        return self.model in BASELINE_MODELS.values()

    @property
    def _tail(self) -> str:
        return "base" if self.is_base else f"seed{self.seed}"

    @property
    def run_id(self) -> str:
        prompt = f"__{self.prompt}" if self.prompt else ""
        return f"{self.model}{prompt}__n{self.size}__{self._tail}"

    @property
    def dataset(self) -> str:
        assert not self.is_base
        return dataset_name(self.experiment, self.size, self.seed, self.prompt)

    def folder(self, root: Path | None = None) -> Path:
        base = (root or experiment_dir(self.experiment)) / "runs" / self.model
        if self.prompt:
            base = base / self.prompt
        return base / f"n{self.size}" / self._tail


def train_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Training runs, smallest sizes first so early results arrive early."""
    return [RunSpec(cfg.name, m.name, size, seed, prompt)
            for size in cfg.train_sizes for m in cfg.models
            for prompt in cfg.task.prompt_names() for seed in cfg.seeds]


def base_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    if not cfg.eval.include_base:
        return []
    return [RunSpec(cfg.name, m.name, 0, None, prompt) for m in cfg.models for prompt in cfg.task.prompt_names()]


def eval_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Everything a server scores: the zero-shot base runs (if enabled) and all training runs."""
    return base_runs(cfg) + train_runs(cfg)


def baseline_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Classical classifiers trained on the same subsets (fitted and scored by eval, in seconds)."""
    return [RunSpec(cfg.name, BASELINE_MODELS[b], size, seed)
            for b in cfg.eval.baselines for size in cfg.train_sizes for seed in cfg.seeds]


def _state(run: RunSpec) -> str:
    """trained / failed / to train, from the run folder's marker files."""
    folder = run.folder()
    if (folder / "train_result.json").is_file():
        return "trained"
    if (folder / "train_failed.json").is_file():
        return "failed"
    return "to train"


def describe(cfg: ExperimentConfig) -> str:
    runs = train_runs(cfg)
    prompts = cfg.task.prompt_names()
    axis = f" x {len(prompts)} prompt(s)" if prompts != [None] else ""
    lines = [f"experiment {cfg.name}: {len(cfg.models)} model(s){axis} x {len(cfg.train_sizes)} size(s) "
             f"x {len(cfg.seeds)} seed(s) = {len(runs)} training run(s)"]
    states = [_state(r) for r in runs]
    for r, state in zip(runs, states):
        lines.append(f"  {r.run_id:40s} {state:9s} {r.folder()}")
    todo = sum(s != "trained" for s in states)
    lines.append(f"  {todo} to train, {len(runs) - todo} already trained; executor: {cfg.executor.kind}")
    if cfg.eval.include_base:
        lines.append(f"  + {len(base_runs(cfg))} zero-shot base run(s) scored by eval")
    if cfg.eval.baselines:
        lines.append(f"  + {len(baseline_runs(cfg))} baseline run(s) ({', '.join(cfg.eval.baselines)}) fitted by eval")
    lines.append(f"  decoding: {', '.join(cfg.eval.decodings)}")
    return "\n".join(lines)
